"""The offline-to-online hand-over: offline.npz keeps every Adam state, fine-tuning continues them (one
learner across both phases, as IQL's own fine-tuning), and the exploration policy's starts as the actor's."""
import json

import numpy as np

from gde_ref.agents.iql import IQLAgent
from gde_ref.config import IQLConfig
from gde_ref.data import Batch
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.experiments.finetune import finetune
from gde_ref.experiments.pretrain import load_offline, save_offline
from gde_ref.finetune.algos import make_learner

OBS, ACT = 11, 3
SMALL = IQLConfig(hidden=(32, 32), batch_size=64)


def batch(rng, n=64):
    """Transitions of one fixed synthetic MDP: the offline and the online batches share it."""
    obs = rng.normal(size=(n, OBS)).astype(np.float32)
    actions = np.tanh(obs[:, :ACT] + 0.3 * rng.normal(size=(n, ACT))).astype(np.float32)
    rewards = (obs[:, 0] - np.square(actions).sum(1)).astype(np.float32)
    next_obs = (0.9 * obs + 0.1 * rng.normal(size=(n, OBS))).astype(np.float32)
    return Batch(obs, actions, rewards, np.full(n, 0.99, np.float32), next_obs)


def trained_agent(path, steps=400):
    agent = IQLAgent(OBS, ACT, SMALL, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        agent.update(batch(rng))
    save_offline(path, agent, ObsNormalizer.identity(OBS), {"task": "hopper", "dataset": "hopper-medium",
                                                           "reward_scale": 1.0})
    return agent


def relative_steps(before, after, lr):
    """|change| / lr of every parameter that moved."""
    moved = np.abs(after.astype(np.float64) - before)
    return moved[moved > 0] / lr


def test_offline_file_keeps_adam_states_and_fine_tuning_continues_them(tmp_path):
    path = tmp_path / "offline.npz"
    agent = trained_agent(path)
    loaded, _, meta = load_offline(path, "hopper")
    assert meta["adam_states"]
    for name, adam in agent.adam.items():
        for part in "mvt":
            np.testing.assert_array_equal(getattr(loaded.adam[name], part), getattr(adam, part), err_msg=name)
    assert int(loaded.adam["q1"].t[0]) == 400
    learner = make_learner("gde", loaded, ObsNormalizer.identity(OBS), 1.0)
    explore_adam = learner.learner.explore_adam
    np.testing.assert_array_equal(explore_adam.v, loaded.adam["actor"].v)
    assert explore_adam.v is not loaded.adam["actor"].v, "a copy: the two policies' optimisers are separate"


def test_first_update_moves_far_less_than_lr_when_states_are_continued(tmp_path):
    """A fresh Adam's first step moves every parameter by lr (m / sqrt(v) = sign(g)); continued moments
    average the gradient's noise, so the first online step is much smaller. Both on the same batch."""
    path = tmp_path / "offline.npz"
    trained_agent(path)
    online = batch(np.random.default_rng(99))
    steps = {}
    for mode in ("continued", "reset"):
        agent, _, _ = load_offline(path, "hopper")
        if mode == "reset":
            for adam in agent.adam.values():
                adam.m[:], adam.v[:], adam.t[:] = 0, 0, 0
        before = {name: getattr(agent, name).params.astype(np.float64) for name in ("q1", "value")}
        agent.update(online)
        steps[mode] = {name: relative_steps(before[name], getattr(agent, name).params, 3e-4) for name in before}
    for name in ("q1", "value"):
        assert np.median(steps["reset"][name]) > 0.9, "a fresh Adam's first step is lr per parameter"
        assert np.median(steps["continued"][name]) < 0.3, name


def test_reset_optimizers_option_is_recorded(tmp_path, monkeypatch):
    path = tmp_path / "offline.npz"
    trained_agent(path, steps=20)
    kw = dict(steps=60, preset="quick", eval_period=40, eval_steps=10, checkpoint_period=60, report_period=60,
              report_episodes=1, offline_path=str(path))
    finetune("hopper-medium", "oniql", str(tmp_path / "a"), **kw)
    finetune("hopper-medium", "oniql", str(tmp_path / "b"), reset_optimizers=True, **kw)
    configs = [json.loads((tmp_path / r / "config.json").read_text()) for r in "ab"]
    assert configs[0]["optimizers"] == "continued from the offline agent" and not configs[0]["reset_optimizers"]
    assert configs[1]["optimizers"] == "reset" and configs[1]["reset_optimizers"]
