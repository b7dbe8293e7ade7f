"""Cal-QL (gde_ref.agents.calql, data.returns_to_go, finetune.calql): the calibrated penalty against central
differences, the compiled step against a slow float64 reference, the Monte-Carlo returns-to-go of a hand-made
dataset, the online buffer's deferred fill, the 50/50 offline/online split, a tiny pretraining and a CLI
fine-tuning that resumes bit-identically. Small networks and batches throughout (CQL is slow per update)."""
import copy
import dataclasses
import json

import numpy as np
import pytest

import reference_calql as ref
import reference_cql as rc
import reference_steps
from gde_ref.agents.backbones import make_backbone
from gde_ref.agents.calql import CalQLAgent
from gde_ref.agents.cql import CQLAgent
from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz
from gde_ref.config import CalQLConfig, CQLConfig, GDEConfig, IQLConfig
from gde_ref.data.batch import Batch, MCBatch
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.datasets import OfflineDataset, load_dataset
from gde_ref.data.mixed import MixedBuffer
from gde_ref.data.prepare import ObsNormalizer, prepare_transitions
from gde_ref.data.returns_to_go import MCReplayBuffer, dataset_returns_to_go, returns_to_go, with_returns_to_go
from gde_ref.data.trajectories import trajectory_ends
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.experiments.pretrain import load_offline, pretrain, save_offline
from gde_ref.finetune.algos import ALGOS, make_buffer, make_learner, runs_on
from gde_ref.finetune.gde import AgentInputs
from gde_ref.losses.baselines import calql_sampled_penalty, cql_sampled_penalty
from gradcheck import assert_grad_close, numerical_grad
from test_finetune_cli import assert_same_run, run_cli, tiny_dataset
from test_finetune_mujoco import fake_offline, identity, run

OBS, ACT, B, M, HIDDEN = 5, 3, 8, 3, (16, 16)
STEP = CalQLConfig(hidden=HIDDEN, n_actions=M, initial_alpha=0.5, critic_lr=1e-2, actor_lr=1e-2, alpha_lr=1e-2,
                   polyak=0.2)
FROZEN = CalQLConfig(hidden=HIDDEN, n_actions=M, initial_alpha=0.7, critic_lr=0.0, actor_lr=0.0, alpha_lr=0.0,
                     polyak=0.0)
GAMMA = 0.9


def mc_batch(rng, dtype=np.float64, n=B):
    """A random MCBatch: G high for some states (their floors hold), -inf (unknown) or low for others."""
    b = reference_steps.make_batch(rng, OBS, ACT, n, dtype)
    g = np.where(np.arange(n) % 3 == 0, 3.0, np.where(np.arange(n) % 3 == 1, -np.inf, -30.0))
    g = g + (np.arange(n) % 3 != 1) * rng.uniform(-0.5, 0.5, n)
    return MCBatch(*b, g.astype(dtype))


def make_agent(cfg, seed=0, dtype=np.float64):
    agent = CalQLAgent(OBS, ACT, cfg, seed=seed, dtype=dtype)
    rng = np.random.default_rng(99)
    for target in (agent.twins.q1_target, agent.twins.q2_target):
        target += (0.05 * rng.standard_normal(target.size)).astype(dtype)
    return agent


def params_of(agent):
    out = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params, "q1t": agent.twins.q1_target,
           "q2t": agent.twins.q2_target, "log_alpha": agent.log_alpha}
    return {k: v.copy() for k, v in out.items()}


# ------------------------------------------------------------------------------------------------
# the calibrated penalty
# ------------------------------------------------------------------------------------------------
def penalty_inputs(rng, n=B, m=M):
    """Sampled Q-values, log-densities and Cal-QL floors (-inf on the uniform columns, G_i on the policy ones),
    every bounded Q at least 0.05 away from its floor (central differences never cross the kink)."""
    q_samples, log_density, q_data = rng.standard_normal((n, 3 * m)), rng.standard_normal((n, 3 * m)), \
        rng.standard_normal(n)
    g = rng.standard_normal(n)
    floor = np.concatenate([np.full((n, m), -np.inf), np.repeat(g[:, None], 2 * m, axis=1)], axis=1)
    near = np.isfinite(floor) & (np.abs(q_samples - floor) < 0.05)
    q_samples[near] += 0.1
    return q_samples, log_density, floor, q_data


