"""Offline datasets: Minari round trip on real Hopper-v5 episodes, D4RL HDF5 loading, every validation
error, the normalized score, dataset names, listing and ``gde-ref datasets``."""
import json
import os

import h5py
import minari
import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.data.datasets import EPISODE_KEYS, dataset_id, load_dataset, save_dataset
from gde_ref.data.listing import list_datasets
from gde_ref.envs.make import (DATASET_KINDS, DATASET_NAMES, REF_SCORES, TASKS, env_name, make_env,
                               normalize_return, normalized_score, parse_dataset_name, task_of_env_id)

FLAT_KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")


@pytest.fixture(scope="module")
def episodes():
    """Four Hopper-v5 episodes of random actions from seeded resets, cut at 30 steps: some fall (terminal),
    some reach the time limit (truncation)."""
    env = make_env("hopper", max_episode_steps=30)
    env.action_space.seed(0)
    out = []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(EPISODE_KEYS, (obs, action, reward, terminated, truncated)):
                ep[key].append(value)
            done = terminated or truncated
        out.append({**{key: np.array(value) for key, value in ep.items()}, "seed": seed})
    env.close()
    ends = [(ep["terminations"][-1], ep["truncations"][-1]) for ep in out]
    assert (True, False) in ends and (False, True) in ends, "want both a fall and a time limit"
    return out


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty Minari datasets directory for this test."""
    path = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(path))
    return path


def flatten(episodes):
    """The transitions a loader must give, built one step at a time."""
    rows = {key: [] for key in FLAT_KEYS}
    for ep in episodes:
        for t in range(len(ep["rewards"])):
            values = (ep["observations"][t], ep["actions"][t], ep["rewards"][t], ep["observations"][t + 1],
                      ep["terminations"][t], ep["truncations"][t])
            for key, value in zip(FLAT_KEYS, values):
                rows[key].append(value)
    out = {key: np.array(rows[key], np.float32) for key in FLAT_KEYS[:4]}
    return {**out, "terminals": np.array(rows["terminals"], bool), "timeouts": np.array(rows["timeouts"], bool)}


def assert_same_transitions(data, want):
    for key in FLAT_KEYS:
        assert getattr(data, key).dtype == want[key].dtype, key
        np.testing.assert_array_equal(getattr(data, key), want[key], err_msg=key)


def write_hdf5(path, **arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# -- Minari round trip --------------------------------------------------------------------------------
def test_round_trip_gives_identical_arrays_and_metadata(root, episodes):
    meta = {"command": "gde-ref make-dataset hopper-medium --seed 3", "seed": np.int64(3), "sac_steps": 0,
            "behaviour_score": np.float32(31.5)}  # e.g. the policy's evaluation score: kept as given
    assert save_dataset("hopper-medium", episodes, metadata=meta) == "gde-ref/hopper/medium-v0"
    data = load_dataset("hopper-medium")
    assert_same_transitions(data, flatten(episodes))
    returns = [np.sum(ep["rewards"]) for ep in episodes]
    np.testing.assert_array_equal(data.episode_returns, returns)
    np.testing.assert_array_equal(data.episode_lengths, [len(ep["rewards"]) for ep in episodes])
    assert len(data) == sum(len(ep["rewards"]) for ep in episodes)
    assert (data.env_id, data.ref_min_score, data.ref_max_score) == ("Hopper-v5", *REF_SCORES["hopper"])
    assert data.behaviour_score == pytest.approx(normalized_score("hopper", np.mean(returns)), rel=1e-12)
    made = data.metadata["gde_ref"]
    assert (made["command"], made["seed"], made["sac_steps"], made["name"]) == (meta["command"], 3, 0, "hopper-medium")
    assert (made["episodes"], made["transitions"], made["behaviour_score"]) == (len(episodes), len(data), 31.5)
    assert made["mean_episode_return"] == pytest.approx(np.mean(returns), rel=1e-12)
    assert made["mean_episode_score"] == pytest.approx(data.behaviour_score, rel=1e-12)
    assert meta["command"] in data.metadata["description"]
    assert data.metadata["algorithm_name"] == "SAC"
    by_id = load_dataset("gde-ref/hopper/medium-v0")
    assert_same_transitions(by_id, flatten(episodes))
    assert os.listdir(root) == ["gde-ref"]  # no staging directory left behind


def test_relative_datasets_path(tmp_path, monkeypatch, episodes):
    """A relative $MINARI_DATASETS_PATH (or datasets_root("runs/x")) saves and loads like an absolute one."""
    from gde_ref.data.datasets import datasets_root
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "rel/datasets")
    did = save_dataset("hopper-medium", episodes)
    assert minari.load_dataset(did).total_episodes == len(episodes)
    assert os.listdir(tmp_path / "rel" / "datasets") == ["gde-ref"]  # no staging directory left behind
    with datasets_root("other/minari"):
        assert os.environ["MINARI_DATASETS_PATH"] == str(tmp_path / "other" / "minari")
        assert save_dataset("hopper-medium", episodes) == did
    assert (tmp_path / "other" / "minari" / did).is_dir()


def test_minari_reads_the_same_episodes(root, episodes):
    did = save_dataset("hopper-medium", episodes)
    dataset = minari.load_dataset(did)
    assert dataset.total_episodes == len(episodes)
    assert dataset.total_steps == sum(len(ep["rewards"]) for ep in episodes)
    for ep, stored, meta in zip(episodes, dataset.iterate_episodes(),
                                dataset.storage.get_episode_metadata(range(len(episodes)))):
        for key in EPISODE_KEYS:
            np.testing.assert_array_equal(getattr(stored, key), ep[key], err_msg=key)
        assert stored.observations.dtype == np.float64 and meta["seed"] == ep["seed"]
    assert minari.get_normalized_score(dataset, 1600.0) * 100 == pytest.approx(normalized_score("hopper", 1600.0))
    assert dataset.recover_environment().spec.id == "Hopper-v5"
    assert did in minari.list_local_datasets()


def test_any_local_minari_id_loads(root, episodes):
    """An official-style id (copied from another machine): no stored reference returns, so the env's task
    gives D4RL's; an env to check against must be the one it was collected on."""
    with pytest.raises(ValueError, match="pass env_id="):
        save_dataset("mujoco/hopper/medium-v0", episodes)
    with pytest.raises(ValueError, match="unknown env 'Hopper-v99'"):
        save_dataset("mujoco/hopper/medium-v0", episodes, env_id="Hopper-v99")
    with pytest.raises(ValueError, match="both ref_min_score and ref_max_score"):
        save_dataset("mujoco/hopper/medium-v0", episodes, env_id="Hopper-v5", ref_max_score=1.0)
    save_dataset("mujoco/hopper/medium-v0", episodes, env_id="Hopper-v5")
    data = load_dataset("mujoco/hopper/medium-v0", env="hopper")
    assert_same_transitions(data, flatten(episodes))
    assert (data.ref_min_score, data.ref_max_score) == REF_SCORES["hopper"]
    assert "ref_max_score" not in data.metadata
    with pytest.raises(ValueError, match="collected on Hopper-v5, not Walker2d-v5"):
        load_dataset("mujoco/hopper/medium-v0", env="walker2d")


