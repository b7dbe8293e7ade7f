"""SAC from scratch (FromScratch, Table 2) and SAC with a preloaded buffer (Appendix C.1, Table 8):
``finetune.scratch`` and its two rows of ``finetune.algos``. The update itself is ``SACAgent.update``
(checked against a NumPy reference in test_sac.py); here: what the learners add around it."""
import json

import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.checkpoint import load_npz
from gde_ref.cli import main
from gde_ref.config import GDEConfig, IQLConfig, SACConfig, TD3BCConfig
from gde_ref.data import Batch
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.finetune.algos import make_buffer, make_learner
from gde_ref.finetune.scratch import ScratchSAC
from test_finetune_cli import assert_same_checkpoint, offline_file, tiny_dataset

OBS, ACT, B = 11, 3, 32   # Hopper-v5


def iql(seed=0):
    return IQLAgent(OBS, ACT, IQLConfig(hidden=(32, 32), batch_size=B), seed=seed)


def raw_batch(rng, n=B):
    return Batch(rng.normal(size=(n, OBS)).astype(np.float32), rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                 rng.normal(size=n).astype(np.float32), np.full(n, 0.99, np.float32),
                 rng.normal(size=(n, OBS)).astype(np.float32))


def fake_offline(n=50):
    """Raw offline transitions whose states (1e6) can never come from Hopper."""
    from types import SimpleNamespace
    return SimpleNamespace(observations=np.full((n, OBS), 1e6, np.float32), actions=np.zeros((n, ACT), np.float32),
                           rewards=np.ones(n, np.float32), next_observations=np.full((n, OBS), 1e6, np.float32),
                           terminals=np.arange(n) % 10 == 9)


def snapshot(learner):
    return {k: np.array(v, copy=True) for k, v in learner.state().items() if isinstance(v, np.ndarray)}


def test_networks_are_fresh_and_independent_of_the_offline_agent_and_data():
    """The SAC networks are not the offline agent's; neither its networks, its backbone, the data's normaliser
    nor its reward scale change anything: the same seed gives the same actions and updates (Table 8 reports
    one FromScratch score per task, whatever the dataset)."""
    rng = np.random.default_rng(0)
    offline = iql()
    a = make_learner("fromscratch", offline, ObsNormalizer(np.full(OBS, 3.0, np.float32), np.full(OBS, 2.0, np.float32)),
                     0.25, seed=4)
    b = make_learner("fromscratch", TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=(8, 8)), seed=9),
                     ObsNormalizer.identity(OBS), 1.0, seed=4)
    assert a.sac.actor.params.size != offline.actor.params.size, "SAC's own 2 x 256 actor, not the offline one"
    assert not any(np.shares_memory(v, w) for v in a.state().values() if isinstance(v, np.ndarray)
                   for w in offline.state().values() if isinstance(w, np.ndarray))
    for k, v in snapshot(a).items():
        np.testing.assert_array_equal(v, snapshot(b)[k], err_msg=k)
    a.explore_steps = b.explore_steps = a.config.learning_starts     # past the warm-up
    batch = raw_batch(rng)
    assert a.update(batch, 0.1) == b.update(batch, 0.1)
    obs = rng.normal(size=OBS)
    np.testing.assert_array_equal(a.exploit_action(obs), b.exploit_action(obs))
    c = make_learner("fromscratch", offline, ObsNormalizer.identity(OBS), 1.0, seed=5)
    assert not np.array_equal(c.sac.actor.params, make_learner("fromscratch", offline, ObsNormalizer.identity(OBS),
                                                               1.0, seed=4).sac.actor.params), "the seed matters"


