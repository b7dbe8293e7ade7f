"""JSRL (``finetune.jsrl``): the curriculum's h sequence, the advance rule, the guide/learner hand-over in the
shared loop, the buffer, and a resumed CLI run that ends bit-identical to an uninterrupted one."""
import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.config import GDEConfig
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import make_env
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.checkpoint import load_npz
from gde_ref.finetune.algos import make_buffer, make_learner
from gde_ref.finetune.jsrl import JSRLConfig, JSRLFinetuner, advance, curriculum
from gde_ref.finetune.loop import LoopConfig, run_online
from test_finetune_cli import BUDGET, CLI_BUDGET, SMALL, assert_same_run, offline_file, run_cli, tiny_dataset

OBS, ACT = 11, 3   # Hopper-v5


def agent(seed=0):
    return IQLAgent(OBS, ACT, SMALL, seed=seed)


def identity():
    return ObsNormalizer.identity(OBS)


def small_offline(n=64, seed=0):
    """Raw offline transitions of Hopper's sizes (4 episodes of 16 steps)."""
    rng = np.random.default_rng(seed)
    return SimpleNamespace(observations=rng.normal(size=(n, OBS)).astype(np.float32),
                           actions=rng.uniform(-1, 1, (n, ACT)).astype(np.float32),
                           rewards=rng.normal(size=n).astype(np.float32),
                           next_observations=rng.normal(size=(n, OBS)).astype(np.float32),
                           terminals=np.zeros(n, bool), episode_lengths=np.full(n // 16, 16))


# ------------------------------------------------------------------------------------------------
# the curriculum and the advance rule
# ------------------------------------------------------------------------------------------------
def test_curriculum_is_h1_minus_k_h1_over_n_down_to_zero():
    assert curriculum(1000, 10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert curriculum(57, 10) == [51, 46, 40, 34, 29, 23, 17, 11, 6, 0]   # 51.3, 45.6, 39.9, ... rounded half up
    assert curriculum(10, 4) == [8, 5, 3, 0]                              # 7.5 -> 8, 2.5 -> 3
    assert curriculum(400.5, 1) == [0]
    for h1, n in ((3, 10), (123.4, 7)):
        hs = curriculum(h1, n)
        assert len(hs) == n and hs[-1] == 0 and all(a >= b for a, b in zip(hs, hs[1:]))
    for h1, n, message in ((0, 10, "H_1"), (-5, 10, "H_1"), (100, 0, "n_stages"), (100, 2.5, "n_stages")):
        with pytest.raises(ValueError, match=message):
            curriculum(h1, n)


def test_advance_rule_on_hand_made_returns():
    assert advance([10.0, 20.0], 100.0, 3, 0.05) == (False, 100.0)      # fewer than `window`: no decision
    assert advance([10.0, 20.0, 30.0], None, 3, 0.05) == (False, 20.0)   # the first moving average sets best
    assert advance([95.0] * 5, 100.0, 5, 0.05) == (True, 100.0)          # within 5% of the best
    assert advance([94.0, 95.0, 95.0, 95.0, 95.5], 100.0, 5, 0.05) == (False, 100.0)   # 94.9: just outside
    assert advance([0.0, 120.0, 120.0], 100.0, 2, 0.05) == (True, 120.0)  # only the last `window` count
    assert advance([100.0], 100.0, 1, 0.0) == (True, 100.0)              # tolerance 0: equal is enough
    assert advance([99.0], 100.0, 1, 0.0) == (False, 100.0)
    assert advance([-104.0], -100.0, 1, 0.05) == (True, -100.0)          # negative: best - 5% |best| = -105
    assert advance([-106.0], -100.0, 1, 0.05) == (False, -100.0)
    with pytest.raises(ValueError, match="window"):
        advance([1.0], 1.0, 0, 0.05)


def episode(learner, ret, steps, obs=np.zeros(OBS), rng=np.random.default_rng(0)):
    for _ in range(steps):
        learner.explore_action(obs, rng)
    learner.end_episode(ret, steps)


def test_the_learner_advances_within_tolerance_only_and_never_past_h_zero():
    cfg = JSRLConfig(n_stages=3, window=2, tolerance=0.1, h1_episodes=2)
    learner = JSRLFinetuner(agent(), identity(), 1.0, cfg)
    episode(learner, 5.0, 8)
    assert learner.guide_steps is None and learner.h1 is None     # still measuring H_1
    episode(learner, 7.0, 12)
    assert learner.h1 == 10.0 and learner.hs == [7, 3, 0] and learner.guide_steps == 7
    for ret in (100.0, 100.0):                  # a first window: best = 100, no advance
        episode(learner, ret, 9)
    assert learner.stage == 1 and learner.best == 100.0
    episode(learner, 84.0, 9)                   # (100 + 84) / 2 = 92 >= 90: advance; the window restarts
    assert learner.stage == 2 and learner.guide_steps == 3 and learner.returns == []
    for ret in (50.0, 50.0, 95.0):              # 50, then 72.5: below 90
        episode(learner, ret, 9)
        assert learner.stage == 2
    episode(learner, 95.0, 9)                   # 95 >= 90: advance to h = 0
    assert learner.guide_steps == 0 and learner.advances == [[47, 3], [83, 0]]
    for ret in (1000.0, 1000.0, 1000.0):
        episode(learner, ret, 9)
    assert learner.stage == 3 and learner.guide_steps == 0 and learner.best == 100.0
    with pytest.raises(RuntimeError, match="explore_action"):
        learner.end_episode(1.0, 5)


def test_settings_and_bad_input():
    offline = small_offline()
    off = agent()
    learner = JSRLFinetuner(off, identity(), 1.0, JSRLConfig(h1_from="dataset"), offline=offline)
    assert learner.h1 == 16.0 and learner.guide_steps == 14 and learner.agent is off   # warm start: in place
    cold = JSRLFinetuner(off, identity(), 1.0, JSRLConfig(warm_start=False), seed=3)
    assert cold.agent is not off and not np.array_equal(cold.agent.actor.params, off.actor.params)
    np.testing.assert_array_equal(cold.guide_actor.params, off.actor.params)
    with pytest.raises(ValueError, match="episode_lengths"):
        JSRLFinetuner(agent(), identity(), 1.0, JSRLConfig(h1_from="dataset"))
    for bad, message in (({"n_stages": 0}, "n_stages"), ({"tolerance": -0.1}, "tolerance"),
                         ({"h1_from": "eval"}, "h1_from"), ({"offline_fraction": 1.5}, "offline_fraction")):
        with pytest.raises(ValueError, match=message):
            JSRLConfig(**bad)
    with pytest.raises(ValueError, match="offline data"):
        make_buffer("jsrl", OBS, ACT, GDEConfig(buffer_size=100))
    with pytest.raises(ValueError, match="action_temperature"):
        make_learner("jsrl", agent(), identity(), 1.0, action_temperature=2.0)
    with pytest.raises(ValueError, match="iql"):
        make_learner("jsrl", SimpleNamespace(name="td3bc"), identity(), 1.0)


# ------------------------------------------------------------------------------------------------
# in the loop: the guide's h actions, then the learner's
# ------------------------------------------------------------------------------------------------
class Recorder:
    """Wraps a JSRL learner: for every exploration step, the episode step t (counted here), the h in force,
    the action, the guide's own mean action and the learner's sample with the same random numbers."""

    def __init__(self, learner, guide):
        self.learner, self.guide, self.t, self.steps, self.lengths = learner, guide, 0, [], []

    def explore_action(self, obs, rng):
        obs32 = obs.astype(np.float32)
        before = copy.deepcopy(rng)
        h = self.learner.guide_steps
        action = self.learner.explore_action(obs, rng).copy()
        self.steps.append((self.t, h, action, self.guide.act(obs32), self.learner.agent.act(obs32, before)))
        self.t += 1
        return action

    def end_episode(self, episode_return, episode_steps):
        self.lengths.append(self.t)
        self.t = 0
        self.learner.end_episode(episode_return, episode_steps)

    def __getattr__(self, name):
        return getattr(self.learner, name)


def test_guide_acts_the_first_h_steps_of_every_episode_and_the_learner_after():
    off, guide = agent(), agent()          # guide: an untouched twin of the offline agent
    cfg = GDEConfig(buffer_size=1000)
    buffer = make_buffer("jsrl", OBS, ACT, cfg, offline=small_offline(), agent=off)
    jsrl = JSRLConfig(n_stages=5, h1_episodes=2, window=1, tolerance=10.0)   # advance after every episode
    learner = JSRLFinetuner(off, identity(), 1.0, jsrl)                       # past stage 1's first
    rec = Recorder(learner, guide)
    # evaluation stages too: their steps are no exploration episode's
    loop = LoopConfig(total_steps=800, eval_period=200, eval_steps=20, batch_size=32)
    rows = run_online(make_env("hopper"), make_env("hopper"), rec, buffer, loop, np.random.default_rng(0))
    assert [r["jsrl_stage"] for r in rows][:1] == [0] and all(r["teacher_swapped"] == 0 for r in rows)
    assert learner.h1 == np.mean(rec.lengths[:2]) and learner.hs == curriculum(learner.h1, 5)
    assert learner.stage == 5 and len(learner.advances) == 4, "the curriculum reached h = 0 within the run"
    seen = set()
    for t, h, action, guide_action, learner_sample in rec.steps:
        if h is None or t < h:
            np.testing.assert_array_equal(action, guide_action, strict=True)
            seen.add("guide")
        else:
            np.testing.assert_array_equal(action, learner_sample, strict=True)
            assert not np.array_equal(action, guide_action)
            seen.add("learner")
        if h is not None and 0 < h and t >= h:
            seen.add("hand-over")   # guide then learner within one episode
    assert seen == {"guide", "learner", "hand-over"}
    assert {h for _, h, *_ in rec.steps} >= {None, 0} and len({h for _, h, *_ in rec.steps}) >= 5
    np.testing.assert_array_equal(learner.guide_actor.params, guide.actor.params)   # the guide is frozen
    assert not np.array_equal(off.actor.params, guide.actor.params)                 # the learner was trained
    assert len(buffer.offline) == 64 and len(buffer.online) == 800 and buffer.split(32) == (8, 24)


# ------------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------------
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, monkeypatch, capsys):
    """The quick preset on a tiny hopper-medium dataset: run A straight through (CLI), run B stopped after its
    checkpoint at step 400 and resumed: checkpoints (the curriculum's position included), logs and summaries
    are equal."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    agent_path = offline_file(tmp_path / "offline", "hopper", OBS, ACT)
    a, b = tmp_path / "A", tmp_path / "B"
    code, out, err = run_cli(["--dataset", "hopper-medium", "--algo", "jsrl", "--from", agent_path, "--out", str(a),
                              *CLI_BUDGET], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "jsrl", str(b), offline_path=agent_path, interrupt_at=300,
                 **{k: v for k, v in BUDGET.items() if k not in ("eval_period", "eval_steps")})
    _, meta = load_npz(b / "checkpoint.npz")
    mid = meta["learner"]
    assert meta["loop"]["env_step"] == 400 and mid["jsrl/h1"] > 0 and mid["jsrl/stage"] >= 1
    assert mid["jsrl/episode_step"] == meta["loop"]["episode_steps"] > 0, "stopped mid-episode"
    code, out, err = run_cli(["--out", str(b), "--resume"], capsys)
    assert code == 0, err
    assert_same_run(a, b, summary_a, json.loads(out))
    _, end = load_npz(a / "checkpoint.npz")
    assert end["learner"]["jsrl/explore_steps"] == 600 and not summary_a["evaluation_stages"]


def test_raw_inputs_are_normalised_once():
    """With the data's normaliser and reward scale, fed raw observations and batches, the learner acts (guide
    and pi^e) and updates exactly as its twin with the identity and scale 1 fed the normalised ones."""
    norm = ObsNormalizer(np.linspace(-3.0, 3.0, OBS).astype(np.float32),
                         np.geomspace(0.25, 4.0, OBS).astype(np.float32))
    scale = np.float32(7.0)
    cfg = JSRLConfig(h1_from="dataset")                         # H_1 = 16: the guide plays t < 14, pi^e after
    raw_learner = JSRLFinetuner(agent(), norm, scale, cfg, offline=small_offline())
    twin = JSRLFinetuner(agent(), identity(), 1.0, cfg, offline=small_offline())
    rng = np.random.default_rng(3)
    obs = (3.0 * rng.normal(size=(16, OBS)) + 1.0).astype(np.float32)
    x = (obs - norm.mean) / norm.std
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    for t in range(16):
        np.testing.assert_array_equal(raw_learner.explore_action(obs[t], r1), twin.explore_action(x[t], r2))
        np.testing.assert_array_equal(raw_learner.exploit_action(obs[t]), twin.exploit_action(x[t]))
    from gde_ref.data.batch import Batch
    raw = Batch(obs, rng.uniform(-1, 1, (16, ACT)).astype(np.float32), rng.normal(size=16).astype(np.float32),
                np.full(16, 0.99, np.float32), obs[::-1].copy())
    assert raw_learner.update(raw, 0.5) == twin.update(raw._replace(obs=x, next_obs=x[::-1].copy(),
                                                                    rewards=raw.rewards * scale), 0.5)
    for name, arr in twin.state().items():
        np.testing.assert_array_equal(raw_learner.state()[name], arr, err_msg=name)