# -- saving: validation, and nothing half-written ----------------------------------------------------
def corrupt(episodes, key, change):
    bad = [dict(ep) for ep in episodes]
    bad[1][key] = change(np.array(bad[1][key]))
    return bad


def with_nan(x):
    x = x.astype(np.float64)
    x[2, 0] = np.nan
    return x


def early_terminal(x):
    x = x.copy()
    x[0] = True
    return x


@pytest.mark.parametrize("make_bad, message", [
    (lambda eps: corrupt(eps, "observations", with_nan), "episode 1: observations contains NaN or inf at step 2"),
    (lambda eps: corrupt(eps, "actions", lambda a: a[:, :2]), r"episode 1: actions has shape \(\d+, 2\), expected"),
    (lambda eps: corrupt(eps, "observations", lambda o: o[:-1]), r"T \+ 1 rows"),
    (lambda eps: corrupt(eps, "truncations", early_terminal), "only the last step"),
    (lambda eps: corrupt(eps, "terminations", lambda t: t * 0.5 + 0.25), "only 0/1"),
    (lambda eps: [{k: v for k, v in eps[0].items() if k != "rewards"}], r"episode 0 lacks \['rewards'\]"),
    (lambda eps: [], "empty"),
])
def test_save_rejects_bad_episodes_and_writes_nothing(root, episodes, make_bad, message):
    with pytest.raises(ValueError, match=message):
        save_dataset("hopper-medium", make_bad(episodes))
    assert files_under(root) == []