def test_fromscratch_warms_up_uniformly_without_updates_then_trains():
    rng = np.random.default_rng(1)
    learner = make_learner("fromscratch", iql(), ObsNormalizer.identity(OBS), 1.0)
    assert learner.config.learning_starts == SACConfig().learning_starts == 5000
    assert learner.config.target_entropy is None and learner.sac.target_entropy == -ACT   # GDE B.3: -|A|
    before = snapshot(learner)
    obs = rng.normal(size=OBS)
    actions = np.array([learner.explore_action(obs, rng) for _ in range(400)])
    assert actions.dtype == np.float32 and np.abs(actions).max() <= 1.0
    # uniform in [-1, 1]^A at one state: mean 0, variance 1/3 (the policy's samples would centre on its mean)
    assert np.abs(actions.mean(0)).max() < 0.1 and np.abs(actions.var(0) - 1 / 3).max() < 0.05
    assert learner.update(raw_batch(rng), 0.0) == {}
    for k, v in snapshot(learner).items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed during the warm-up")
    learner.explore_steps = 5000
    stats = learner.update(raw_batch(rng), 0.5)
    assert {"critic_loss", "actor_loss", "alpha", "q_mean"} <= set(stats)
    after = snapshot(learner)
    for k in ("sac/actor", "sac/q1", "sac/q2", "sac/q1_target", "sac/q2_target", "sac/log_alpha"):
        assert not np.array_equal(after[k], before[k]), f"{k} unchanged by an update"
    # past the warm-up the exploration action is a sample of the policy around its mean tanh(mu(s))
    samples = np.array([learner.explore_action(obs, rng) for _ in range(200)])
    assert len({tuple(s) for s in samples}) == 200
    np.testing.assert_array_equal(learner.exploit_action(obs), learner.exploit_action(obs))


def test_sac_preload_trains_from_its_first_step_on_a_buffer_that_starts_with_the_offline_data():
    cfg = GDEConfig(buffer_size=100)
    buffer = make_buffer("sac-preload", OBS, ACT, cfg, offline=fake_offline())
    assert len(buffer) == 50 and (buffer.obs[:50] == 1e6).all() and buffer.capacity == 150
    assert len(make_buffer("fromscratch", OBS, ACT, cfg, offline=fake_offline())) == 0
    learner = make_learner("sac-preload", iql(), ObsNormalizer.identity(OBS), 1.0, cfg, offline=fake_offline(),
                           buffer=buffer)
    assert learner.config.learning_starts == 0
    before = snapshot(learner)["sac/actor"]
    stats = learner.update(buffer.sample(B, np.random.default_rng(0)), 0.0)
    assert np.isfinite(stats["critic_loss"]) and not np.array_equal(snapshot(learner)["sac/actor"], before)
    with pytest.raises(ValueError, match="offline data"):
        make_buffer("sac-preload", OBS, ACT, cfg)


def test_state_round_trip_continues_exactly():
    """A learner restored from another's state() (mid warm-up count, noise generator, Adam moments) takes the
    same actions and updates as the original from then on."""
    rng = np.random.default_rng(2)
    config = SACConfig(hidden=(16, 16), learning_starts=3)
    a = ScratchSAC(OBS, ACT, ObsNormalizer.identity(OBS), 1.0, config, seed=1)
    for _ in range(4):
        a.explore_action(rng.normal(size=OBS), rng)
        a.update(raw_batch(rng), 0.0)
    saved = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in a.state().items()}
    b = ScratchSAC(OBS, ACT, ObsNormalizer.identity(OBS), 1.0, config, seed=7)
    b.load_state(saved)
    assert b.explore_steps == 4 and not b.warming_up
    obs, batch = rng.normal(size=OBS), raw_batch(rng)
    np.testing.assert_array_equal(a.explore_action(obs, np.random.default_rng(3)),
                                  b.explore_action(obs, np.random.default_rng(3)))
    assert a.update(batch, 0.5) == b.update(batch, 0.5)
    for k, v in snapshot(a).items():
        np.testing.assert_array_equal(v, snapshot(b)[k], err_msg=k)


def test_bad_input_gives_a_clear_error():
    with pytest.raises(ValueError, match="action_temperature applies to the naive variants"):
        make_learner("fromscratch", iql(), ObsNormalizer.identity(OBS), 1.0, action_temperature=0.5)
    with pytest.raises(ValueError, match="seed, an integer >= 0"):
        ScratchSAC(OBS, ACT, ObsNormalizer.identity(OBS), 1.0, seed=-1)
    with pytest.raises(TypeError, match="SACConfig"):
        ScratchSAC(OBS, ACT, ObsNormalizer.identity(OBS), 1.0, config=IQLConfig())
    with pytest.raises(ValueError, match="normaliser is for 4-dimensional states"):
        ScratchSAC(OBS, ACT, ObsNormalizer.identity(4), 1.0)
    with pytest.raises(ValueError, match="reward_scale"):
        ScratchSAC(OBS, ACT, ObsNormalizer.identity(OBS), 0.0)
    naive = make_learner("naive", iql(), ObsNormalizer.identity(OBS), 1.0)
    with pytest.raises(ValueError, match="not saved by a SAC-from-scratch learner"):
        make_learner("fromscratch", iql(), ObsNormalizer.identity(OBS), 1.0).load_state(naive.state())


