"""GDE (Algorithm 1) and its variants on the IQL backbone, in the shared loop, on Hopper with small networks."""
import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.config import GDEConfig, IQLConfig
from gde_ref.data import Batch
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import make_env
from gde_ref.finetune.gde import AgentInputs, GDEFinetuner, GDELearner
from gde_ref.finetune.loop import LoopConfig, run_online
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.config import TD3BCConfig
from gde_ref.finetune.algos import ALGOS, make_buffer, make_learner, runs_on

OBS, ACT, B = 11, 3, 32  # Hopper-v5
SMALL = IQLConfig(hidden=(32, 32), batch_size=B)
LOG_COLUMNS = {"env_step", "eval_return", "teacher_score", "teacher_swapped", "kl_weight", "q_mean", "critic_loss",
               "actor_loss"}


def agent(seed=0):
    return IQLAgent(OBS, ACT, SMALL, seed=seed)


def identity():
    return ObsNormalizer.identity(OBS)


def raw_batch(rng, n=B):
    return Batch(rng.normal(size=(n, OBS)).astype(np.float32), rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                 rng.normal(size=n).astype(np.float32), np.full(n, 0.99, np.float32),
                 rng.normal(size=(n, OBS)).astype(np.float32))


def run(learner, buffer, total=300, period=100, steps=50, seed=0):
    cfg = LoopConfig(total_steps=total, eval_period=period, eval_steps=steps, batch_size=B, learning_starts=64)
    return run_online(make_env("hopper"), make_env("hopper"), learner, buffer, cfg, np.random.default_rng(seed),
                      seed=seed)


def test_three_policies_start_from_the_offline_actor():
    ag = agent()
    gde = GDELearner(ag)
    for params in (gde.explore.params, gde.teacher_params):
        np.testing.assert_array_equal(params, ag.actor.params)
        assert params is not ag.actor.params


def test_rho_decays_linearly_from_rho0_to_zero_over_the_budget():
    gde = make_learner("gde", agent(), identity(), 1.0, GDEConfig(kl_weight=0.3))
    rng = np.random.default_rng(0)
    for progress in (0.0, 0.25, 0.5, 1.0):
        gde.update(raw_batch(rng), progress)
        assert np.isclose(gde.kl_weight, 0.3 * (1.0 - progress))
    no_teacher = make_learner("gde-no-teacher", agent(), identity(), 1.0)
    no_teacher.update(raw_batch(rng), 0.0)
    assert no_teacher.kl_weight == 0.0


def test_rho_in_the_log_follows_the_budget():
    """Each row's rho is rho_0 (1 - t / T) at the last update before its evaluation stage."""
    total = 400
    rows = run(make_learner("gde", agent(), identity(), 1.0, GDEConfig(buffer_size=1000)), ReplayBuffer(1000, OBS, ACT),
               total=total)
    # stages end at 50, 200, 350; the last update before the stage ending at e was at step e - 50
    for row in rows[1:]:
        assert np.isclose(row["kl_weight"], 0.3 * (1 - (row["env_step"] - 50) / total))


def test_teacher_swaps_only_on_a_better_evaluation():
    gde = make_learner("gde", agent(), identity(), 1.0)
    first = gde.after_evaluation(100.0, 50)   # step 0's stage: the offline policy is the teacher
    assert first["teacher_swapped"] == 0 and first["teacher_score"] == 100.0
    rng = np.random.default_rng(0)
    for _ in range(5):
        gde.update(raw_batch(rng), 0.1)       # pi_e moves away from the teacher
    actor, teacher = gde.learner.backbone.actor.params, gde.learner.teacher_params
    before = teacher.copy()
    assert not np.array_equal(actor, before)
    worse = gde.after_evaluation(90.0, 200)
    assert worse["teacher_swapped"] == 0 and worse["teacher_score"] == 100.0 and np.array_equal(teacher, before)
    equal = gde.after_evaluation(100.0, 350)
    assert equal["teacher_swapped"] == 0, "only a strictly better score replaces the teacher"
    better = gde.after_evaluation(120.0, 500)
    assert better["teacher_swapped"] == 1 and better["teacher_score"] == 120.0 and gde.swaps == 1
    np.testing.assert_array_equal(teacher, actor)
    assert teacher is not actor