def test_a_failure_inside_minari_leaves_nothing_behind(root, episodes, monkeypatch):
    real = minari.create_dataset_from_buffers

    def fails_after_writing(**kwargs):
        real(**kwargs)  # the files are written, then something goes wrong
        raise OSError("disk full")
    monkeypatch.setattr(minari, "create_dataset_from_buffers", fails_after_writing)
    with pytest.raises(OSError, match="disk full"):
        save_dataset("hopper-medium", episodes)
    assert files_under(root) == [] and minari.list_local_datasets() == {}


def test_save_does_not_overwrite(root, episodes):
    save_dataset("hopper-medium", episodes)
    with pytest.raises(FileExistsError, match="already exists.*delete it first"):
        save_dataset("hopper-medium", episodes[:1])
    assert len(load_dataset("hopper-medium").episode_lengths) == len(episodes)


# -- D4RL-format HDF5 ---------------------------------------------------------------------------------
def test_hdf5_with_next_observations_matches_the_minari_copy(root, tmp_path, episodes):
    want = flatten(episodes)
    path = write_hdf5(tmp_path / "hopper_random.hdf5", **want)
    data = load_dataset(path, env="hopper")
    assert_same_transitions(data, want)
    save_dataset("hopper-random", episodes)
    from_minari = load_dataset("hopper-random")
    np.testing.assert_allclose(data.episode_returns, from_minari.episode_returns, rtol=1e-6)
    np.testing.assert_array_equal(data.episode_lengths, from_minari.episode_lengths)
    assert (data.env_id, data.ref_min_score, data.metadata) == ("Hopper-v5", REF_SCORES["hopper"][0], {})
    assert load_dataset(str(path)).ref_min_score is None  # no env given: no reference returns