# ------------------------------------------------------------------------------------------------
# through the CLI (quick preset, Hopper)
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    return {"iql": offline_file(folder, "hopper", OBS, ACT), "td3bc": offline_file(folder, "hopper", OBS, ACT, "td3bc")}


def cli(args, capsys):
    code = main(["finetune", "--json", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_fromscratch_quick_run_does_not_depend_on_the_offline_agent(agents, tmp_path, capsys):
    """Two quick runs from two different offline agents (IQL, TD3+BC) end with equal SAC networks and equal
    buffers: the learner never reads the offline networks. 600 steps < 5000: the whole run is the warm-up."""
    runs = {}
    for backbone in ("iql", "td3bc"):
        out = tmp_path / backbone
        summary = cli(["--dataset", "hopper-medium", "--algo", "fromscratch", "--preset", "quick", "--from",
                       agents[backbone], "--backbone", backbone, "--out", str(out)], capsys)
        assert summary["algo"] == "fromscratch" and summary["env_steps"] == 600
        assert np.isfinite(summary["final_normalized_score"]) and summary["teacher_swaps"] == 0
        runs[backbone] = load_npz(out / "checkpoint.npz")
    (a, meta_a), (b, meta_b) = runs["iql"], runs["td3bc"]
    assert meta_a["learner"]["explore_steps"] == 600 == meta_b["learner"]["explore_steps"]
    learned = [k for k in a if k.startswith(("learner/sac/", "buffer/"))]
    assert "learner/sac/actor" in learned and "learner/agent/actor" not in a
    for k in learned:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    actions = a["buffer/actions"][:600]
    assert np.abs(actions).max() <= 1 and np.abs(actions.mean(0)).max() < 0.1, "uniform warm-up actions"
    with pytest.raises(ValueError, match="--kl-weight would do nothing for fromscratch"):
        finetune("hopper-medium", "fromscratch", str(tmp_path / "bad"), offline_path=agents["iql"], preset="quick",
                 kl_weight=0.5, given=("kl_weight",))


def test_sac_preload_resume_is_bit_identical_to_an_uninterrupted_run(agents, tmp_path, capsys, monkeypatch):
    """sac-preload (no warm-up: it updates from the first step, drawing its noise from its own generator) on a
    tiny hopper-medium dataset: run A straight through, run B killed after its checkpoint at step 200 and
    resumed; every saved array, the log and the summary are equal, and the buffer holds the offline data."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    budget = ["--steps", "400", "--seed", "1", "--preset", "quick", "--checkpoint-period", "200"]
    a, b = tmp_path / "A", tmp_path / "B"
    summary_a = cli(["--dataset", "hopper-medium", "--algo", "sac-preload", "--from", agents["iql"], "--out", str(a),
                     *budget], capsys)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "sac-preload", str(b), offline_path=agents["iql"], interrupt_at=100, steps=400,
                 seed=1, preset="quick", checkpoint_period=200)
    _, meta = load_npz(b / "checkpoint.npz")
    assert meta["loop"]["env_step"] == 200 and meta["loop"]["updates"] == 200
    summary_b = cli(["--out", str(b), "--resume"], capsys)
    assert_same_checkpoint(a / "checkpoint.npz", b / "checkpoint.npz")
    assert (a / "log.csv").read_text() == (b / "log.csv").read_text()
    speed = "env_steps_per_second"
    assert {k: v for k, v in summary_a.items() if k != speed} == {k: v for k, v in summary_b.items() if k != speed}
    arrays, meta = load_npz(a / "checkpoint.npz")
    size = int(arrays["buffer/counters"][0])
    assert size > 400, "the offline transitions are in the buffer too"
    offline = arrays["buffer/obs"][:size - 400]
    assert offline.shape[0] <= 160 and meta["learner"]["explore_steps"] == 400   # 4 rollouts of <= 40 steps


@pytest.mark.parametrize("algo", ["fromscratch", "sac-preload"])
def test_reset_optimizers_is_refused_for_the_rows_that_never_read_the_offline_optimizers(algo):
    from gde_ref.experiments.finetune import check_settings
    settings = {"backbone": "iql", "evaluation_stages": False, "action_temperature": 1.0, "eval_steps": 50,
                "steps": 600, "checkpoint_period": 200}
    check_settings(algo, settings, given=())
    with pytest.raises(ValueError, match="--reset-optimizers would do nothing for " + algo):
        check_settings(algo, settings, given=("reset_optimizers",))