def test_ablations_change_what_they_say():
    rng = np.random.default_rng(1)
    # w/o exploit: pi_e frozen, pi_b trained and evaluated, the teacher follows pi_b
    ne = make_learner("gde-no-exploit", agent(), identity(), 1.0)
    actor0 = ne.learner.backbone.actor.params.copy()
    ne.after_evaluation(0.0, 50)
    for _ in range(3):
        ne.update(raw_batch(rng), 0.1)
    np.testing.assert_array_equal(ne.learner.backbone.actor.params, actor0)
    obs = rng.normal(size=OBS)
    np.testing.assert_array_equal(ne.exploit_action(obs).copy(), ne.explore_policy.act(ne.inputs.obs(obs)))
    ne.after_evaluation(1.0, 200)
    np.testing.assert_array_equal(ne.learner.teacher_params, ne.learner.explore.params)
    # w/o explore: pi_b untouched, pi_e trained with the KL term (rho > 0 changes its step)
    ab = [make_learner(a, agent(), identity(), 1.0, GDEConfig(kl_weight=k)) for a, k in
          (("gde-no-explore", 0.0), ("gde-no-explore", 5.0))]
    explore0 = ab[0].learner.explore.params.copy()
    for learner in ab:
        learner.learner.teacher_params[:] = agent(seed=3).actor.params   # a teacher unlike pi_e
        learner.update(raw_batch(np.random.default_rng(2)), 0.0)
    np.testing.assert_array_equal(ab[0].learner.explore.params, explore0)
    assert not np.array_equal(ab[0].learner.backbone.actor.params, ab[1].learner.backbone.actor.params)


def test_variants_update_what_they_should():
    rng = np.random.default_rng(0)
    off = make_learner("offline", agent(), identity(), 1.0)
    before = {k: v.copy() for k, v in off.agent.state().items()}
    assert off.update(raw_batch(rng), 0.5) == {}
    assert all(np.array_equal(v, before[k]) for k, v in off.agent.state().items())
    for algo in ("oniql", "reiql", "rnd"):
        learner = make_learner(algo, agent(), identity(), 1.0)
        actor0 = learner.agent.actor.params.copy()
        stats = learner.update(raw_batch(rng), 0.5)
        assert np.isfinite(list(stats.values())).all()
        assert not np.array_equal(learner.agent.actor.params, actor0)
    reiql = make_learner("reiql", agent(), identity(), 1.0)
    log_std0 = reiql.agent.log_std().copy()
    reiql.update(raw_batch(rng), 0.5)
    np.testing.assert_array_equal(reiql.agent.log_std(), log_std0)  # TD3-style: only the mean maximises Q


def test_action_temperature_scales_the_sampling_noise():
    obs = np.random.default_rng(0).normal(size=OBS)
    cold = make_learner("oniql", agent(), identity(), 1.0, action_temperature=0.0)
    mean = cold.exploit_action(obs).copy()
    np.testing.assert_array_equal(cold.explore_action(obs, np.random.default_rng(1)), mean)
    np.testing.assert_allclose(mean, agent().act(obs.astype(np.float32)), rtol=1e-6)
    spread = []
    for t in (0.5, 2.0):
        learner = make_learner("oniql", agent(), identity(), 1.0, action_temperature=t)
        learner.agent.actor.views["extra"][:] = -3.0     # a small std, so clipping rarely acts
        rng = np.random.default_rng(2)
        spread.append(np.std([learner.explore_action(obs, rng) - mean for _ in range(300)]))
    assert 3.0 < spread[1] / spread[0] < 5.0


def test_gde_samples_its_exploration_policy_clipped():
    gde = make_learner("gde", agent(), identity(), 1.0)
    gde.learner.explore.views["extra"][:] = 2.0          # a huge std: most samples hit the bounds
    rng = np.random.default_rng(0)
    acts = np.array([gde.explore_action(np.zeros(OBS), rng).copy() for _ in range(200)])
    assert acts.min() == -1.0 and acts.max() == 1.0 and len(np.unique(acts)) > 10


def test_batches_are_normalised_and_rewards_scaled():
    rng = np.random.default_rng(0)
    norm = ObsNormalizer(rng.normal(size=OBS).astype(np.float32), rng.uniform(0.5, 2, OBS).astype(np.float32))
    inputs = AgentInputs(norm, 0.25)
    raw = raw_batch(rng)
    out = inputs.batch(raw)
    np.testing.assert_allclose(out.obs, norm(raw.obs), rtol=1e-6)
    np.testing.assert_allclose(out.next_obs, norm(raw.next_obs), rtol=1e-6)
    np.testing.assert_allclose(out.rewards, 0.25 * raw.rewards, rtol=1e-6)
    assert out.discounts is raw.discounts and out.actions is raw.actions
    assert all(a.dtype == np.float32 for a in out)
    np.testing.assert_array_equal(inputs.obs(raw.obs[0].astype(np.float64)), norm(raw.obs[0]))