def test_hdf5_without_next_observations_by_hand(tmp_path):
    """Episodes [0 1 2] (terminal at 2), [3 4] (timeout at 4), [5 6 7] (file ends). s' = next s inside an
    episode; the terminal step is kept with s' = s; the timeout step and the last step are dropped."""
    path = write_hdf5(tmp_path / "d.hdf5", observations=np.arange(8.0)[:, None], actions=np.arange(8.0)[:, None] / 10,
                      rewards=np.arange(1.0, 9.0), terminals=np.array([0, 0, 1, 0, 0, 0, 0, 0]),
                      timeouts=np.array([0, 0, 0, 0, 1, 0, 0, 0], bool))
    data = load_dataset(path)
    np.testing.assert_array_equal(data.observations[:, 0], [0, 1, 2, 3, 5, 6])
    np.testing.assert_array_equal(data.next_observations[:, 0], [1, 2, 2, 4, 6, 7])
    np.testing.assert_array_equal(data.actions[:, 0], np.float32([0, 1, 2, 3, 5, 6]) / 10)
    np.testing.assert_array_equal(data.rewards, [1, 2, 3, 4, 6, 7])
    np.testing.assert_array_equal(data.terminals, [0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.timeouts, [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(data.episode_returns, [1 + 2 + 3, 4 + 5, 6 + 7 + 8])  # whole episodes
    np.testing.assert_array_equal(data.episode_lengths, [3, 2, 3])
    assert data.source == str(path) and data.env_id is None


# -- loading: every validation error ------------------------------------------------------------------
def d4rl_arrays(n=6, obs_dim=11, act_dim=3):
    rng = np.random.default_rng(0)
    return {"observations": rng.normal(size=(n, obs_dim)), "actions": rng.uniform(-1, 1, (n, act_dim)),
            "rewards": rng.normal(size=n), "terminals": np.zeros(n, bool), "timeouts": np.eye(n, dtype=bool)[-1]}


@pytest.mark.parametrize("change, env, message", [
    (lambda a: a["observations"].__setitem__((3, 4), np.nan), None,
     "observations contains NaN or inf in 1 transition.*first at transition 3.*regenerate"),
    (lambda a: a["rewards"].__setitem__(0, -np.inf), None, "rewards contains NaN or inf"),
    (lambda a: a.update(observations=a["observations"][:, :5]), "hopper",
     r"observations has shape \(5,\) but the env Hopper-v5 expects \(11,\)"),
    (lambda a: a.update(actions=a["actions"][:, :2]), "Hopper-v5", r"actions has shape \(2,\).*expects \(3,\)"),
    (lambda a: a.update({k: v[:0] for k, v in a.items()}), None, "no transitions; the dataset is empty"),
    (lambda a: a.update(timeouts=np.ones(6, bool)), None, "no transitions left: the dataset is empty"),
    (lambda a: a.pop("timeouts"), None, r"lacks \['timeouts'\].*needs"),
    (lambda a: a.update(terminals=np.full(6, 0.5)), None, "terminals must hold only 0/1"),
    (lambda a: a.update(rewards=a["rewards"][:4]), None, "observations has 6 rows but rewards has 4"),
    (lambda a: None, "NoSuchEnv-v0", "unknown env 'NoSuchEnv-v0'"),
])
def test_hdf5_validation_errors(tmp_path, change, env, message):
    arrays = d4rl_arrays()
    change(arrays)
    path = write_hdf5(tmp_path / "bad.hdf5", **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(path, env=env)


def test_missing_file_and_unreadable_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset(tmp_path / "missing.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        load_dataset(tmp_path / "text.hdf5")


def test_unknown_id_lists_local_datasets_and_how_to_make_one(root, episodes):
    with pytest.raises(FileNotFoundError, match="Local datasets: none.*gde-ref make-dataset NAME"):
        load_dataset("hopper-medium")
    save_dataset("hopper-medium", episodes)
    for unknown in ("hopper-expert", "D4RL/door/human-v2", "not a dataset"):
        with pytest.raises(FileNotFoundError, match=f"no local dataset '{unknown}'.*Local datasets: "
                                                    "gde-ref/hopper/medium-v0.*gde-ref make-dataset"):
            load_dataset(unknown)


def test_corrupt_minari_datasets(root, episodes):
    did = save_dataset("hopper-medium", episodes)
    with h5py.File(root / did / "data" / "main_data.hdf5", "a") as f:
        f["episode_1/rewards"][0] = np.nan
    first = len(episodes[0]["rewards"])
    with pytest.raises(ValueError, match=f"rewards contains NaN or inf .* transition {first};"):
        load_dataset("hopper-medium")
    (root / "gde-ref" / "hopper" / "random-v0" / "data").mkdir(parents=True)  # a half-copied dataset
    with pytest.raises(ValueError, match="cannot be read.*make or copy it again"):
        load_dataset("hopper-random")


def test_a_dataset_is_checked_against_its_task(root, episodes):
    """halfcheetah and walker2d have the same sizes (17, 6): the env name is what tells them apart."""
    save_dataset("mujoco/hopper/expert-v0", episodes, env_id="Hopper-v5")
    with pytest.raises(ValueError, match="collected on Hopper-v5, not HalfCheetah-v5"):
        load_dataset("mujoco/hopper/expert-v0", env=make_env("halfcheetah"))


# -- scores, names, listing ---------------------------------------------------------------------------
def test_normalized_score_by_hand():
    assert normalized_score("hopper", -20.272305) == 0.0
    assert normalized_score("hopper", 3234.3) == pytest.approx(100.0, rel=1e-12)
    assert normalized_score("hopper", 1600.0) == pytest.approx(49.78449249724074, rel=1e-12)
    assert normalized_score("walker2d", 1000.0) == pytest.approx(21.747822785379867, rel=1e-12)  # 998.37/4590.67
    np.testing.assert_allclose(normalized_score("halfcheetah", [-280.178953, 5927.4105235, 12135.0]), [0, 50, 100])
    assert isinstance(normalized_score("hopper", 1.0), float)
    assert normalize_return(np.array([1.0, 3.0]), 1.0, 5.0).tolist() == [0.0, 50.0]
    with pytest.raises(ValueError, match="unknown task 'ant'"):
        normalized_score("ant", 1.0)
    with pytest.raises(ValueError, match="R_max > R_min"):
        normalize_return(1.0, 5.0, 5.0)


def test_dataset_names():
    assert len(DATASET_NAMES) == len(TASKS) * len(DATASET_KINDS) == 15
    for name in DATASET_NAMES:
        task, kind = parse_dataset_name(name)
        assert f"{task}-{kind}" == name and dataset_id(name) == f"gde-ref/{task}/{kind}-v0"
    assert parse_dataset_name("walker2d-medium-replay") == ("walker2d", "medium-replay")
    assert parse_dataset_name("halfcheetah-medium-expert") == ("halfcheetah", "medium-expert")
    for bad in ("hopper-medium-v2", "ant-medium", "hopper", "medium", "hopper_medium", ""):
        with pytest.raises(ValueError, match=r"valid names are \{hopper,halfcheetah,walker2d\}-\{random,medium,"
                                             r"medium-replay,expert,medium-expert\}"):
            parse_dataset_name(bad)
    assert [task_of_env_id(i) for i in ("Walker2d-v4", "HalfCheetah-v5", "Ant-v5")] == ["walker2d", "halfcheetah", None]
    assert env_name("gymnasium/Hopper-v5") == "hopper"


def test_settotalmass_warning_is_silenced(tmp_path, monkeypatch, capfd):
    """MuJoCo's default handler would print it and write MUJOCO_LOG.TXT into the working directory."""
    monkeypatch.chdir(tmp_path)
    env = make_env("halfcheetah")
    assert env.spec.max_episode_steps == 1000
    assert "settotalmass" not in capfd.readouterr().err and not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_list_datasets_and_the_cli(root, episodes, capsys):
    assert list_datasets() == []
    save_dataset("hopper-medium", episodes)
    save_dataset("other/hopper/copied-v0", episodes[:2], env_id="Hopper-v5", ref_min_score=0.0, ref_max_score=100.0)
    meta_path = root / "other" / "hopper" / "copied-v0" / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["gde_ref"]  # as a dataset made elsewhere: the mean return is read from the file
    meta_path.write_text(json.dumps(meta))
    rows = {row["id"]: row for row in list_datasets()}
    assert sorted(rows) == ["gde-ref/hopper/medium-v0", "other/hopper/copied-v0"]
    mean = np.mean([np.sum(ep["rewards"]) for ep in episodes])
    mine = rows["gde-ref/hopper/medium-v0"]
    assert (mine["name"], mine["env"], mine["episodes"]) == ("hopper-medium", "Hopper-v5", len(episodes))
    assert mine["transitions"] == sum(len(ep["rewards"]) for ep in episodes)
    assert mine["behaviour_score"] == pytest.approx(normalized_score("hopper", mean), rel=1e-12)
    copied = rows["other/hopper/copied-v0"]
    mean2 = np.mean([np.sum(ep["rewards"]) for ep in episodes[:2]])
    assert copied["name"] is None and copied["episodes"] == 2
    assert copied["behaviour_return"] == pytest.approx(mean2, rel=1e-12)
    assert copied["behaviour_score"] == pytest.approx(mean2, rel=1e-12)  # R_min 0, R_max 100
    assert main(["datasets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == list_datasets()
    assert main(["datasets"]) == 0
    table = capsys.readouterr().out
    assert "gde-ref/hopper/medium-v0" in table and "hopper-medium" in table and "other/hopper/copied-v0" in table
