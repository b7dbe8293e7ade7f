"""CQL (gde_ref.agents.cql): the compiled update step against a slow NumPy reference, its gradients and GDE's
two steps on its squashed actor against central differences, the sampled penalty's loss and checks,
determinism and the state round trip."""
import copy

import numpy as np
import pytest

import reference_cql as ref
import reference_steps
from gde_ref.agents.cql import CQLAgent
from gde_ref.bench import is_blas_product, step_products
from gde_ref.bench_passes import CQL_N_ACTIONS, CQL_PASSES, SAC_ACTOR_PASSES, cql_passes
from gde_ref.config import CQLConfig, GDEConfig
from gde_ref.finetune.gde import GDELearner
from gde_ref.losses.baselines import cql_sampled_penalty
from gradcheck import numerical_grad

OBS, ACT, B, M, HIDDEN = 5, 3, 8, 3, (16, 16)
STEP = CQLConfig(hidden=HIDDEN, n_actions=M, initial_alpha=0.5, critic_lr=1e-2, actor_lr=1e-2, alpha_lr=1e-2,
                 polyak=0.2)
FROZEN = CQLConfig(hidden=HIDDEN, n_actions=M, initial_alpha=0.7, critic_lr=0.0, actor_lr=0.0, alpha_lr=0.0,
                   polyak=0.0)


def make_batch(rng, dtype=np.float64, n=B):
    return reference_steps.make_batch(rng, OBS, ACT, n, dtype)


def make_agent(cfg, seed=0, dtype=np.float64):
    """An agent whose target twins differ from the online twins (so mixing them up shows)."""
    agent = CQLAgent(OBS, ACT, cfg, seed=seed, dtype=dtype)
    rng = np.random.default_rng(99)
    for target in (agent.twins.q1_target, agent.twins.q2_target):
        target += (0.05 * rng.standard_normal(target.size)).astype(dtype)      # in place
    return agent


def next_noise(agent, n=B):
    """The noise the agent's next update will draw (float64 agents), and the generator after drawing it."""
    rng = copy.deepcopy(agent.noise_rng)
    return ref.draw_noise(rng, n, ACT, agent.config.n_actions), rng


def params_of(agent):
    out = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params, "q1t": agent.twins.q1_target,
           "q2t": agent.twins.q2_target, "log_alpha": agent.log_alpha}
    return {k: v.copy() for k, v in out.items()}


def arrays_of(agent):
    return {k: v.copy() for k, v in agent.state().items() if isinstance(v, np.ndarray)}


def assert_params_unchanged(agent, before):
    for name, p in params_of(agent).items():
        assert np.array_equal(p, before[name]), f"{name} moved with learning rates and Polyak 0"


def perturb_teacher(learner, seed=12):
    """The teacher pi_t differs from pi_b and pi_e, so the KL term and its gradient are not zero."""
    rng = np.random.default_rng(seed)
    learner.teacher_params += 0.1 * rng.standard_normal(learner.teacher_params.size)