def fake_offline(n=50):
    """Raw offline transitions whose states (1e6) can never come from Hopper."""
    from types import SimpleNamespace
    return SimpleNamespace(observations=np.full((n, OBS), 1e6, np.float32), actions=np.zeros((n, ACT), np.float32),
                           rewards=np.ones(n, np.float32), next_observations=np.full((n, OBS), 1e6, np.float32),
                           terminals=np.arange(n) % 10 == 9, timeouts=np.zeros(n, bool), source="fake",
                           episode_returns=np.full(n // 10, 10.0), episode_lengths=np.full(n // 10, 10))


def test_online_only_buffers_never_hold_offline_transitions_but_iql_keeps_them():
    cfg = GDEConfig(buffer_size=1000)
    for algo in ("oniql", "gde"):
        buffer = make_buffer(algo, OBS, ACT, cfg, offline=fake_offline())
        assert len(buffer) == 0
        run(make_learner(algo, agent(), identity(), 1.0, cfg), buffer, total=200)
        assert buffer.total_added == 200 and np.abs(buffer.obs[:len(buffer)]).max() < 1e5
    buffer = make_buffer("iql", OBS, ACT, cfg, offline=fake_offline())
    assert len(buffer) == 50 and buffer.capacity == 1050
    np.testing.assert_array_equal(buffer.discounts[:50], np.where(np.arange(50) % 10 == 9, 0.0, 0.99).astype(np.float32))
    run(make_learner("iql", agent(), identity(), 1.0, cfg), buffer, total=200)
    assert len(buffer) == 250 and (buffer.obs[:50] == 1e6).all() and np.abs(buffer.obs[50:250]).max() < 1e5
    with pytest.raises(ValueError, match="offline data"):
        make_buffer("iql", OBS, ACT, cfg)


def test_end_to_end_gde_on_hopper_with_n_step_3():
    """A short run from a random agent: the budget (evaluation stages included) is spent exactly, the log
    has the expected columns, and GDE trains on 3-step transitions."""
    cfg = GDEConfig(n_step=3, buffer_size=1000)
    buffer = make_buffer("gde", OBS, ACT, cfg)
    assert buffer.n_step == 3
    learner = make_learner("gde", agent(), identity(), 1.0, cfg)
    rows = run(learner, buffer, total=300)
    assert [r["env_step"] for r in rows] == [50, 150, 250]  # stages: [0, 50), [100, 150), [200, 250)
    assert buffer.pending_steps("stage") == 0, "a stage's unfinished n-step returns are folded when it ends"
    pending = buffer.pending_steps("explore")
    assert buffer.total_added + pending == 300, "every step, evaluation stages included, counts and is stored"
    assert set(rows[0]) == {"kind", "env_step", "exploration_steps", "updates", "eval_return", "teacher_score",
                            "teacher_swapped", "kl_weight"}
    assert LOG_COLUMNS | {"explore_loss"} <= set(rows[1])
    assert rows[0]["teacher_score"] == rows[0]["eval_return"] and rows[0]["teacher_swapped"] == 0
    assert all(np.isfinite(v) for r in rows for k, v in r.items() if k != "kind")
    allowed = np.array([0.0, 0.99, 0.99 ** 2, 0.99 ** 3], np.float32)   # gamma^m (1 - terminal), m <= 3
    stored = buffer.discounts[:len(buffer)]
    assert np.isclose(stored[:, None], allowed).any(axis=1).all()
    assert np.isclose(stored, 0.99 ** 3).any(), "3-step transitions were stored"


@pytest.mark.parametrize("algo", [a for a in ALGOS if runs_on(a, "iql")])
def test_every_algo_runs_in_the_loop(algo):
    """Every algo defined on IQL (those of other backbones: their own test files) through a short loop with
    evaluation stages."""
    cfg = GDEConfig(buffer_size=500)
    offline = fake_offline()
    buffer = make_buffer(algo, OBS, ACT, cfg, offline=offline)
    rows = run(make_learner(algo, agent(), identity(), 1.0, cfg, offline=offline, buffer=buffer), buffer, total=150,
               period=60, steps=20)
    assert [r["env_step"] for r in rows] == [20, 80, 140] and {"teacher_score", "kl_weight"} <= set(rows[-1])


def test_bad_input_gives_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown algo 'sac'.*valid algos: offline, iql, oniql, naive, reiql"):
        make_learner("sac", agent(), identity(), 1.0)
    with pytest.raises(ValueError, match=r"'oniql' is defined on the iql backbone, not 'td3bc'.*use 'naive'"):
        make_learner("oniql", TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=(8, 8))), identity(), 1.0)
    with pytest.raises(ValueError, match="unknown algo"):
        make_buffer("gde-no-everything", OBS, ACT)
    with pytest.raises(ValueError, match=r"kl_weight \(rho\)"):
        GDEConfig(kl_weight=-0.1)
    with pytest.raises(ValueError, match=r"kl_weight \(rho\)"):
        GDELearner(agent()).update(raw_batch(np.random.default_rng(0)), -0.1)
    with pytest.raises(ValueError, match="progress"):
        make_learner("gde", agent(), identity(), 1.0).update(raw_batch(np.random.default_rng(0)), 1.5)
    with pytest.raises(ValueError, match="reward_scale"):
        make_learner("oniql", agent(), identity(), 0.0)
    with pytest.raises(ValueError, match="action_temperature"):
        make_learner("gde", agent(), identity(), 1.0, action_temperature=2.0)
    with pytest.raises(ValueError, match="exploit=True or explore=True"):
        GDEFinetuner(GDELearner(agent()), identity(), 1.0, exploit=False, explore=False)