def test_calibrated_penalty_value_and_gradients():
    """calql_sampled_penalty = alpha mean_i [logsumexp_j (max(q_ij, floor_ij) - log mu_ij) - q_i]; its gradients
    equal central differences (zero where the floor holds a Q-value); with every floor -inf it is CQL's penalty
    (to rounding); lifting a floor above the Q-values raises the penalty."""
    rng = np.random.default_rng(5)
    q_samples, log_density, floor, q_data = penalty_inputs(rng)
    alpha = 5.0
    loss, d_samples, d_data = calql_sampled_penalty(q_samples, log_density, floor, q_data, alpha)
    lifted = np.maximum(q_samples, floor)
    direct = alpha * np.mean(rc.logsumexp(lifted - log_density) - q_data)
    assert loss == pytest.approx(direct, rel=1e-12)
    held = q_samples < floor
    assert 0 < held.sum() < held[:, M:].size and not held[:, :M].any(), "some but not all policy Q-values held"
    f = lambda: calql_sampled_penalty(q_samples, log_density, floor, q_data, alpha)[0]  # noqa: E731
    assert_grad_close(f, q_samples, d_samples)
    assert_grad_close(f, q_data, d_data)
    assert np.all(d_samples[held] == 0.0) and np.all(d_samples[~held] > 0.0)
    no_floor = np.full_like(floor, -np.inf)
    cql = cql_sampled_penalty(q_samples, log_density, q_data, alpha)
    same = calql_sampled_penalty(q_samples, log_density, no_floor, q_data, alpha)
    assert same[0] == pytest.approx(cql[0], rel=1e-13)               # (compiled apart: reassociation may differ)
    np.testing.assert_allclose(same[1], cql[1], rtol=1e-12)
    np.testing.assert_allclose(same[2], cql[2], rtol=1e-12)
    assert calql_sampled_penalty(q_samples, log_density, floor + 10.0, q_data, alpha)[0] > loss
    assert calql_sampled_penalty(q_samples, log_density, floor, q_data, 0.0)[0] == 0.0


def test_calibrated_penalty_rejects_bad_input():
    rng = np.random.default_rng(6)
    q_samples, log_density, floor, q_data = penalty_inputs(rng)
    for bad in (np.nan, np.inf):
        f = floor.copy()
        f[0, -1] = bad
        with pytest.raises(ValueError, match="floor must be finite or -inf"):
            calql_sampled_penalty(q_samples, log_density, f, q_data, 1.0)
    with pytest.raises(ValueError, match=r"floor must have shape \(8, 9\)"):
        calql_sampled_penalty(q_samples, log_density, floor[:, :5], q_data, 1.0)
    with pytest.raises(TypeError, match="share one dtype"):
        calql_sampled_penalty(q_samples, log_density, floor.astype(np.float32), q_data, 1.0)
    with pytest.raises(ValueError, match=r"cql alpha must be in \[0.0, inf\]"):
        calql_sampled_penalty(q_samples, log_density, floor, q_data, -1.0)


