"""The local Minari datasets at a glance: ``gde-ref datasets`` (id, D4RL-style name, env, size, behaviour score;
a goal-conditioned PointMaze dataset's score is its success rate x 100, and its rows carry ``success_rate``)."""
import json

import numpy as np

from gde_ref.data.datasets import MAKE_HINT, NAME_OF_ID
from gde_ref.envs.make import normalize_return


def list_datasets():
    """The local Minari datasets: id, D4RL-style name, env, transitions, episodes, behaviour return and
    behaviour normalized score (mean episode return, normalized with the dataset's reference returns)."""
    import minari
    from minari.storage.datasets_root_dir import get_dataset_path
    rows = []
    for did, meta in minari.list_local_datasets().items():
        extra = meta.get("gde_ref", {})
        mean_return = extra.get("mean_episode_return")
        if mean_return is None:
            mean_return = _mean_return_from_file(get_dataset_path(did) / "data" / "main_data.hdf5")
        lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
        env_id = json.loads(meta["env_spec"]).get("id") if meta.get("env_spec") else None
        score = None if None in (lo, hi, mean_return) else normalize_return(mean_return, lo, hi)
        rows.append({"id": did, "name": NAME_OF_ID.get(did), "env": env_id, "transitions": int(meta["total_steps"]),
                     "episodes": int(meta["total_episodes"]), "behaviour_return": mean_return, "behaviour_score": score,
                     "success_rate": extra.get("success_rate")})
    return rows


def _mean_return_from_file(path):
    """Mean episode return from a Minari HDF5 file's rewards (None if unreadable: e.g. the arrow format)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            returns = [np.sum(episode["rewards"][()], dtype=np.float64) for episode in f.values()]
        return float(np.mean(returns)) if returns else None
    except (OSError, KeyError):
        return None


def format_datasets(rows):
    """``gde-ref datasets`` table."""
    if not rows:
        from minari.storage.datasets_root_dir import get_dataset_path
        return f"no local datasets under {get_dataset_path()} ($MINARI_DATASETS_PATH); {MAKE_HINT}"
    header = ("id", "name", "env", "transitions", "episodes", "return", "score")
    table = [header] + [(r["id"], r["name"] or "-", r["env"] or "-", str(r["transitions"]), str(r["episodes"]),
                         *("-" if x is None else f"{x:.1f}" for x in (r["behaviour_return"], r["behaviour_score"])))
                        for r in rows]
    widths = [max(len(line[j]) for line in table) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) if j < 3 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths)))
             for line in table]
    return "\n".join(lines + ["score: D4RL normalized score of the mean episode return (reference returns from "
                              "the older MuJoCo envs: approximate on v5); pointmaze-*-goals: 100 x the success rate "
                              "(the share of episodes that reach their goal); pointmaze-* (maze2d): of the mean "
                              "relabelled episode, which chases another goal (the controller's own score on the "
                              "task: metadata behaviour_score)"])