# ------------------------------------------------------------------------------------------------
# the update step
# ------------------------------------------------------------------------------------------------
def test_cql_step_matches_reference():
    """Three float64 updates give the reference's stats (critic_loss = both twins' TD losses, cql_penalty = both
    twins' penalties, q_mean = mean Q1(s, a) before the step, actor and alpha losses, alpha) and parameters of
    Q1, Q2, their targets, the actor and log alpha; each update draws exactly the five noise arrays of the
    module's order from the agent's generator."""
    agent = make_agent(STEP)
    nets = ref.RefCQL(agent)
    rng = np.random.default_rng(1)
    for step in range(3):
        b = make_batch(rng)
        noise, drawn = next_noise(agent)
        stats = agent.update(b)
        assert agent.noise_rng.bit_generator.state == drawn.bit_generator.state, f"draws at step {step}"
        expected = ref.cql_step(nets, b, noise)
        assert set(stats) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(stats[name], value, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {step}")
        assert expected["cql_penalty"] > 0.1 * expected["critic_loss"], "the penalty must matter in this check"
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert agent.log_alpha[0] != np.log(0.5), "the temperature must have moved"


def test_every_update_gradient_matches_central_differences():
    """With learning rates and Polyak 0 one update leaves every parameter in place, and the gradients it took
    equal central differences of the reference: L_k (TD + penalty) -> Q_k (the penalty rows' record at
    B (1 + 3M) rows holds them), SAC's actor loss -> the actor, the temperature loss -> log alpha."""
    agent = make_agent(FROZEN, seed=3)
    b = make_batch(np.random.default_rng(4))
    noise, _ = next_noise(agent)
    before = params_of(agent)
    agent.update(b)
    assert_params_unchanged(agent, before)
    n = agent.nets(B)
    assert n.penalty_critics.inputs.shape[0] == B * (1 + 3 * M)
    nets = ref.RefCQL(agent)
    alpha = 0.7
    logp = ref.rs.actor_loss(nets.p["pi"], nets, b, noise.actor, alpha)[3]
    losses = {
        "q1": (n.penalty_critics.q1, nets.p["q1"], lambda p: ref.critic_loss(p, "q1", nets, b, noise)),
        "q2": (n.penalty_critics.q2, nets.p["q2"], lambda p: ref.critic_loss(p, "q2", nets, b, noise)),
        "actor": (n.actor, nets.p["pi"], lambda p: ref.rs.actor_loss(p, nets, b, noise.actor, alpha)[0]),
        "temperature": (n.temperature, nets.p["log_alpha"],
                        lambda p: ref.rs.alpha_loss(p, logp, nets.target_entropy)[0]),
    }
    for name, (bundle, p, f) in losses.items():
        x = p.copy()
        numeric = numerical_grad(lambda: f(x), x)
        assert np.abs(numeric).max() > 1e-4, name
        np.testing.assert_allclose(bundle.grads, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_bench_products_are_the_steps_products():
    """The benchmark's CQL BLAS floor (gde_ref.bench) uses exactly the BLAS products the reference step performs,
    in order: a' ~ pi(.|s') and the target twins on B rows, the sampler on the B M repeated s and s', both twins
    forward on the B (1 + 3M) penalty rows and then their parameter gradients, SAC's actor step on B rows."""
    assert CQL_N_ACTIONS == CQLConfig().n_actions and CQL_PASSES == cql_passes(CQL_N_ACTIONS)
    agent = make_agent(STEP)
    nets = ref.RefCQL(agent)
    rng = np.random.default_rng(14)
    for step in range(2):
        nets.rec = reference_steps.Recorder()
        ref.cql_step(nets, make_batch(rng), ref.draw_noise(rng, B, ACT, M))
        recorded = [p for p in nets.rec.products if is_blas_product(p)]
        assert len(recorded) < len(nets.rec.products), "the one-output layers' outer products are loops"
        assert recorded == step_products(cql_passes(M), OBS, ACT, HIDDEN, B), f"step {step}"
    rows = {p[0] for p in step_products(cql_passes(M), OBS, ACT, HIDDEN, B) if not p[3]}
    assert rows == {B, B * M, B * (1 + 3 * M)}
    actor = step_products(SAC_ACTOR_PASSES, OBS, ACT, HIDDEN, B)
    assert recorded[-len(actor):] == actor


# ------------------------------------------------------------------------------------------------
# the sampled penalty
# ------------------------------------------------------------------------------------------------
def test_sampled_penalty_value_and_gradients():
    """cql_sampled_penalty = alpha mean_i [log sum_j exp(q_ij - log mu_ij) - q_i]; its gradients w.r.t. the
    sampled and the data Q-values equal central differences (alpha / B softmax and -alpha / B); it is exact when
    every Q-value is shifted far from 0 (the logsumexp is max-shifted) and 0 at alpha = 0."""
    rng = np.random.default_rng(5)
    k, alpha = 3 * M, 5.0
    q_samples, log_density, q_data = rng.standard_normal((B, k)), rng.standard_normal((B, k)), rng.standard_normal(B)
    loss, d_samples, d_data = cql_sampled_penalty(q_samples, log_density, q_data, alpha)
    direct = alpha * np.mean(np.log(np.sum(np.exp(q_samples - log_density), axis=1)) - q_data)
    assert loss == pytest.approx(direct, rel=1e-12)
    f = lambda: cql_sampled_penalty(q_samples, log_density, q_data, alpha)[0]  # noqa: E731
    np.testing.assert_allclose(d_samples, numerical_grad(f, q_samples), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_data, numerical_grad(f, q_data), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_samples.sum(1), alpha / B, rtol=1e-12)
    np.testing.assert_allclose(d_data, -alpha / B, rtol=1e-12)
    far = cql_sampled_penalty(q_samples + 1000.0, log_density, q_data + 1000.0, alpha)
    assert far[0] == pytest.approx(loss, rel=1e-9)
    np.testing.assert_allclose(far[1], d_samples, rtol=1e-9)
    assert cql_sampled_penalty(q_samples, log_density, q_data, 0.0)[0] == 0.0


def test_sampled_penalty_rejects_bad_input():
    """Shape mismatches, alpha < 0 (or not finite) and mixed dtypes are clear errors."""
    rng = np.random.default_rng(6)
    q_samples, log_density, q_data = rng.standard_normal((B, 6)), rng.standard_normal((B, 6)), rng.standard_normal(B)
    with pytest.raises(ValueError, match=r"log_density must have shape \(8, 6\)"):
        cql_sampled_penalty(q_samples, log_density[:, :5], q_data, 1.0)
    with pytest.raises(ValueError, match=r"q_data must have shape \(8,\)"):
        cql_sampled_penalty(q_samples, log_density, q_data[:5], 1.0)
    with pytest.raises(ValueError, match="q_samples must be 2-D"):
        cql_sampled_penalty(q_samples[0], log_density, q_data, 1.0)
    for alpha in (-1.0, np.nan):
        with pytest.raises(ValueError, match=r"cql alpha must be in \[0.0, inf\]"):
            cql_sampled_penalty(q_samples, log_density, q_data, alpha)
    with pytest.raises(TypeError, match="share one dtype"):
        cql_sampled_penalty(q_samples.astype(np.float32), log_density, q_data, 1.0)


# ------------------------------------------------------------------------------------------------
# GDE on the squashed actor
# ------------------------------------------------------------------------------------------------
def test_gde_exploration_gradient_on_squashed_actor():
    """GDE's Eq. 5 on CQL: with every learning rate and Polyak 0, pi_b's gradient equals central differences of
    -mean min(Q1, Q2)(s, tanh(mu_b(s))) + rho mean KL(pi_t || pi_b) between the pre-tanh Gaussians (state-
    dependent bounded log-stds), and the explore_loss stat is that loss; the KL part of it is not negligible."""
    rho = 0.3
    agent = make_agent(FROZEN, seed=7)
    learner = GDELearner(agent, GDEConfig(exploration_lr=0.0))
    perturb_teacher(learner)
    b = make_batch(np.random.default_rng(8))
    before, explore_before = params_of(agent), learner.explore.params.copy()
    stats = learner.update(b, kl_weight=rho)
    assert_params_unchanged(agent, before)
    assert np.array_equal(learner.explore.params, explore_before)
    nets = ref.RefCQL(agent)
    teacher = learner.teacher_params.astype(np.float64)
    x = learner.explore.params.astype(np.float64)
    assert stats["explore_loss"] == pytest.approx(ref.squashed_explore_loss(x, teacher, nets, b.obs, rho), rel=1e-9)
    numeric = numerical_grad(lambda: ref.squashed_explore_loss(x, teacher, nets, b.obs, rho), x)
    q_only = numerical_grad(lambda: ref.squashed_explore_loss(x, teacher, nets, b.obs, 0.0), x)
    assert np.abs(numeric - q_only).max() > 0.1 * np.abs(numeric).max(), "the KL term must show in the gradient"
    np.testing.assert_allclose(learner.policies(B)[0].grads, numeric, rtol=1e-5, atol=1e-8)


def test_guided_actor_gradient_on_squashed_actor():
    """GDE w/o explore on CQL (update_guided_exploitation): with every learning rate and Polyak 0, the actor's
    gradient equals central differences of SAC's actor loss (eps of the step's noise, alpha = exp(log alpha))
    + rho mean KL(pi_t || pi), and the actor_loss stat is that loss."""
    rho = 0.3
    agent = make_agent(FROZEN, seed=9)
    learner = GDELearner(agent, GDEConfig(exploration_lr=0.0))
    perturb_teacher(learner)
    b = make_batch(np.random.default_rng(10))
    noise, drawn = next_noise(agent)
    before = params_of(agent)
    stats = learner.update_guided_exploitation(b, kl_weight=rho)
    assert agent.noise_rng.bit_generator.state == drawn.bit_generator.state
    assert_params_unchanged(agent, before)
    nets = ref.RefCQL(agent)
    teacher = learner.teacher_params.astype(np.float64)
    alpha = 0.7
    x = nets.p["pi"].copy()
    loss = lambda: ref.guided_actor_loss(x, teacher, nets, b, noise.actor, alpha, rho)  # noqa: E731
    assert stats["actor_loss"] == pytest.approx(loss(), rel=1e-9)
    numeric = numerical_grad(loss, x)
    sac_only = numerical_grad(lambda: ref.guided_actor_loss(x, teacher, nets, b, noise.actor, alpha, 0.0), x)
    assert np.abs(numeric - sac_only).max() > 0.1 * np.abs(numeric).max(), "the KL term must show in the gradient"
    np.testing.assert_allclose(agent.nets(B).actor.grads, numeric, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------------------------------
# determinism and the state
# ------------------------------------------------------------------------------------------------
def small_float32_agent(seed):
    return CQLAgent(OBS, ACT, CQLConfig(hidden=HIDDEN, n_actions=M), seed=seed, dtype=np.float32)


def run_updates(agent, batches):
    for b in batches:
        agent.update(b)


def test_same_seed_bit_identical_state():
    """Two float32 agents with one seed and the same 4 batches end bit-identical in every array of state() and
    in the noise generator; another seed gives other parameters."""
    def run(seed):
        agent = small_float32_agent(seed)
        rng = np.random.default_rng(11)
        run_updates(agent, [make_batch(rng, np.float32) for _ in range(4)])
        return agent
    a, b, c = run(0), run(0), run(1)
    sa, sb = a.state(), b.state()
    assert set(sa) == set(sb)
    for name, value in sa.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == sb[name].dtype and np.array_equal(value, sb[name]), name
        else:
            assert value == sb[name], name
    assert a.q1.params.dtype == np.float32
    assert not np.array_equal(a.q1.params, c.q1.params)
    assert not np.array_equal(a.actor.params, c.actor.params)
    assert sa["noise_rng"] != c.state()["noise_rng"]


def test_state_round_trip_continues_identically():
    """A deep copy of state() taken after 2 updates, loaded into an agent of another seed (which has run an
    update of its own), continues bit-identically for 2 more updates: the noise generator is part of the state."""
    rng = np.random.default_rng(13)
    first, more = [make_batch(rng, np.float32) for _ in range(2)], [make_batch(rng, np.float32) for _ in range(2)]
    agent = small_float32_agent(0)
    run_updates(agent, first)
    saved = copy.deepcopy(agent.state())
    other = small_float32_agent(1)
    other.update(more[0])                              # its compiled records exist before the load
    other.load_state(saved)
    for name, value in arrays_of(agent).items():
        assert np.array_equal(arrays_of(other)[name], value), name
    run_updates(agent, more)
    run_updates(other, more)
    a, o = arrays_of(agent), arrays_of(other)
    for name in a:
        assert np.array_equal(a[name], o[name]), name
    assert agent.noise_rng.bit_generator.state == other.noise_rng.bit_generator.state
    assert not np.array_equal(a["actor"], saved["actor"]), "the actor must have moved after the load"
