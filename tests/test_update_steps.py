"""The compiled IQL and GDE update steps against a slow NumPy reference written from the equations."""
from dataclasses import replace

import numpy as np
import pytest

import reference_steps as ref
from gde_ref.agents.iql import IQLAgent
from gde_ref.bench import IQL_PASSES, gde_step_products, is_blas_product, step_products
from gde_ref.config import GDEConfig, IQLConfig
from gde_ref.data import Batch
from gde_ref.finetune.gde import GDELearner

OBS, ACT, B, HIDDEN = 5, 2, 8, (16, 16)


def make_batch(rng, dtype=np.float64, n=B):
    return ref.make_batch(rng, OBS, ACT, n, dtype)


def make_learner(seed=0, dtype=np.float64, cfg=None, gde_cfg=None):
    agent = IQLAgent(OBS, ACT, cfg or IQLConfig(hidden=HIDDEN), seed=seed, dtype=dtype)
    # a teacher that differs from the actor, and one log-std clipped at its upper bound 2 (zero gradient)
    agent.actor.views["extra"][:] = [-0.5, 2.5]
    learner = GDELearner(agent, gde_cfg or GDEConfig())
    learner.teacher_params += 0.05 * np.random.default_rng(99).standard_normal(learner.teacher_params.size)
    return agent, learner


def params_of(agent, learner=None):
    out = {"q1": agent.q1.params, "q2": agent.q2.params, "v": agent.value.params, "pi": agent.actor.params,
           "q1t": agent.q1_target, "q2t": agent.q2_target}
    if learner is not None:
        out["explore"] = learner.explore.params
    return {k: v.copy() for k, v in out.items()}


def test_iql_step_matches_reference():
    """Three IQL steps give the reference's parameters for every network (float64)."""
    agent, learner = make_learner()
    nets = ref.RefNets(agent, learner)
    rng = np.random.default_rng(1)
    for _ in range(3):
        b = make_batch(rng)
        agent.update(b)
        ref.iql_step(nets, b, agent.config, ref.Recorder())
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_gde_step_matches_reference():
    """Three GDE steps (rho = 0.3) give the reference's parameters, exploration policy included."""
    agent, learner = make_learner()
    nets = ref.RefNets(agent, learner)
    rng = np.random.default_rng(2)
    for _ in range(3):
        b = make_batch(rng)
        learner.update(b, kl_weight=0.3)
        ref.gde_step(nets, b, agent.config, 0.3, learner.config.exploration_lr, ref.Recorder())
    for name, p in params_of(agent, learner).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert learner.explore.views["extra"][1] == 2.5, "a clipped log-std must get no gradient"
    assert not np.allclose(learner.explore.params, agent.actor.params), "the two policies must differ"


def test_bench_products_are_the_steps_products():
    """The benchmark's BLAS floor uses exactly the BLAS products the GDE (and IQL) step performs, in order."""
    agent, learner = make_learner()
    nets = ref.RefNets(agent, learner)
    rec = ref.Recorder()
    ref.gde_step(nets, make_batch(np.random.default_rng(3)), agent.config, 0.3, 3e-4, rec)
    blas = [p for p in rec.products if is_blas_product(p)]
    assert len(blas) < len(rec.products), "the one-output layers' outer products are loops, not BLAS"
    assert blas == gde_step_products(OBS, ACT, HIDDEN, B)
    rec = ref.Recorder()
    ref.iql_step(nets, make_batch(np.random.default_rng(3)), agent.config, rec)
    assert [p for p in rec.products if is_blas_product(p)] == step_products(IQL_PASSES, OBS, ACT, HIDDEN, B)


def numerical_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        g[i] = (up - down) / (2 * eps)
    return g


