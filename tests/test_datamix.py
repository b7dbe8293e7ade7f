"""Table 5's offline-data strategies for IQL fine-tuning (``data.priority``, ``finetune.datamix``): the sum-tree
against a slow obvious version, the filter, 5-step folding of the offline data, the density-ratio loss's
gradient, the priorities written after an update, and CLI runs (resume bit-identical for iql-balanced)."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from gradcheck import assert_grad_close, numerical_grad
from test_finetune_cli import assert_same_run, offline_file, run_cli, tiny_dataset
from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz
from gde_ref.config import GDEConfig, IQLConfig
from gde_ref.data import Batch
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.data.priority import SumTree, n_step_offline, top_trajectories
from gde_ref.data.trajectories import trajectory_starts
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.finetune.algos import make_buffer, make_learner
from gde_ref.finetune.datamix import DensityRatio, js_ratio_loss

OBS, ACT, B = 11, 3, 32
GAMMA = 0.99


# ------------------------------------------------------------------------------------------------
# the sum-tree
# ------------------------------------------------------------------------------------------------
def slow_find(priorities, values):
    """The obvious version: the first i whose cumulative sum exceeds v."""
    return np.searchsorted(np.cumsum(priorities), values, side="right")


def test_sum_tree_sums_and_descent_match_the_obvious_version():
    rng = np.random.default_rng(0)
    tree, p = SumTree(37), np.zeros(37)
    for _ in range(50):   # random partial updates, duplicates included
        idx = rng.integers(0, 37, rng.integers(1, 10))
        val = rng.uniform(0.0, 3.0, idx.size)
        tree.set(idx, val)
        p[idx] = val
        np.testing.assert_array_equal(tree.leaves, p)
        assert tree.total == pytest.approx(p.sum(), rel=1e-12)
        for k in range(1, tree.base):   # every inner node is the sum of its children
            assert tree.nodes[k] == tree.nodes[2 * k] + tree.nodes[2 * k + 1]
    values = rng.uniform(0, tree.total, 5000)
    cum = np.cumsum(p)
    far = np.min(np.abs(values[:, None] - cum[None, :]), axis=1) > 1e-9   # not on a boundary (rounding)
    np.testing.assert_array_equal(tree.find(values)[far], slow_find(p, values)[far])
    rebuilt = SumTree(37)
    rebuilt.load_leaves(tree.leaves.copy())
    np.testing.assert_array_equal(rebuilt.nodes, tree.nodes)   # bit-identical: a checkpoint restores it exactly


def test_sum_tree_samples_proportionally():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 1.0, 20) ** 2
    p[[3, 7]] = 0.0
    tree = SumTree(20)
    tree.set(np.arange(20), p)
    draws = np.concatenate([tree.sample(256, rng) for _ in range(800)])
    freq = np.bincount(draws, minlength=20) / draws.size
    want = p / p.sum()
    assert freq[3] == freq[7] == 0.0
    tolerance = 4 * np.sqrt(want * (1 - want) / draws.size) + 1e-4   # 4 binomial sigmas (stratified: fewer)
    assert (np.abs(freq - want) <= tolerance).all(), (freq, want)
    with pytest.raises(ValueError, match="sum to 0"):
        SumTree(4).sample(2, rng)
    with pytest.raises(ValueError, match="finite and >= 0"):
        tree.set([0], -1.0)


# ------------------------------------------------------------------------------------------------
# the raw dataset: trajectories, the filter, n-step folding
# ------------------------------------------------------------------------------------------------
def chain_dataset(lengths, rewards_per_step, ends, seed=0):
    """Trajectories of the given lengths, each a chain s_0 -> s_1 -> ... (s'_i = s_{i+1}); ends: per trajectory
    'terminal', 'timeout' or 'cut' (no flag: a D4RL file whose timeout row was dropped)."""
    rng = np.random.default_rng(seed)
    obs, nxt, rew, term, tout = [], [], [], [], []
    for length, r, end in zip(lengths, rewards_per_step, ends):
        states = rng.normal(size=(length + 1, OBS)).astype(np.float32)
        obs.append(states[:-1]), nxt.append(states[1:]), rew.append(np.full(length, r, np.float32))
        flags = np.zeros(length, bool)
        t, o = flags.copy(), flags.copy()
        t[-1], o[-1] = end == "terminal", end == "timeout"
        term.append(t), tout.append(o)
    n = sum(lengths)
    return SimpleNamespace(observations=np.concatenate(obs), next_observations=np.concatenate(nxt),
                           actions=rng.uniform(-1, 1, (n, ACT)).astype(np.float32), rewards=np.concatenate(rew),
                           terminals=np.concatenate(term), timeouts=np.concatenate(tout))


def test_filter_keeps_exactly_the_top_trajectories_holding_20_percent():
    # returns: 10*5=50, 5*20=100, 20*0.5=10, 15*(16/3)=80, 10*3=30, 40*0.125=5; 100 transitions, 20 needed
    lengths = [10, 5, 20, 15, 10, 40]
    data = chain_dataset(lengths, [5, 20, 0.5, 16 / 3, 3, 0.125], ["terminal", "timeout", "cut", "terminal",
                                                                    "timeout", "cut"])
    starts = np.cumsum([0] + lengths[:-1])
    np.testing.assert_array_equal(trajectory_starts(data), starts)
    want = np.concatenate([np.arange(starts[1], starts[1] + 5), np.arange(starts[3], starts[3] + 15)])
    np.testing.assert_array_equal(top_trajectories(data), want)   # the 100 and 80 trajectories: 5 + 15 = 20
    # 21% needs a third whole trajectory: the next best (50, 10 transitions)
    assert len(top_trajectories(data, 0.21)) == 30
    buffer = make_buffer("iql-filter", OBS, ACT, GDEConfig(buffer_size=100), offline=data)
    assert len(buffer) == 20 and buffer.capacity == 120
    np.testing.assert_array_equal(buffer.obs[:20], data.observations[want])
    np.testing.assert_array_equal(buffer.discounts[:20], np.where(data.terminals[want], 0.0, GAMMA).astype(np.float32))


def test_offline_five_step_returns_fold_like_the_online_buffer():
    """n_step_offline gives, row by row, what the online ReplayBuffer stores when the same steps are added."""
    data = chain_dataset([7, 3, 2, 6], [1.0, 2.0, 3.0, 0.5], ["terminal", "timeout", "cut", "cut"], seed=3)
    data.rewards = np.random.default_rng(4).normal(size=len(data.rewards)).astype(np.float32)
    obs, actions, returns, discounts, next_obs = n_step_offline(data, 5, GAMMA)
    online = ReplayBuffer(100, OBS, ACT, 5, GAMMA)
    starts = list(trajectory_starts(data)) + [len(data.rewards)]
    for a, b in zip(starts[:-1], starts[1:]):
        for i in range(a, b):
            last = i == b - 1
            online.add(data.observations[i], data.actions[i], data.rewards[i], data.next_observations[i],
                       bool(data.terminals[i]), last and not data.terminals[i])
    n = len(data.rewards)
    np.testing.assert_array_equal(online.obs[:n], obs)
    np.testing.assert_array_equal(online.next_obs[:n], next_obs)
    np.testing.assert_allclose(online.rewards[:n], returns, rtol=1e-6)
    np.testing.assert_allclose(online.discounts[:n], discounts, rtol=1e-6)
    # by hand: row 0 of the 7-step terminal trajectory, row 4 (3 steps to its terminal), the 3-step timeout one
    r = data.rewards.astype(np.float64)
    assert returns[0] == pytest.approx(sum(GAMMA ** k * r[k] for k in range(5)), rel=1e-6)
    assert discounts[0] == pytest.approx(GAMMA ** 5) and discounts[4] == 0.0
    assert returns[4] == pytest.approx(r[4] + GAMMA * r[5] + GAMMA ** 2 * r[6], rel=1e-6)
    assert discounts[7] == pytest.approx(GAMMA ** 3) and (next_obs[7] == data.next_observations[9]).all()


# ------------------------------------------------------------------------------------------------
# the density-ratio loss
# ------------------------------------------------------------------------------------------------
def test_density_ratio_loss_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    w_off, w_on = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 5)
    _, d_off, d_on = js_ratio_loss(w_off, w_on)
    assert_grad_close(lambda: js_ratio_loss(w_off, w_on)[0], w_off, d_off)
    assert_grad_close(lambda: js_ratio_loss(w_off, w_on)[0], w_on, d_on)
    # through the network (ReLU output, final bias 1), in its parameters
    ratio = DensityRatio(4, 2, (8, 8), seed=1, dtype=np.float64)
    x_off, x_on = rng.normal(size=(5, 6)) * 0.3, rng.normal(size=(4, 6)) * 0.3
    assert (ratio.net.forward(np.concatenate([x_off, x_on])) > 1e-3).all(), "away from the ReLU's kink"
    _, grads = ratio.loss_and_grad(x_off, x_on)
    numeric = numerical_grad(lambda: ratio.loss_and_grad(x_off, x_on)[0], ratio.net.params)
    np.testing.assert_allclose(grads, numeric, rtol=1e-6, atol=1e-8)
    # the minimiser is the density ratio w = d_online / d_offline: two points A, B, offline half and half,
    # online A three times out of four, so w(A) = 0.75 / 0.5 = 1.5 and w(B) = 0.25 / 0.5 = 0.5
    # (the loss is a sum of a term in w(A) and one in w(B): each is minimised alone)
    grid = np.linspace(0.05, 4.0, 3951)
    best_a = grid[np.argmin([js_ratio_loss(np.array([a, 0.5]), np.array([a, a, a, 0.5]))[0] for a in grid])]
    best_b = grid[np.argmin([js_ratio_loss(np.array([1.5, b]), np.array([1.5, 1.5, 1.5, b]))[0] for b in grid])]
    assert best_a == pytest.approx(1.5, abs=0.002) and best_b == pytest.approx(0.5, abs=0.002)


# ------------------------------------------------------------------------------------------------
# priorities written after an update
# ------------------------------------------------------------------------------------------------
SMALL = IQLConfig(hidden=(16, 16), batch_size=B)


def setup(algo, seed=0):
    data = chain_dataset([12, 8, 20], [1.0, 0.5, 0.2], ["terminal", "timeout", "cut"], seed=seed)
    agent = IQLAgent(OBS, ACT, SMALL, seed=seed)
    norm = ObsNormalizer(np.full(OBS, 0.1, np.float32), np.full(OBS, 2.0, np.float32))
    cfg = GDEConfig(buffer_size=50)
    buffer = make_buffer(algo, OBS, ACT, cfg, offline=data, agent=agent)
    learner = make_learner(algo, agent, norm, 0.5, cfg, offline=data, buffer=buffer)
    rng = np.random.default_rng(seed)
    for _ in range(15):   # some online steps
        buffer.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), rng.normal(), rng.normal(size=OBS), False,
                   stream="explore")
    return agent, norm, buffer, learner, rng


def mlp_by_hand(net, x):
    h = x.astype(np.float64)
    n_layers = len(net.sizes) - 1
    for k in range(n_layers):
        h = h @ net.views[f"{k}.weight"] + net.views[f"{k}.bias"]
        h = np.maximum(h, 0.0) if k < n_layers - 1 else h
    return h[:, 0]


def test_per_priorities_after_an_update_are_the_td_errors_by_hand():
    agent, norm, buffer, learner, rng = setup("iql-per")
    assert buffer.n_step == 5 and len(buffer) == 40 + 11   # 15 online steps: 11 folded, 4 pending
    np.testing.assert_array_equal(buffer.tree.leaves[:51], 1.0)   # offline and new online: the running max, 1
    batch = buffer.sample(B, rng)
    learner.update(batch, 0.0)
    obs, nxt = (batch.obs - norm.mean) / norm.std, (batch.next_obs - norm.mean) / norm.std
    x = np.concatenate([obs, batch.actions], axis=1)
    q = np.minimum(mlp_by_hand(agent.q1, x), mlp_by_hand(agent.q2, x))
    target = 0.5 * batch.rewards + batch.discounts * mlp_by_hand(agent.value, nxt)
    want = (np.abs(target - q) + 1e-3) ** 0.6
    np.testing.assert_allclose(buffer.tree.leaves[batch.indices], want, rtol=1e-4)
    untouched = np.setdiff1d(np.arange(51), batch.indices)
    np.testing.assert_array_equal(buffer.tree.leaves[untouched], 1.0)
    assert buffer.max_priority == pytest.approx(max(1.0, want.max()), rel=1e-4)
    assert buffer.tree.total == pytest.approx(buffer.tree.leaves.sum())
    buffer.add(np.zeros(OBS), np.zeros(ACT), 0.0, np.ones(OBS), True, stream="explore")  # folds 5 pending steps
    assert (buffer.tree.leaves[51:56] == buffer.max_priority).all()
    with pytest.raises(TypeError, match="its own buffer"):
        learner.update(Batch(*batch), 0.0)


def test_balanced_priorities_after_an_update_follow_the_density_ratio_by_hand():
    agent, norm, buffer, learner, rng = setup("iql-balanced")
    first_max = 40 * 0.5 / (0.5 * 1000)
    np.testing.assert_array_equal(buffer.tree.leaves[:40], 1.0)
    np.testing.assert_array_equal(buffer.tree.leaves[40:55], first_max)
    batch = buffer.sample(B, rng)
    off, on = batch.parts
    assert len(off.rewards) == len(on.rewards) == 256 and np.isin(on.obs[:, 0], buffer.online.obs[:15, 0]).all()
    stats = learner.update(batch, 0.0)
    assert np.isfinite(stats["density_loss"])

    def w(b):
        x = np.concatenate([(b.obs - norm.mean) / norm.std, b.actions], axis=1)
        return np.maximum(mlp_by_hand(learner.density.net, x), 0.0)

    want = np.clip(w(batch) ** 0.2 / np.mean(w(off) ** 0.2), 1e-3, 1e3)
    np.testing.assert_allclose(buffer.tree.leaves[batch.indices], want, rtol=1e-4)
    assert buffer.max_priority == pytest.approx(max(first_max, want.max()))


def test_bad_input_is_refused_clearly():
    data = chain_dataset([12, 8], [1.0, 0.5], ["terminal", "cut"])
    with pytest.raises(ValueError, match="5-step transitions"):
        make_buffer("iql-per", OBS, ACT, GDEConfig(n_step=3), offline=data)
    with pytest.raises(ValueError, match="1-step"):
        make_buffer("iql-balanced", OBS, ACT, GDEConfig(n_step=3), offline=data)
    with pytest.raises(ValueError, match="offline dataset"):
        make_buffer("iql-filter", OBS, ACT, GDEConfig())


# ------------------------------------------------------------------------------------------------
# the CLI: a run of each, resume bit-identical
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A tiny hopper-medium (``tiny_dataset``) and an offline agent."""
    folder = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as mp:
        tiny_dataset(folder, mp)
    return folder, offline_file(tmp_path_factory.mktemp("offline"), "hopper", OBS, ACT)


CLI = ["--dataset", "hopper-medium", "--steps", "300", "--seed", "1", "--preset", "quick", "--checkpoint-period", "100"]


@pytest.mark.parametrize("algo", ["iql-filter", "iql-per"])
def test_cli_runs(datasets, tmp_path, capsys, monkeypatch, algo):
    folder, agent = datasets
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(folder))
    code, out, err = run_cli([*CLI, "--algo", algo, "--from", agent, "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["algo"] == algo and summary["env_steps"] == 300 and np.isfinite(summary["final_normalized_score"])
    arrays, meta = load_npz(tmp_path / "run" / "checkpoint.npz")
    if algo == "iql-per":
        assert meta["buffer_n_step"] == 5 and (arrays["buffer/priorities"] != 1.0).any()


def test_balanced_cli_run_resumes_bit_identically(datasets, tmp_path, capsys, monkeypatch):
    """Run A straight through (CLI); run B interrupted after its checkpoint at step 200, then resumed: every
    saved array (priorities, density-ratio network and its Adam state included), the log and summary equal."""
    folder, agent = datasets
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(folder))
    a, b = tmp_path / "A", tmp_path / "B"
    code, out, err = run_cli([*CLI, "--algo", "iql-balanced", "--from", agent, "--out", str(a)], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "iql-balanced", str(b), offline_path=agent, interrupt_at=150, steps=300, seed=1,
                 preset="quick", checkpoint_period=100)
    code, out, err = run_cli(["--out", str(b), "--resume"], capsys)
    assert code == 0, err
    assert_same_run(a, b, summary_a, json.loads(out))
    arrays, _ = load_npz(a / "checkpoint.npz")
    assert {"buffer/priorities", "buffer/max_priority", "learner/density/params", "learner/density/adam/t"} \
        <= set(arrays)
    assert int(arrays["learner/density/adam/t"][0]) > 0
