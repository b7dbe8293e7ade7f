"""Offline datasets: local Minari datasets named like D4RL, and D4RL-format HDF5 files.

    save_dataset("hopper-medium", episodes, metadata={"command": ..., "seed": 0})  # -> gde-ref/hopper/medium-v0
    data = load_dataset("hopper-medium")        # or "mujoco/hopper/medium-v0", or "path/to/file.hdf5"
    data.observations, data.actions, data.rewards, data.next_observations, data.terminals, data.timeouts

``hopper-medium`` is the Minari id ``gde-ref/hopper/medium-v0`` under Minari's datasets directory
(``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``); any other local Minari id also loads (the
official ``mujoco/...`` or ``D4RL/...`` ones, downloaded elsewhere and copied here). Episodes are stored
in the env's space dtypes (MuJoCo: float64 observations, float32 actions) with float64 rewards, in a
hidden staging directory renamed into place when complete: a failed save leaves nothing behind.

Loading gives flat transitions (s, a, r, s', terminal, timeout) in float32/bool. A Minari episode of T
steps gives T transitions with s' = the next observation. A D4RL-format HDF5 file holds flat arrays
``observations (N, obs_dim)``, ``actions (N, act_dim)``, ``rewards``, ``terminals``, ``timeouts`` (N,)
and optionally ``next_observations (N, obs_dim)``; an episode ends at each step with ``terminals`` or
``timeouts`` set (and at the end of the file). With ``next_observations`` every transition is kept as
stored. Without it, s'_i = s_{i+1} inside an episode, and the last step of each episode is
* kept if it is a terminal, with s' = s_i as a placeholder (a terminal is never bootstrapped from;
  D4RL's ``qlearning_dataset`` puts the next episode's first observation there);
* dropped if it is a timeout or the file's unflagged last step (s' unknown; as ``qlearning_dataset``).
Episode returns and lengths are always those of the whole episodes, before any step is dropped.
"""
import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np

from gde_ref.envs.make import (ANTMAZE_DATASET_NAMES, ANTMAZE_ENV_IDS, ANTMAZE_QUICK_NAMES, DATASET_NAMES, ENV_IDS,
                               GOAL_ENV_IDS, MAZE2D_ENV_IDS, MAZE_DATASET_NAMES, MAZE_ENV_IDS, MAZE_QUICK_NAMES,
                               QUICK_NAMES, QUICK_SUFFIX, REF_SCORES, env_name, env_spaces,
                               normalize_return, parse_dataset_name, quiet_mujoco_warnings, task_of_env_id)

NAMESPACE = "gde-ref"  # our datasets: gde-ref/{task}/{kind}-v0
EPISODE_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
MAKE_HINT = (f"make one with `gde-ref make-dataset NAME` (NAME: {', '.join(DATASET_NAMES[:3])}, ..., "
             f"{', '.join(MAZE_DATASET_NAMES + ANTMAZE_DATASET_NAMES)})")
ALL_NAMES = (DATASET_NAMES + QUICK_NAMES + MAZE_DATASET_NAMES + MAZE_QUICK_NAMES + ANTMAZE_DATASET_NAMES
             + ANTMAZE_QUICK_NAMES)


def dataset_id(name):
    """Minari id of a D4RL-style name: ``hopper-medium`` -> ``gde-ref/hopper/medium-v0``, a quick-preset one
    ``hopper-medium-quick`` -> ``gde-ref/hopper/medium-quick-v0``; a maze one: the maze2d ``pointmaze-umaze`` ->
    ``gde-ref/pointmaze/umaze-v1``, the goal-conditioned ``pointmaze-umaze-goals`` ->
    ``gde-ref/pointmaze/umaze-goals-v0`` (Minari's own is ``D4RL/pointmaze/umaze-v2``). The maze2d ids are
    version 1 because ``gde-ref/pointmaze/umaze-v0`` held goal-conditioned data before the maze2d protocol
    took the plain names: such an old dataset is never loaded under the new name. An AntMaze one:
    ``antmaze-medium-play`` -> ``gde-ref/antmaze/medium-play-v0`` (D4RL's ``antmaze-medium-play-v2``)."""
    task, kind = parse_dataset_name(name)
    quick = QUICK_SUFFIX if str(name).endswith(QUICK_SUFFIX) else ''
    if task in ANTMAZE_ENV_IDS:
        base = str(name)[:-len(QUICK_SUFFIX)] if quick else str(name)
        return f"{NAMESPACE}/{base.replace('-', '/', 1)}{quick}-v0"
    if task in MAZE_ENV_IDS:
        return f"{NAMESPACE}/{task.replace('-', '/', 1)}{quick}-v{1 if task in MAZE2D_ENV_IDS else 0}"
    return f"{NAMESPACE}/{task}/{kind}{quick}-v0"


