"""D4RL-protocol dataset generation (gde_ref.data.generate) at the ``quick`` preset: every transition comes
from acting in Hopper-v5, terminals and timeouts are separate and end the episodes, medium-replay is exactly
SAC's history, a medium level not reached is recorded, policies round-trip, and ``gde-ref make-dataset``."""
import json
import shutil

import minari
import numpy as np
import pytest
import scipy.linalg.cython_blas  # noqa: F401  loaded before threadpool_limits, so the one-thread limit covers it
from threadpoolctl import threadpool_limits

from gde_ref.agents.sac import SACAgent
from gde_ref.cli import main
from gde_ref.data.datasets import load_dataset
from gde_ref.data.behaviour import collect_episodes, load_policy, save_policy, train_behaviour_sac
from gde_ref.data.generate import MEDIUM_LEVELS, PRESETS, make_dataset, make_datasets, planned_steps
from gde_ref.envs.make import make_env

QUICK = PRESETS["quick"]
UNREACHABLE = 1000.0  # a normalized score no quick SAC run reaches


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1, "blas"):
        yield


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A Minari datasets directory shared by this module's tests."""
    path = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(path))
        yield path


@pytest.fixture
def fresh_root(tmp_path, monkeypatch):
    """An empty Minari datasets directory for one test."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def flatten(episodes):
    """Flat (s, a, r, s', terminal, timeout) of whole episodes, as load_dataset gives them."""
    cat = lambda key, sl: np.concatenate([ep[key][sl] for ep in episodes])  # noqa: E731
    return {"observations": cat("observations", slice(None, -1)).astype(np.float32),
            "actions": cat("actions", slice(None)).astype(np.float32),
            "rewards": cat("rewards", slice(None)).astype(np.float32),
            "next_observations": cat("observations", slice(1, None)).astype(np.float32),
            "terminals": cat("terminations", slice(None)).astype(bool),
            "timeouts": cat("truncations", slice(None)).astype(bool)}


def check_consistent(data):
    """Episode ends are exactly the terminal-or-timeout steps, never both; s'_t = s_{t+1} inside episodes."""
    ends = data.terminals | data.timeouts
    assert not (data.terminals & data.timeouts).any()
    assert ends[-1] and ends.sum() == len(data.episode_lengths)
    np.testing.assert_array_equal(np.flatnonzero(ends) + 1, np.cumsum(data.episode_lengths))
    inside = np.flatnonzero(~ends)
    np.testing.assert_array_equal(data.next_observations[inside], data.observations[inside + 1])
    assert np.isfinite(data.rewards).all() and np.abs(data.actions).max() <= 1.0
    assert (data.episode_lengths <= 1000).all()
    assert not data.timeouts.any() or (data.episode_lengths[data.timeouts[ends]] == 1000).all()


def test_collect_episodes_replays_in_the_env():
    """Each collected episode is what the env gives when reset with the episode's seed and fed its actions;
    the time limit (here 14 steps) is a truncation, falls are terminations (also on the 14th step); the last episode is not cut."""
    env = make_env("hopper", max_episode_steps=14)
    agent = SACAgent(11, 3, QUICK.sac, seed=1)
    episodes = collect_episodes(env, agent, 300, np.random.default_rng(0))
    lengths = [len(ep["rewards"]) for ep in episodes]
    assert sum(lengths) >= 300 and sum(lengths) - lengths[-1] < 300
    assert any(ep["truncations"][-1] for ep in episodes) and any(ep["terminations"][-1] for ep in episodes)
    for ep in episodes:
        assert not (ep["terminations"][:-1] | ep["truncations"][:-1]).any()
        assert ep["truncations"][-1] != ep["terminations"][-1], "exactly one flag ends an episode"
        assert ep["truncations"][-1] == (len(ep["rewards"]) == 14 and not ep["terminations"][-1])
        obs, _ = env.reset(seed=ep["seed"])
        np.testing.assert_array_equal(obs, ep["observations"][0])
        for t, action in enumerate(ep["actions"]):
            obs, reward, terminated, truncated, _ = env.step(action)
            np.testing.assert_array_equal(obs, ep["observations"][t + 1])
            assert (reward, terminated, truncated and not terminated) == (
                ep["rewards"][t], ep["terminations"][t], ep["truncations"][t])
    samples = np.concatenate([ep["actions"] for ep in episodes])
    assert samples.std(axis=0).min() > 0.01, "actions are samples of the stochastic policy"


def test_random_dataset(root):
    """hopper-random: a randomly initialised SAC actor, sampled; loads with load_dataset and Minari."""
    did, info = make_dataset("hopper-random", preset="quick", seed=0)
    assert did == "gde-ref/hopper/random-quick-v0"
    data = load_dataset("hopper-random-quick")
    check_consistent(data)
    assert QUICK.size <= len(data) < QUICK.size + 1000 and len(data) == info["transitions"]
    assert data.terminals.any(), "a random hopper falls"
    meta = data.metadata["gde_ref"]
    assert meta["sac_steps"] == 0 and meta["seed"] == 0 and meta["preset"] == "quick"
    assert meta["command"] == "gde-ref make-dataset hopper-random --size 2000 --preset quick --seed 0"
    assert meta["behaviour_score"] == pytest.approx(data.behaviour_score)
    m = minari.load_dataset(did)
    assert m.total_steps == len(data) and m.total_episodes == info["episodes"]
    first = next(iter(m.iterate_episodes()))
    n = len(first.rewards)
    np.testing.assert_array_equal(first.observations[:-1].astype(np.float32), data.observations[:n])


def test_medium_replay_is_exactly_the_sac_history(root):
    """hopper-medium-replay = every whole episode of SAC's run up to its medium checkpoint; with a level SAC
    does not reach, that is the whole run, and the metadata says the level was not reached."""
    with pytest.warns(RuntimeWarning, match="did not reach the medium level"):
        did, info = make_dataset("hopper-medium-replay", preset="quick", seed=0, medium_level=UNREACHABLE)
        run = train_behaviour_sac("hopper", QUICK.sac_steps, 0, QUICK.eval_every, UNREACHABLE, config=QUICK.sac,
                                  eval_episodes=QUICK.eval_episodes)
    assert run.steps == QUICK.sac_steps and run.medium_level_reached is False
    ends = [ep["end_step"] for ep in run.history]
    np.testing.assert_array_equal(np.diff([0] + ends), [len(ep["rewards"]) for ep in run.history])
    assert QUICK.sac_steps - ends[-1] < 1000, "only the unfinished last episode is missing"
    data = load_dataset("hopper-medium-replay-quick")
    check_consistent(data)
    kept = [ep for ep in run.history if ep["end_step"] <= run.checkpoints["medium"]["step"]]
    for key, value in flatten(kept).items():
        np.testing.assert_array_equal(getattr(data, key), value, err_msg=key)
    meta = data.metadata["gde_ref"]
    assert meta["medium_level_reached"] is False and "NOT REACHED" in meta["warning"]
    assert meta["sac_steps"] == run.checkpoints["medium"]["step"] and meta["medium_level"] == UNREACHABLE
    assert minari.load_dataset(did).total_steps == len(data)


def test_medium_and_medium_replay_share_one_sac_run(root, monkeypatch, tmp_path):
    """make_datasets trains SAC once for hopper-medium + hopper-medium-replay; the replay dataset is the
    same as one made alone (the run is deterministic), and the progress-bar plan counts SAC once."""
    import gde_ref.data.generate as generate
    alone = {key: getattr(load_dataset("hopper-medium-replay-quick"), key) for key in ("observations", "rewards", "timeouts")}
    shutil.rmtree(root / "gde-ref" / "hopper" / "medium-replay-quick-v0")
    calls = []
    real = generate.train_behaviour_sac
    monkeypatch.setattr(generate, "train_behaviour_sac", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.warns(RuntimeWarning, match="did not reach"):
        made = make_datasets(["hopper-medium-replay", "hopper-medium"], size=300, preset="quick", seed=0,
                             medium_level=UNREACHABLE, policy_dir=tmp_path)
    assert len(calls) == 1 and [did for did, _ in made] == ["gde-ref/hopper/medium-replay-quick-v0", "gde-ref/hopper/medium-quick-v0"]
    again = load_dataset("hopper-medium-replay-quick")
    for key, value in alone.items():
        np.testing.assert_array_equal(getattr(again, key), value, err_msg=key)
    assert made[0][1]["sac_steps"] == made[1][1]["sac_steps"]
    assert "same run" in made[1][1]["behaviour_policy"] and "same run" not in made[0][1]["behaviour_policy"]
    shared = set()
    plan = [planned_steps(n, 300, "quick", policy_dir=tmp_path, medium_level=UNREACHABLE, sac_counted=shared)
            for n in ("hopper-medium-replay", "hopper-medium")]
    assert plan == [QUICK.sac_steps, 300]
    with pytest.raises(FileExistsError, match="medium-quick-v0 already exists"):  # every name checked before any work
        make_datasets(["halfcheetah-random", "hopper-medium"], size=300, preset="quick", seed=0)
    assert not (root / "gde-ref" / "halfcheetah").exists()
    shutil.rmtree(root / "gde-ref" / "hopper" / "medium-quick-v0")  # the next tests make it their own way


def test_medium_not_reached_is_recorded(root):
    with pytest.warns(RuntimeWarning, match="did not reach"):
        _, info = make_dataset("hopper-medium", size=500, preset="quick", seed=0, medium_level=UNREACHABLE)
    meta = load_dataset("hopper-medium-quick").metadata["gde_ref"]
    assert meta["medium_level_reached"] is False and "NOT REACHED" in meta["warning"]
    assert "1/3 of D4RL's expert" in meta["medium_rule"] and len(meta["evaluations"]) == 3


def test_training_stops_at_the_medium_level():
    """A level reached at the first evaluation stops SAC there: medium is that checkpoint."""
    run = train_behaviour_sac("hopper", QUICK.sac_steps, 0, 500, -1000.0, config=QUICK.sac, eval_episodes=1)
    assert run.medium_level_reached is True and run.steps == 500
    assert run.checkpoints["medium"]["step"] == 500 and run.history[-1]["end_step"] <= 500


def test_policy_round_trip_and_shipped_policy(fresh_root, tmp_path):
    """save_policy/load_policy give identical actions; a policy in policy_dir is used instead of training."""
    agent = SACAgent(11, 3, QUICK.sac, seed=4)
    agent.actor.params[:] += np.random.default_rng(0).standard_normal(agent.actor.params.size).astype(np.float32) * 0.1
    made = {"sac_steps": 123, "policy_eval_score": 40.0, "policy_preset": "quick", "policy_seed": 0,
            "medium_level": MEDIUM_LEVELS["hopper"]}
    save_policy(tmp_path / "hopper-medium.npz", agent, **made)
    loaded, saved = load_policy(tmp_path / "hopper-medium.npz")
    assert saved == made and loaded.config == agent.config
    obs = np.random.default_rng(1).standard_normal((20, 11)).astype(np.float32)
    for o in obs:
        np.testing.assert_array_equal(loaded.act(o), agent.act(o))
        np.testing.assert_array_equal(loaded.act(o, np.random.default_rng(2)), agent.act(o, np.random.default_rng(2)))
    assert planned_steps("hopper-medium", 300, "quick", policy_dir=tmp_path) == 300
    # made with another seed, preset or medium level: a different behaviour policy, so SAC is trained
    assert planned_steps("hopper-medium", 300, "quick", policy_dir=tmp_path, seed=1) > 300
    assert planned_steps("hopper-medium", 300, "laptop", policy_dir=tmp_path) > 300
    assert planned_steps("hopper-medium", 300, "quick", policy_dir=tmp_path, medium_level=50.0) > 300
    _, info = make_dataset("hopper-medium", size=300, preset="quick", seed=0, policy_dir=tmp_path)
    assert info["behaviour_policy"].startswith("shipped") and info["sac_steps"] == 123
    with pytest.raises(FileExistsError, match="already exists"):  # before any work
        make_dataset("hopper-medium", size=300, preset="quick", seed=0, policy_dir=tmp_path)


def test_saved_behaviour_policy_reproduces_the_dataset(fresh_root, tmp_path):
    """policy_out= saves the behaviour policy; making the dataset again from it gives the same transitions."""
    make_dataset("hopper-random", size=300, preset="quick", seed=3, policy_out=tmp_path / "policies")
    first = load_dataset("hopper-random-quick")
    shutil.rmtree(fresh_root / "gde-ref" / "hopper" / "random-quick-v0")
    _, info = make_dataset("hopper-random", size=300, preset="quick", seed=3, policy_dir=tmp_path / "policies")
    again = load_dataset("hopper-random-quick")
    assert info["behaviour_policy"].startswith("shipped") and info["policy_seed"] == 3 and info["seed"] == 3
    for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(again, key), getattr(first, key), err_msg=key)


def test_cli_make_dataset(root, capsys):
    assert main(["make-dataset", "walker2d-random", "--preset", "quick", "--size", "200", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # a quick-preset dataset gets its own name: never taken for the real walker2d-random
    assert out["dataset_id"] == "gde-ref/walker2d/random-quick-v0" and out["transitions"] >= 200
    assert out["name"] == "walker2d-random-quick"
    assert load_dataset("walker2d-random-quick").metadata["gde_ref"]["command"].startswith("gde-ref make-dataset")
    with pytest.raises(FileNotFoundError, match="no local dataset 'walker2d-random'"):
        load_dataset("walker2d-random")
    with pytest.raises(SystemExit):
        main(["make-dataset", "hopper-mediocre"])
