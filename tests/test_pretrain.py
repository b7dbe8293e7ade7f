"""IQL pretraining recipe: preparation, cosine schedule, checkpoint round trip, behaviour recovery."""
import json
import os

import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz, save_npz
from gde_ref.config import IQLConfig
from gde_ref.data.datasets import save_dataset
from gde_ref.data.prepare import ObsNormalizer, prepare_transitions, reward_scale
from gde_ref.envs.make import REF_SCORES, make_env
from gde_ref.agents.iql import cosine_lr
from gde_ref.experiments.pretrain import load_offline, pretrain, save_offline


def test_cosine_schedule():
    assert cosine_lr(3e-4, 0, 100) == pytest.approx(3e-4)
    assert cosine_lr(3e-4, 50, 100) == pytest.approx(1.5e-4)
    assert cosine_lr(3e-4, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_reward_scale_and_normaliser():
    assert reward_scale(np.array([100.0, 600.0, 350.0])) == pytest.approx(2.0)
    assert reward_scale(np.array([5.0, 5.0])) == 1.0
    obs = np.random.default_rng(0).normal(3.0, 2.0, (5000, 4))
    norm = ObsNormalizer.fit(obs)
    z = norm(obs)
    assert z.dtype == np.float32 and np.allclose(z.mean(0), 0, atol=1e-3) and np.allclose(z.std(0), 1, atol=1e-2)


def test_checkpoint_round_trip_and_errors(tmp_path):
    agent = IQLAgent(5, 2, IQLConfig(hidden=(8, 8)), seed=3)
    norm = ObsNormalizer(np.arange(5, dtype=np.float32), np.ones(5, np.float32) * 2)
    path = tmp_path / "run" / "offline.npz"
    save_offline(path, agent, norm, {"task": "hopper", "dataset": "hopper-medium"})
    loaded, lnorm, meta = load_offline(path, task="hopper")
    for name, arr in agent.state().items():
        np.testing.assert_array_equal(loaded.state()[name], arr)
    np.testing.assert_array_equal(lnorm.mean, norm.mean)
    assert meta["config"]["hidden"] == [8, 8] and loaded.config.hidden == (8, 8)
    with pytest.raises(ValueError, match="trained on 'hopper'.*not 'walker2d'"):
        load_offline(path, task="walker2d")
    with pytest.raises(FileNotFoundError, match="gde-ref pretrain"):
        load_offline(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="corrupt"):
        load_offline(bad)
    save_npz(tmp_path / "other.npz", {"x": np.zeros(2)}, {"format": "something-else"})
    with pytest.raises(ValueError, match="is a iql agent, not td3bc: pass --backbone iql"):
        load_offline(path, backbone="td3bc")
    with pytest.raises(ValueError, match="not an offline agent"):
        load_offline(tmp_path / "other.npz")
    assert not [p for p in os.listdir(tmp_path / "run") if p.endswith(".tmp")], "no temp file left"


def test_pretrain_recovers_the_behaviour_policy(tmp_path, monkeypatch):
    """On a tiny hopper dataset whose actions are a fixed linear function of the state plus small noise,
    IQL's exploitation actor (AWR, Eq. 4) recovers the behaviour's mean action."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    env = make_env("hopper")
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.3, (env.observation_space.shape[0], env.action_space.shape[0]))
    behaviour = lambda s: np.clip(np.tanh(s @ weights), -0.9, 0.9)  # noqa: E731
    episodes = []
    for ep in range(12):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        for t in range(100):
            act = np.clip(behaviour(obs) + rng.normal(0, 0.05, env.action_space.shape), -1, 1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            trunc = trunc or t == 99
            o.append(obs); a.append(act); r.append(rew); te.append(term); tr.append(trunc and not term)
            if term or trunc:
                break
        episodes.append({"observations": np.array(o), "actions": np.array(a), "rewards": np.array(r),
                         "terminations": np.array(te), "truncations": np.array(tr), "seed": ep})
    save_dataset("hopper-medium", episodes, "Hopper-v5", *REF_SCORES["hopper"], metadata={"command": "test"})
    cfg = IQLConfig(hidden=(64, 64), batch_size=128, actor_lr=1e-3)
    summary = pretrain("hopper-medium", str(tmp_path / "run"), steps=1500, seed=0, eval_episodes=1, config=cfg)
    assert set(summary) >= {"normalized_score", "return", "steps"} and summary["steps"] == 1500
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 1500
    agent, norm, _ = load_offline(tmp_path / "run" / "offline.npz", task="hopper")
    obs = np.concatenate([e["observations"][:-1] for e in episodes])
    predicted = np.array([agent.act(norm(s)).copy() for s in obs[::5]])
    error = np.abs(predicted - behaviour(obs[::5])).mean()
    baseline = np.abs(behaviour(obs[::5])).mean()   # the error of always predicting 0
    assert error < 0.35 * baseline, (error, baseline)


def test_cli_reports_a_missing_dataset(tmp_path, monkeypatch, capsys):
    """gde-ref pretrain on a dataset that does not exist: exit code 2 and one line saying how to make it."""
    from gde_ref.cli import main
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    code = main(["pretrain", "--dataset", "hopper-medium", "--out", str(tmp_path / "run"), "--preset", "quick",
                 "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "no local dataset" in err and "gde-ref make-dataset" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists(), "nothing written for a failed run"