NAME_OF_ID = {dataset_id(name): name for name in ALL_NAMES}


@dataclass(eq=False)
class OfflineDataset:
    """Flat transitions of an offline dataset (N transitions, E episodes) and where they came from."""
    observations: np.ndarray       # (N, obs_dim) float32, s
    actions: np.ndarray            # (N, act_dim) float32 (or (N,) int64 for a discrete action space), a
    rewards: np.ndarray            # (N,) float32, r
    next_observations: np.ndarray  # (N, obs_dim) float32, s'
    terminals: np.ndarray          # (N,) bool: s' is terminal, no bootstrapping from it
    timeouts: np.ndarray           # (N,) bool: a time limit cut the episode after this step
    episode_returns: np.ndarray    # (E,) float64, undiscounted return of each whole episode
    episode_lengths: np.ndarray    # (E,) int64
    source: str                    # the Minari id or file path it was loaded from
    env_id: str | None = None      # Gymnasium id of the env the data came from, when known
    ref_min_score: float | None = None  # R_min, R_max of the normalized score, when known
    ref_max_score: float | None = None
    metadata: dict = field(default_factory=dict)  # the Minari metadata (JSON), {} for an HDF5 file

    def __len__(self):
        return len(self.rewards)

    def normalized_score(self, returns):
        """100 (R - R_min) / (R_max - R_min) with this dataset's reference returns."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise ValueError(f"dataset {self.source} has no reference returns; pass a task (env='hopper') "
                             "when loading it, or use gde_ref.envs.make.normalize_return with your own")
        return normalize_return(returns, self.ref_min_score, self.ref_max_score)

    def fingerprint(self):
        """sha256 (hex, first 16 characters) of the transitions' bytes: observations, actions, rewards,
        next observations, terminals and timeouts. An offline agent records the fingerprint of its data,
        so a dataset remade with other contents is told apart from the one the agent was trained on."""
        h = hashlib.sha256()
        for a in (self.observations, self.actions, self.rewards, self.next_observations, self.terminals,
                  self.timeouts):
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    @property
    def behaviour_score(self):
        """Normalized mean episode return of the data (None without reference returns)."""
        return None if self.ref_max_score is None else self.normalized_score(float(np.mean(self.episode_returns)))


# -- saving -------------------------------------------------------------------------------------------
def save_dataset(name_or_id, episodes, env_id=None, ref_min_score=None, ref_max_score=None, *, metadata=None,
                 algorithm_name="SAC", description=None, author="gde_ref", author_email=None, code_permalink=None):
    """Create a local Minari dataset from whole episodes; returns its id.

    name_or_id : a D4RL-style name (env id and R_min/R_max default to the task's) or a Minari id.
    episodes : mappings with ``observations`` (T+1, obs_dim), ``actions`` (T, act_dim), ``rewards``,
               ``terminations``, ``truncations`` (T,) and optionally ``seed`` (of the reset); only the
               last step may be terminal or truncated.
    metadata : how the data was made (command, seed, SAC steps, behaviour score, ...), stored as JSON under
               the Minari metadata key ``gde_ref`` with ``name``, ``episodes``, ``transitions``,
               ``mean_episode_return`` (normalized: ``mean_episode_score``) and ``created_utc``.
               Other keywords go to Minari.
    """
    import minari
    from minari.namespace import NAMESPACE_METADATA_FILENAME
    from minari.storage.datasets_root_dir import get_dataset_path
    did, task = _resolve_id(name_or_id)
    if env_id is None and task is None:
        raise ValueError(f"save_dataset({name_or_id!r}): pass env_id= (e.g. 'Hopper-v5') for a Minari id that is "
                         "not a D4RL-style name")
    env_id = env_id or {**ENV_IDS, **GOAL_ENV_IDS}[task]
    if ref_min_score is None and ref_max_score is None and task is not None:
        ref_min_score, ref_max_score = REF_SCORES[task]
    if (ref_min_score is None) != (ref_max_score is None):
        raise ValueError("pass both ref_min_score and ref_max_score, or neither")
    obs_space, act_space, _ = env_spaces(env_id)
    buffers, returns = _episode_buffers(episodes, obs_space, act_space)
    mean_return = float(np.mean(returns))
    extra = {**_json_ready(metadata or {}), "name": NAME_OF_ID.get(did), "episodes": len(buffers),
             "transitions": int(sum(len(b.rewards) for b in buffers)), "mean_episode_return": mean_return,
             "mean_episode_score": None if ref_max_score is None else
             normalize_return(mean_return, ref_min_score, ref_max_score),
             "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    description = description or (f"{extra['name'] or did} on {env_id}, made by gde_ref"
                                  + (f" with `{extra['command']}`" if "command" in extra else "")
                                  + "; how it was made: metadata key gde_ref")

    root = pathlib.Path(get_dataset_path()).resolve()  # absolute: Minari re-reads the path from inside staging
    final = root / did
    if final.exists():
        raise FileExistsError(f"dataset {did} already exists at {final}; delete it first "
                              f"(`minari delete {did}` or remove the directory) to make it again")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".staging-", dir=root))  # hidden: Minari skips it
    try:
        with datasets_root(staging), quiet_mujoco_warnings(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`(author_email|code_permalink)` is set to None")
            dataset = minari.create_dataset_from_buffers(
                dataset_id=did, buffer=buffers, env=env_id, eval_env=env_id, algorithm_name=algorithm_name,
                author=author, author_email=author_email, code_permalink=code_permalink,
                ref_min_score=ref_min_score, ref_max_score=ref_max_score, description=description,
                requirements=[f"{p}>={version(p).rsplit('.', 1)[0]}" for p in ("gymnasium", "mujoco")
                              + (("gymnasium-robotics",) if task in GOAL_ENV_IDS else ())])
            dataset.storage.update_metadata({"gde_ref": extra})
        final.parent.mkdir(parents=True, exist_ok=True)
        namespace_file = (staging / did).parent / NAMESPACE_METADATA_FILENAME
        if namespace_file.exists() and not (final.parent / NAMESPACE_METADATA_FILENAME).exists():
            shutil.copy(namespace_file, final.parent / NAMESPACE_METADATA_FILENAME)
        os.rename(staging / did, final)  # atomic: the dataset appears complete or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return did


def _episode_buffers(episodes, obs_space, act_space):
    """Validate whole episodes against the spaces; return Minari EpisodeBuffers and episode returns."""
    from minari.data_collector.episode_buffer import EpisodeBuffer
    if len(episodes) == 0:
        raise ValueError("no episodes to save: the dataset would be empty")
    buffers, returns = [], []
    for i, ep in enumerate(episodes):
        if missing := [k for k in EPISODE_KEYS if k not in ep]:
            raise ValueError(f"episode {i} lacks {missing}; each episode needs {list(EPISODE_KEYS)}")
        rewards = np.asarray(ep["rewards"], np.float64)
        if (steps := len(rewards)) == 0:
            raise ValueError(f"episode {i} has no steps; drop it")
        arrays = {"observations": np.asarray(ep["observations"], obs_space.dtype),
                  "actions": np.asarray(ep["actions"], act_space.dtype), "rewards": rewards,
                  **{key: _flags(f"episode {i} {key}", ep[key]) for key in EPISODE_KEYS[3:]}}
        want = {"observations": (steps + 1, *obs_space.shape), "actions": (steps, *act_space.shape)}
        for key, arr in arrays.items():
            if arr.shape != (shape := want.get(key, (steps,))):
                raise ValueError(f"episode {i}: {key} has shape {arr.shape}, expected {shape} (T = {steps} steps from "
                                 "the rewards; observations include the final one, T + 1 rows)")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(f"episode {i}: {key} contains NaN or inf at step "
                                 f"{int(np.argwhere(~np.isfinite(arr))[0, 0])}; fix or drop the episode")
        ends = arrays["terminations"][:-1] | arrays["truncations"][:-1]
        if ends.any():
            raise ValueError(f"episode {i} ends at step {int(np.argmax(ends))} but has {steps} steps; "
                             "split it so that only the last step is terminal or truncated")
        seed = ep.get("seed")
        buffers.append(EpisodeBuffer(seed=None if seed is None else int(seed), **arrays))
        returns.append(float(rewards.sum()))
    return buffers, np.array(returns)


@contextmanager
def datasets_root(path):
    """Point Minari at another datasets directory for the duration of the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(os.path.expanduser(str(path)))
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _json_ready(metadata):
    def builtin(x):
        if isinstance(x, (np.generic, np.ndarray)):
            return x.tolist()
        raise TypeError(f"metadata value {x!r} of type {type(x).__name__} is not JSON-serializable; pass "
                        "numbers, strings, lists or dicts")
    return json.loads(json.dumps(dict(metadata), default=builtin))


# -- loading ------------------------------------------------------------------------------------------
def load_dataset(source, env=None):
    """Load flat transitions from a D4RL-style name, a local Minari id, or a D4RL-format HDF5 file path.

    env : optional task (``"hopper"``), Gymnasium id or env to check the data against (a D4RL-style name
          is checked against its task); a task also gives the reference returns when the data has none.
    Errors name the problem and the fix: unknown id, missing file or keys, empty data, NaN/inf, shapes
    that do not match the env's spaces, data collected on another env.
    """
    text = os.fspath(source)
    if isinstance(source, os.PathLike) or text.endswith((".hdf5", ".h5")) or os.path.isfile(text):
        arrays, info = _read_hdf5(pathlib.Path(text))
    else:
        did, task = _resolve_id(text)
        arrays, info = _read_minari(did, text)
        env = env if env is not None else task
    if env is not None:
        obs_space, act_space, env_id = env_spaces(env)
        if info["env_id"] and env_id and env_name(info["env_id"]) != env_name(env_id):
            raise ValueError(f"{info['source']} was collected on {info['env_id']}, not {env_id}; load it with "
                             f"env={info['env_id']!r} (or none), or pick a dataset collected on {env_id}")
        _check_spaces(info["source"], arrays, obs_space, act_space, f"the env {env_id or env}")
        info["env_id"] = info["env_id"] or env_id
    if info["ref_min_score"] is None and (task := task_of_env_id(info["env_id"])) is not None:
        info["ref_min_score"], info["ref_max_score"] = REF_SCORES[task]
    return OfflineDataset(**arrays, **info)


def _resolve_id(text):
    """(Minari id, task): a D4RL-style name maps to our namespace; anything else is taken as an id."""
    if text in ALL_NAMES:
        return dataset_id(text), parse_dataset_name(text)[0]
    return text, None


def _read_minari(did, asked):
    import minari
    from minari.dataset.minari_storage import MinariStorage
    from minari.storage.datasets_root_dir import get_dataset_path
    path = get_dataset_path(did)
    if not (path / "data").is_dir():
        local = ", ".join(minari.list_local_datasets()) or "none"
        raise FileNotFoundError(f"no local dataset {asked!r} (looked for {path}). Local datasets: {local}. "
                                f"{MAKE_HINT}, or copy a Minari dataset under {get_dataset_path()} "
                                "($MINARI_DATASETS_PATH)")
    try:
        with quiet_mujoco_warnings():
            dataset = minari.load_dataset(did)
        meta = MinariStorage.read_raw_metadata(path / "data")
    except Exception as e:  # noqa: BLE001 (any failure to read means a broken copy)
        raise ValueError(f"dataset {did} at {path} cannot be read ({e}); delete it and make or copy it again") from e
    if dataset.total_episodes == 0:
        raise ValueError(f"dataset {did} has no episodes; delete it ({path}) and make it again")
    if not hasattr(dataset.observation_space, "shape") or dataset.observation_space.shape is None:
        raise ValueError(f"dataset {did} has {type(dataset.observation_space).__name__} observations; only "
                         "array (Box) observations load as flat transitions")
    try:   # a stored file cut short (an interrupted copy) or damaged fails while its episodes are read
        columns, returns, lengths = _episode_columns(dataset, did)
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"dataset {did} at {path} is corrupt or incomplete ({e}); delete it and make or copy "
                         "it again") from e
    arrays = _flat_arrays(did, *map(np.concatenate, columns), returns, lengths)
    env_spec = dataset.spec.env_spec
    info = {"source": did, "env_id": env_spec.id if env_spec is not None else None,
            "ref_min_score": meta.get("ref_min_score"), "ref_max_score": meta.get("ref_max_score"), "metadata": meta}
    _check_spaces(did, arrays, dataset.observation_space, dataset.action_space, "its own stored spaces")
    return arrays, info