# ------------------------------------------------------------------------------------------------
# the new update steps against the slow float64 reference (tests/reference_steps.py)
# ------------------------------------------------------------------------------------------------
def reference_critics(nets, b, cfg, rec):
    """IQL's Eq. 2, Eq. 3 and target update (reference_steps.iql_step without the actor); returns (Q', V)."""
    import reference_steps as ref
    _, acts, dv, qt = ref.value_loss(nets.p["v"], nets, b, cfg, rec)
    nets.step("v", ref.backward(nets.p["v"], nets.sizes["v"], acts, dv[:, None], rec)[0], cfg.value_lr)
    _, a1, a2, d1, d2 = ref.critic_loss(nets.p["q1"], nets.p["q2"], nets, b, rec)
    nets.step("q1", ref.backward(nets.p["q1"], nets.sizes["q"], a1, d1[:, None], rec)[0], cfg.critic_lr)
    nets.step("q2", ref.backward(nets.p["q2"], nets.sizes["q"], a2, d2[:, None], rec)[0], cfg.critic_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - cfg.polyak) * nets.p[name + "t"] + cfg.polyak * nets.p[name]
    return qt, ref.forward(nets.p["v"], nets.sizes["v"], b.obs, rec)[-1][:, 0]


def reference_setup(seed):
    import reference_steps as ref
    from test_update_steps import make_learner as float64_learner
    agent, learner = float64_learner(seed)
    return ref, agent, learner, ref.RefNets(agent, learner)


def test_guided_exploitation_step_matches_reference():
    """w/o explore: pi_e's step is Eq. 4 + rho KL(pi_t || pi_e), written here from the equations (float64)."""
    from test_update_steps import make_batch, params_of
    ref, agent, learner, nets = reference_setup(0)
    cfg, rho, rng, rec = agent.config, 0.7, np.random.default_rng(4), ref.Recorder()
    for _ in range(3):
        b = make_batch(rng)
        learner.update_guided_exploitation(b, rho)
        qt, v = reference_critics(nets, b, cfg, rec)
        _, acts, d_raw, d_ls = ref.awr_loss(nets.p["pi"], nets, b, qt, v, cfg, rec)
        _, mean, ls, mask = ref.gaussian(nets.p["pi"], nets, b.obs, cfg, rec)
        _, mean_t, ls_t, _ = ref.gaussian(nets.p["teacher"], nets, b.obs, cfg, rec)
        n = len(b.rewards)
        d_raw = d_raw + rho / n * (mean - mean_t) / np.exp(2 * ls) * (1 - mean ** 2)     # dKL/dmean, through tanh
        d_ls = d_ls + rho / n * np.sum(1 - (np.exp(2 * ls_t) + (mean_t - mean) ** 2) / np.exp(2 * ls), 0) * mask
        g, _ = ref.backward(nets.p["pi"], nets.sizes["pi"], acts, d_raw, rec)
        nets.step("pi", np.concatenate([g, d_ls]), cfg.actor_lr)
    for name, p in params_of(agent, learner).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_reiql_step_matches_reference():
    """ReIQL: IQL's critics, then the actor by Eq. 5 with rho = 0 (TD3's -min(Q1, Q2)(s, pi(s)))."""
    from test_update_steps import make_batch, params_of
    ref, agent, _, nets = reference_setup(1)
    learner = make_learner("reiql", agent, ObsNormalizer.identity(agent.obs_dim), 1.0)
    learner.inputs = AgentInputs(ObsNormalizer.identity(agent.obs_dim), 1.0, np.float64)
    cfg, rng, rec = agent.config, np.random.default_rng(5), ref.Recorder()
    for _ in range(3):
        b = make_batch(rng)
        learner.update(b, 0.5)
        reference_critics(nets, b, cfg, rec)
        _, acts, d_raw, d_ls = ref.explore_loss(nets.p["pi"], nets, b, 0.0, cfg, rec)
        g, _ = ref.backward(nets.p["pi"], nets.sizes["pi"], acts, d_raw, rec)
        nets.step("pi", np.concatenate([g, d_ls]), cfg.actor_lr)
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)