# ------------------------------------------------------------------------------------------------
# the update step
# ------------------------------------------------------------------------------------------------
def test_calql_step_matches_reference():
    """Three float64 updates on MCBatches give the reference's stats and parameters to 1e-9; the floor holds
    some policy Q-values and not others, so the calibration matters in this check."""
    agent = make_agent(STEP)
    nets = rc.RefCQL(agent)
    rng = np.random.default_rng(1)
    for step in range(3):
        b = mc_batch(rng)
        noise = rc.draw_noise(copy.deepcopy(agent.noise_rng), B, ACT, M)
        stats = agent.update(b)
        expected = ref.calql_step(nets, b, noise)
        assert set(stats) == set(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(stats[name], value, rtol=1e-9, atol=1e-12, err_msg=f"{name} step {step}")
        assert 0.0 < expected["calibrated"] < 1.0, expected["calibrated"]
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_critic_gradients_match_central_differences_and_differ_from_cql():
    """With learning rates and Polyak 0, each twin's gradient equals central differences of the reference's
    Cal-QL loss; the same step with every G = -inf is CQL's step (same losses and gradients, to rounding)."""
    agent = make_agent(FROZEN, seed=3)
    b = mc_batch(np.random.default_rng(4))
    noise = rc.draw_noise(copy.deepcopy(agent.noise_rng), B, ACT, M)
    before = params_of(agent)
    stats = agent.update(b)
    for name, p in params_of(agent).items():
        assert np.array_equal(p, before[name]), name
    nets, n = rc.RefCQL(agent), agent.nets(B)
    for name, bundle in (("q1", n.penalty_critics.q1), ("q2", n.penalty_critics.q2)):
        x = nets.p[name].copy()
        numeric = numerical_grad(lambda: ref.critic_loss(x, name, nets, b, noise), x)
        np.testing.assert_allclose(bundle.grads, numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    calibrated = n.penalty_critics.q1.grads.copy()
    fields = {f.name: getattr(FROZEN, f.name) for f in dataclasses.fields(CQLConfig)}
    cql = CQLAgent(OBS, ACT, CQLConfig(**fields), seed=5, dtype=np.float64)
    cql.load_state(copy.deepcopy(agent.state()))                    # the same networks and noise generator
    plain = cql.update(Batch(*b[:5]))
    unbounded = agent.update(b._replace(mc_returns=np.full(B, -np.inf)))
    assert unbounded.pop("calibrated") == 0.0 and unbounded == pytest.approx(plain, rel=1e-12)
    np.testing.assert_allclose(agent.nets(B).penalty_critics.q1.grads, cql.nets(B).penalty_critics.q1.grads,
                               rtol=1e-10, atol=1e-14)
    assert not np.allclose(calibrated, cql.nets(B).penalty_critics.q1.grads), "the floor changed the gradient"
    assert stats["calibrated"] > 0


def test_bad_batches_and_configs_are_refused():
    agent = CalQLAgent(OBS, ACT, CalQLConfig(hidden=HIDDEN, n_actions=M), dtype=np.float32)
    b = mc_batch(np.random.default_rng(2), np.float32)
    with pytest.raises(TypeError, match="needs each state's Monte-Carlo return-to-go"):
        agent.update(Batch(*b[:5]))
    with pytest.raises(ValueError, match="mc_returns must be finite, or -inf"):
        agent.update(b._replace(mc_returns=np.full(B, np.nan, np.float32)))
    with pytest.raises(ValueError, match=r"mc_returns must have shape \(8,\)"):
        agent.update(b._replace(mc_returns=np.zeros(3, np.float32)))
    with pytest.raises(TypeError, match="needs a CalQLConfig"):
        CalQLAgent(OBS, ACT, CQLConfig())
    with pytest.raises(ValueError, match="mixing_ratio"):
        CalQLConfig(mixing_ratio=1.5)
    with pytest.raises(ValueError, match="discount in"):
        CalQLConfig(discount=1.0)


# ------------------------------------------------------------------------------------------------
# Monte-Carlo returns-to-go
# ------------------------------------------------------------------------------------------------
def hand_made_dataset():
    """4 trajectories, 10 rows: a terminal one (rows 0-2), a timeout (3-4), one whose timeout step was dropped
    (5-6: row 6's s' is not row 7's s, and no flag), a sparse failure cut by the end of the data (7-9)."""
    obs = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    next_obs = obs + 1
    next_obs[6] = 100.0                                   # the dropped step's s' (not row 7's s)
    rewards = np.array([1, 2, 3, 1, 1, 5, 5, -1, -1, -1], np.float32)
    terminals = np.zeros(10, bool)
    terminals[2] = True
    timeouts = np.zeros(10, bool)
    timeouts[4] = True
    return OfflineDataset(obs, np.zeros((10, 1), np.float32), rewards, next_obs, terminals, timeouts,
                          np.array([6.0, 2.0, 10.0, -3.0]), np.array([3, 2, 2, 3]), "hand-made")


def test_returns_to_go_of_a_hand_made_dataset():
    """G_t = r_t + gamma (1 - terminal_t) G_{t+1}, 0 after each trajectory's last step (terminal, timeout,
    dropped timeout, end of data; no bootstrap), and r_neg / (1 - gamma) for an all-r_neg trajectory."""
    data = hand_made_dataset()
    ends = trajectory_ends(data)
    assert np.flatnonzero(ends).tolist() == [2, 4, 6, 9]
    g = 0.9
    want = [1 + g * (2 + g * 3), 2 + g * 3, 3, 1 + g * 1, 1, 5 + g * 5, 5,
            -1 - g - g * g, -1 - g, -1]
    np.testing.assert_allclose(dataset_returns_to_go(data, g), want, rtol=1e-6)
    failure = dataset_returns_to_go(data, g, failure_reward=-1.0)
    np.testing.assert_allclose(failure, want[:7] + [-10.0] * 3, rtol=1e-6)
    mixed = returns_to_go([-1, 0, -1], np.zeros(3, bool), np.array([False, False, True]), g, failure_reward=-1.0)
    np.testing.assert_allclose(mixed, [-1 + g * (0 - g), -g, -1], rtol=1e-12)   # not all r_neg: the sum
    terminal_inside = returns_to_go([1, 1, 1], np.array([False, True, False]), np.zeros(3, bool), 0.5)
    np.testing.assert_allclose(terminal_inside, [1.5, 1.0, 1.0], rtol=1e-12)
    with pytest.raises(ValueError, match=r"discount in \[0, 1\)"):
        returns_to_go([1.0], np.zeros(1, bool), np.ones(1, bool), 1.0)
    with pytest.raises(ValueError, match="ends must be a bool array"):
        returns_to_go([1.0, 2.0], np.zeros(2, bool), np.ones(1, bool), 0.9)


def test_training_arrays_carry_scaled_returns_to_go():
    data = hand_made_dataset()
    arrays = prepare_transitions(data, GAMMA)
    assert isinstance(arrays.batch(np.random.default_rng(0), 4), Batch)
    with_g = with_returns_to_go(arrays, data, GAMMA, failure_reward=-1.0)
    np.testing.assert_allclose(with_g.mc_returns, dataset_returns_to_go(data, GAMMA, -1.0) * arrays.reward_scale,
                               rtol=1e-6)
    b1, b2 = arrays.batch(np.random.default_rng(3), 6), with_g.batch(np.random.default_rng(3), 6)
    assert isinstance(b2, MCBatch) and all(np.array_equal(x, y) for x, y in zip(b1, b2[:5]))
    idx = np.random.default_rng(3).integers(0, 10, 6)
    assert np.array_equal(b2.mc_returns, with_g.mc_returns[idx])


# ------------------------------------------------------------------------------------------------
# the online buffer: deferred fill
# ------------------------------------------------------------------------------------------------
def step(buffer, t, reward, stream="explore", terminated=False, truncated=False):
    obs = np.full(2, t, np.float32)
    buffer.add(obs, np.zeros(1, np.float32), reward, obs + 1, terminated, truncated, stream)


def test_deferred_fill_on_two_streams():
    """Rows enter at once with G = -inf; an episode's G is written when it ends: a termination (no bootstrap
    past it), a truncation or an evaluation stage's end (the sum so far, no bootstrap); the streams' episodes
    never mix; the sparse-failure rule applies online too."""
    buf = MCReplayBuffer(50, 2, 1, 1, GAMMA, failure_reward=-1.0)
    step(buf, 0, 1.0)
    step(buf, 10, -1.0, "stage")
    step(buf, 1, 2.0)
    assert len(buf) == 3 and np.all(buf.mc_returns[:3] == -np.inf), "sampleable, no bound yet"
    step(buf, 11, -1.0, "stage")
    step(buf, 2, 3.0, terminated=True)
    g = GAMMA
    np.testing.assert_allclose(buf.mc_returns[[0, 2, 4]], [1 + g * (2 + g * 3), 2 + g * 3, 3], rtol=1e-6)
    assert np.all(buf.mc_returns[[1, 3]] == -np.inf)
    buf.end_stream("stage")
    np.testing.assert_allclose(buf.mc_returns[[1, 3]], [-10.0, -10.0], rtol=1e-6)   # all r_neg: -1 / (1 - 0.9)
    step(buf, 3, 1.0)
    step(buf, 4, 1.0, truncated=True)
    np.testing.assert_allclose(buf.mc_returns[[5, 6]], [1 + g, 1], rtol=1e-6)
    buf.end_stream("stage")                                  # nothing running: nothing to do
    batch = buf.sample(5, np.random.default_rng(0))
    assert isinstance(batch, MCBatch) and batch.mc_returns.dtype == np.float32


def test_n_step_rows_get_their_first_state_return_and_the_ring_keeps_order():
    """With n = 3 the rows are ReplayBuffer's (same n-step rewards and discounts) and each row's G is that of
    its first state; in a ring smaller than the episode only the rows still stored get theirs."""
    mc, plain = MCReplayBuffer(50, 2, 1, 3, GAMMA), ReplayBuffer(50, 2, 1, 3, GAMMA)
    rewards = [1.0, 2.0, 3.0, 4.0, 5.0]
    for t, r in enumerate(rewards):
        for buf in (mc, plain):
            step(buf, t, r, terminated=t == 4)
    assert all(np.array_equal(getattr(mc.replay, k), getattr(plain, k)) for k in ("rewards", "discounts", "obs"))
    want = returns_to_go(rewards, np.array([0, 0, 0, 0, 1], bool), np.array([0, 0, 0, 0, 1], bool), GAMMA)
    np.testing.assert_allclose(mc.mc_returns[:5], want, rtol=1e-6)
    ring = MCReplayBuffer(3, 2, 1, 1, GAMMA)
    for t, r in enumerate(rewards):
        step(ring, t, r, truncated=t == 4)
    order = [3, 4, 2]                                        # ring rows 0, 1, 2 hold steps 3, 4, 2
    np.testing.assert_allclose(ring.mc_returns, want[order] + [0, 0, 0], rtol=1e-6)
    assert ring.replay.obs[:, 0].tolist() == [3.0, 4.0, 2.0]


def test_state_dict_mid_episode_continues_identically():
    """A buffer restored from a deep copy of state_dict() taken mid-episode (on two streams) ends, after the
    same further steps, with the same arrays, G included, as the one that was never saved."""
    a = MCReplayBuffer(20, 2, 1, 2, GAMMA)
    for t in range(3):
        step(a, t, float(t))
        step(a, 10 + t, 1.0, "stage")
    saved = copy.deepcopy(a.state_dict())
    assert {"mc_returns", "episode/explore/rewards", "episode/stage/ids", "pending/explore/obs"} <= set(saved)
    b = MCReplayBuffer(20, 2, 1, 2, GAMMA)
    b.load_state_dict(saved)
    for buf in (a, b):
        step(buf, 3, 4.0, terminated=True)
        buf.end_stream("stage")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
    assert np.isfinite(a.mc_returns[:len(a)]).all()
    with pytest.raises(ValueError, match="another capacity"):
        MCReplayBuffer(10, 2, 1, 2, GAMMA).load_state_dict(saved)


# ------------------------------------------------------------------------------------------------
# the algorithm table: the 50/50 buffer, the other rows on this backbone
# ------------------------------------------------------------------------------------------------
def test_calql_buffer_is_half_offline_half_online():
    """make_buffer('calql'): while the online part is empty a batch is all offline; then the first half of
    each batch comes from the offline data (with its dataset returns-to-go) and the second from the online
    episodes; AgentInputs scales G with the rewards. GDE and naive on this backbone get the filling buffer,
    other backbones and other algos the plain one; 'calql' refuses another backbone."""
    data = hand_made_dataset()
    agent = CalQLAgent(2, 1, CalQLConfig(hidden=(8,), discount=GAMMA, failure_reward=-1.0))
    buf = make_buffer("calql", 2, 1, GDEConfig(buffer_size=30), GAMMA, data, agent)
    assert isinstance(buf, MixedBuffer) and isinstance(buf.online, MCReplayBuffer)
    offline_g = dataset_returns_to_go(data, GAMMA, -1.0)
    first = buf.sample(10, np.random.default_rng(0))
    assert isinstance(first, MCBatch) and np.isin(first.mc_returns, offline_g).all()
    for t in range(3):
        step(buf, 50 + t, 7.0, terminated=t == 2)
    batch = buf.sample(10, np.random.default_rng(1))
    assert isinstance(batch, MCBatch) and buf.split(10) == (5, 5)
    assert np.all(batch.obs[:5, 0] < 10) and np.all(batch.obs[5:, 0] >= 50)
    online_g = returns_to_go([7.0] * 3, np.array([0, 0, 1], bool), np.array([0, 0, 1], bool), GAMMA)
    assert np.isin(batch.mc_returns[:5], offline_g).all()
    np.testing.assert_allclose(batch.mc_returns[5:], online_g[(batch.obs[5:, 0] - 50).astype(int)], rtol=1e-6)
    scaled = AgentInputs(ObsNormalizer.identity(2), 2.0).batch(batch)
    assert isinstance(scaled, MCBatch) and np.array_equal(scaled.mc_returns, batch.mc_returns * np.float32(2.0))
    assert isinstance(make_buffer("gde", 2, 1, GDEConfig(buffer_size=30), GAMMA, None, agent), MCReplayBuffer)
    assert isinstance(make_buffer("naive", 2, 1, GDEConfig(buffer_size=30), GAMMA, None, agent), MCReplayBuffer)
    iql = IQLAgent(2, 1, IQLConfig(hidden=(8,)))
    assert type(make_buffer("gde", 2, 1, GDEConfig(buffer_size=30), GAMMA, None, iql)) is ReplayBuffer
    with pytest.raises(ValueError, match="defined on the calql backbone"):
        make_learner("calql", iql, ObsNormalizer.identity(2), 1.0)
    with pytest.raises(ValueError, match="use n_step=1"):
        make_buffer("calql", 2, 1, GDEConfig(n_step=3), GAMMA, data, agent)


@pytest.mark.parametrize("algo", [a for a in ALGOS if runs_on(a, "calql")])
def test_every_algo_on_calql_runs_in_the_loop(algo):
    """Every algo defined on the calql backbone through a short loop with evaluation stages (hopper sizes)."""
    cfg = GDEConfig(buffer_size=500)
    offline = fake_offline()
    agent = CalQLAgent(11, 3, CalQLConfig(hidden=(16, 16), n_actions=2))
    buffer = make_buffer(algo, 11, 3, cfg, agent.config.discount, offline, agent)
    rows = run(make_learner(algo, agent, identity(), 1.0, cfg, offline=offline, buffer=buffer), buffer, total=150,
               period=60, steps=20)
    assert [r["env_step"] for r in rows] == [20, 80, 140]


# ------------------------------------------------------------------------------------------------
# pretraining and the CLI
# ------------------------------------------------------------------------------------------------
SMALL = CalQLConfig(hidden=(32, 32), batch_size=32, n_actions=2)


def test_tiny_pretrain_writes_a_calql_agent(tmp_path, monkeypatch):
    """gde-ref pretrain's recipe on the calql backbone: its batches carry G (the 'calibrated' statistic is
    logged), the offline.npz loads back as a CalQLAgent with its config."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    summary = pretrain("hopper-medium", str(tmp_path / "run"), 4, seed=0, eval_every=4, eval_episodes=1,
                       config=SMALL, backbone="calql")
    assert summary["backbone"] == "calql" and np.isfinite(summary["normalized_score"])
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert "calibrated" in header
    agent, _, meta = load_offline(tmp_path / "run" / "offline.npz", "hopper", "calql")
    assert isinstance(agent, CalQLAgent) and agent.config == SMALL and meta["backbone"] == "calql"
    data = load_dataset("hopper-medium")
    assert np.isfinite(dataset_returns_to_go(data, SMALL.discount)).all()


@pytest.mark.parametrize("algo", ["calql", "gde"])
def test_cli_finetune_on_calql_resumes_bit_identically(tmp_path, monkeypatch, capsys, algo):
    """gde-ref finetune --backbone calql --algo calql (50/50 buffer) or gde (online filling buffer): a run killed
    after its checkpoint at step 400 and resumed ends with every saved array (the online G and the running
    episodes included), the log and the summary of the uninterrupted run."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    agent = make_backbone("calql", 11, 3, SMALL)
    path = tmp_path / "offline" / "offline.npz"
    save_offline(path, agent, ObsNormalizer.identity(11), {"task": "hopper", "dataset": "hopper-medium",
                                                            "reward_scale": 1.0})
    stages = ["--eval-period", "150", "--eval-steps", "100"] if algo == "gde" else []
    args = ["--dataset", "hopper-medium", "--algo", algo, "--backbone", "calql", "--from", str(path), "--steps", "600",
            "--seed", "1", "--preset", "quick", "--checkpoint-period", "200", *stages]
    a, b = tmp_path / "A", tmp_path / "B"
    code, out, err = run_cli([*args, "--out", str(a)], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    kw = dict(eval_period=150, eval_steps=100) if algo == "gde" else {}
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", algo, str(b), offline_path=str(path), interrupt_at=300, backbone="calql",
                 steps=600, seed=1, preset="quick", checkpoint_period=200, **kw)
    arrays, _ = load_npz(b / "checkpoint.npz")
    online = "buffer/online/mc_returns" if algo == "calql" else "buffer/mc_returns"
    assert online in arrays and np.isfinite(arrays[online][:1]).all()
    code, out, err = run_cli([*args, "--out", str(b), "--resume"], capsys)
    assert code == 0, err
    assert_same_run(a, b, summary_a, json.loads(out))
    assert summary_a["algo"] == algo and summary_a["env_steps"] == 600
