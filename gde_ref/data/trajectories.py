"""Where the trajectories of a flat offline dataset start and end.

A dataset stores transitions row after row (``data.datasets.OfflineDataset``). Row i is followed by row i + 1
in the same trajectory when s'_i == s_{i+1} and step i neither terminated nor was cut by a time limit. The
state-chain test also cuts where a D4RL file without next_observations dropped its timeout rows and left no
flag. Table 5's filter (whole trajectories by return), Cal-QL's Monte-Carlo returns-to-go and BpIQL's
action pairs all read the trajectories this one way.
"""
import numpy as np


def continues(dataset):
    """(N,) bool: row i is followed by row i + 1 in the same trajectory (module docstring). ``dataset``: any
    object with observations, next_observations (N, obs_dim), rewards, terminals (N,) and optionally timeouts."""
    n = len(dataset.rewards)
    obs, next_obs = np.asarray(dataset.observations), np.asarray(dataset.next_observations)
    if obs.ndim != 2 or obs.shape != next_obs.shape or len(dataset.terminals) != n or len(obs) != n:
        raise ValueError(f"the offline dataset needs observations and next_observations (N, obs_dim) and terminals "
                         f"(N,) for its {n} rewards, got {obs.shape}, {next_obs.shape}, {len(dataset.terminals)}")
    timeouts = getattr(dataset, "timeouts", None)
    cut = np.asarray(dataset.terminals, bool) | (False if timeouts is None else np.asarray(timeouts, bool))
    chained = np.zeros(n, bool)
    chained[:-1] = (next_obs[:-1] == obs[1:]).all(axis=1)
    return chained & ~cut


def trajectory_starts(dataset):
    """The first row of each trajectory."""
    return np.flatnonzero(np.concatenate(([True], ~continues(dataset)[:-1])))


def trajectory_ends(dataset):
    """(N,) bool: the last row of each trajectory (the last row of the data is always one)."""
    return ~continues(dataset)