def _episode_columns(dataset, did):
    """The flat columns (s, a, r, s', terminal, timeout), episode returns and lengths of a Minari dataset."""
    columns, returns, lengths = ([], [], [], [], [], []), [], []  # s, a, r, s', terminal, timeout
    for ep in dataset.iterate_episodes():
        if len(ep.observations) != len(ep.rewards) + 1 or len(ep.actions) != len(ep.rewards):
            raise ValueError(f"dataset {did}, episode {ep.id}: {len(ep.observations)} observations and "
                             f"{len(ep.actions)} actions for {len(ep.rewards)} rewards (expected T + 1 and T): corrupt")
        parts = (ep.observations[:-1], ep.actions, ep.rewards, ep.observations[1:], ep.terminations, ep.truncations)
        for column, part in zip(columns, parts):
            column.append(part)
        returns.append(np.sum(ep.rewards, dtype=np.float64)), lengths.append(len(ep.rewards))
    return columns, returns, lengths


def _read_hdf5(path):
    import h5py
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}" + ("" if path.suffix in (".hdf5", ".h5") else
                                "; pass a D4RL-format .hdf5 file, a Minari id or a D4RL-style name"))
    try:
        with h5py.File(path, "r") as f:
            if missing := [k for k in D4RL_KEYS if k not in f]:
                raise ValueError(f"{path} lacks {missing} (it has {sorted(f.keys())}); a D4RL-format file needs "
                                 f"{list(D4RL_KEYS)} and optionally next_observations")
            raw = {k: f[k][()] for k in (*D4RL_KEYS, "next_observations") if k in f}
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({e}); pass a D4RL-format .hdf5 file") from e
    n = len(raw["rewards"])
    for key, value in raw.items():
        if len(value) != n:
            raise ValueError(f"{path}: {key} has {len(value)} rows but rewards has {n}; every key needs one row "
                             "per transition")
    if n == 0:
        raise ValueError(f"{path} holds no transitions; the dataset is empty")
    if raw["observations"].ndim != 2:
        raise ValueError(f"{path}: observations must be 2-D (N, obs_dim), got shape {raw['observations'].shape}")
    rewards = raw["rewards"].reshape(n).astype(np.float64)
    terminals = _flags(f"{path} terminals", raw["terminals"].reshape(n))
    timeouts = _flags(f"{path} timeouts", raw["timeouts"].reshape(n))
    obs = raw["observations"]
    ends = np.flatnonzero(terminals | timeouts | (np.arange(n) == n - 1))  # last step of each episode
    starts = np.concatenate(([0], ends[:-1] + 1))
    returns, lengths = np.add.reduceat(rewards, starts), ends - starts + 1
    if "next_observations" in raw:
        keep, next_obs = np.ones(n, bool), raw["next_observations"]
    else:  # the module docstring states these rules
        step = np.arange(n)
        keep = terminals | (~timeouts & (step < n - 1))
        next_obs = obs[np.where(terminals, step, np.minimum(step + 1, n - 1))]
    info = {"source": str(path), "env_id": None, "ref_min_score": None, "ref_max_score": None, "metadata": {}}
    return _flat_arrays(str(path), obs[keep], raw["actions"][keep], rewards[keep], next_obs[keep],
                        terminals[keep], timeouts[keep], returns, lengths), info