def test_every_update_gradient_matches_central_differences():
    """Loss -> parameters of V, Q1, Q2, the actor (with its log-std) and the exploration policy
    (through the critics' input gradient) agree with central differences of the reference losses.

    All learning rates and the Polyak rate are 0, so the step leaves the parameters where the
    gradients were taken and the kernels' gradient buffers can be read afterwards.
    """
    cfg = IQLConfig(hidden=HIDDEN, critic_lr=0.0, value_lr=0.0, actor_lr=0.0, polyak=0.0)
    agent, learner = make_learner(cfg=cfg, gde_cfg=GDEConfig(exploration_lr=0.0))
    b = make_batch(np.random.default_rng(4))
    rho = 0.3
    learner.update(b, kl_weight=rho)
    nets = agent.nets(B)
    bundles = {"value": nets.value, "q1": nets.critics.q1, "q2": nets.critics.q2, "actor": nets.actor,
               "explore": learner.policies(B)[0]}
    nets = ref.RefNets(agent, learner)
    rec = ref.Recorder()
    _, _, _, qt = ref.value_loss(nets.p["v"], nets, b, cfg, rec)
    v = ref.forward(nets.p["v"], nets.sizes["v"], b.obs, rec)[-1][:, 0]
    losses = {
        "value": (nets.p["v"], lambda p: ref.value_loss(p, nets, b, cfg, rec)[0]),
        "q1": (nets.p["q1"], lambda p: ref.critic_loss(p, nets.p["q2"], nets, b, rec)[0]),
        "q2": (nets.p["q2"], lambda p: ref.critic_loss(nets.p["q1"], p, nets, b, rec)[0]),
        "actor": (nets.p["pi"], lambda p: ref.awr_loss(p, nets, b, qt, v, cfg, rec)[0]),
        "explore": (nets.p["explore"], lambda p: ref.explore_loss(p, nets, b, rho, cfg, rec)[0]),
    }
    for name, (p, f) in losses.items():
        np.testing.assert_allclose(bundles[name].grads, numerical_grad(f, p.copy()), rtol=1e-5, atol=1e-8,
                                   err_msg=name)


def test_same_seed_bit_identical_parameters():
    """Same seed and batches -> bit-identical float32 parameters after 5 GDE steps; another seed differs."""
    def run(seed):
        agent, learner = make_learner(seed=seed, dtype=np.float32, cfg=IQLConfig(hidden=(32, 32)))
        rng = np.random.default_rng(5)
        for _ in range(5):
            learner.update(make_batch(rng, np.float32, 64), kl_weight=0.3)
        return params_of(agent, learner)
    a, b, c = run(0), run(0), run(1)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert not np.array_equal(a["q1"], c["q1"])


def test_update_rejects_bad_batches():
    """Wrong dtype, shapes, types and rho stop with a clear error before any kernel runs."""
    agent, learner = make_learner(dtype=np.float32, cfg=IQLConfig(hidden=HIDDEN))
    good = make_batch(np.random.default_rng(6), np.float32)
    before = agent.q1.params.copy()
    with pytest.raises(TypeError, match="dtype float32"):
        agent.update(make_batch(np.random.default_rng(6), np.float64))
    with pytest.raises(ValueError, match=r"batch.actions must have shape \(8, 2\)"):
        agent.update(good._replace(actions=good.actions[:, :1].copy()))
    with pytest.raises(ValueError, match=r"batch.rewards must have shape \(8,\)"):
        agent.update(good._replace(rewards=good.rewards[:5].copy()))
    with pytest.raises(TypeError, match="gde_ref.data.Batch"):
        agent.update(tuple(good))
    with pytest.raises(ValueError, match="kl_weight"):
        learner.update(good, kl_weight=-0.1)
    with pytest.raises(ValueError, match="kl_weight"):
        GDEConfig(kl_weight=-1.0)
    assert np.array_equal(agent.q1.params, before), "a rejected batch must not touch the parameters"


def test_act_is_tanh_mean_and_the_loop_path_does_not_allocate():
    """act() returns tanh(actor(obs)) as a new array each call (a list of actions never holds copies of the
    last one); the training loop's path, PolicyActions, writes into one reused buffer instead. With an rng
    act samples within [-1, 1]."""
    from gde_ref.agents.actors import PolicyActions
    agent, _ = make_learner(dtype=np.float32, cfg=IQLConfig(hidden=HIDDEN))
    obs = np.random.default_rng(7).standard_normal(OBS).astype(np.float32)
    a1 = agent.act(obs)
    np.testing.assert_allclose(a1, np.tanh(agent.actor.forward(obs[None]))[0], rtol=1e-5, atol=1e-6)
    assert agent.act(obs) is not a1
    loop_path = PolicyActions(agent.actor, agent.spec)
    b1 = loop_path.act(obs)
    np.testing.assert_array_equal(b1, a1)
    assert loop_path.act(obs) is b1, "the loop's actions reuse one buffer"
    samples = np.array([agent.act(obs, np.random.default_rng(i), temperature=5.0) for i in range(50)])
    assert samples.min() >= -1 and samples.max() <= 1 and samples.std() > 0
    with pytest.raises(ValueError, match="shape"):
        agent.act(np.zeros(OBS + 1, np.float32))