def _flags(name, x):
    """0/1 or bool flags as a bool array."""
    x = np.asarray(x)
    if x.dtype != bool and not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 or True/False, got values {np.unique(x)[:5]}")
    return x.astype(bool)


def _flat_arrays(source, obs, actions, rewards, next_obs, terminals, timeouts, returns, lengths):
    """The OfflineDataset arrays in their dtypes, after the empty and NaN/inf checks."""
    if len(rewards) == 0:
        raise ValueError(f"{source} has no transitions left: the dataset is empty")
    actions = np.asarray(actions)
    arrays = {"observations": np.asarray(obs, np.float32),
              "actions": actions.astype(np.int64 if actions.dtype.kind in "iu" else np.float32),
              "rewards": np.asarray(rewards, np.float32), "next_observations": np.asarray(next_obs, np.float32),
              "terminals": np.asarray(terminals, bool), "timeouts": np.asarray(timeouts, bool),
              "episode_returns": np.asarray(returns, np.float64), "episode_lengths": np.asarray(lengths, np.int64)}
    for key in ("observations", "actions", "rewards", "next_observations"):
        bad = ~np.isfinite(arrays[key]) if arrays[key].dtype.kind == "f" else None
        if bad is not None and bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise ValueError(f"{source}: {key} contains NaN or inf in {len(rows)} transition(s), the first at "
                             f"transition {rows[0]}; the data is corrupt: regenerate it (or drop those episodes)")
    return arrays


def _check_spaces(source, arrays, obs_space, act_space, against):
    for key, space in (("observations", obs_space), ("actions", act_space)):
        got, want = arrays[key].shape[1:], tuple(space.shape or ())
        if got != want:
            raise ValueError(f"{source}: each row of {key} has shape {got} but {against} expects {want}; "
                             "load the dataset with the env it was collected on")
