"""From an offline dataset to training arrays, as IQL prepares locomotion data.

* states are normalised by the dataset's mean and std (std + 1e-3), and the same normaliser is applied
  to the environment's observations when the agent acts;
* rewards are scaled by 1000 / (max episode return - min episode return) of the dataset (IQL's
  locomotion convention, so that returns span about 1000 whatever the task);
* discount_i = gamma (1 - terminal_i): a time-limit truncation keeps bootstrapping.

Sparse-reward tasks (PointMaze) are prepared with ``scale_rewards=False`` from rewards already shifted to
r - 1 (``experiments.sparse``, IQL's antmaze convention).
"""
from dataclasses import dataclass

import numpy as np

from gde_ref.nn.checks import check_array

STD_EPS = 1e-3


@dataclass
class ObsNormalizer:
    """s -> (s - mean) / std, in float32."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, observations):
        obs = np.asarray(observations, np.float64)
        return cls(obs.mean(0).astype(np.float32), (obs.std(0) + STD_EPS).astype(np.float32))

    @classmethod
    def identity(cls, obs_dim):
        return cls(np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32))

    def __call__(self, obs):
        return ((np.asarray(obs, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)


def reward_scale(episode_returns):
    """1000 / (max - min) of the episode returns (1 when they are all equal)."""
    spread = float(np.max(episode_returns) - np.min(episode_returns))
    return 1000.0 / spread if spread > 0 else 1.0


@dataclass
class TrainingArrays:
    """Normalised transitions ready for batches: obs, actions, rewards (scaled), discounts, next_obs; and, for
    Cal-QL, each state's Monte-Carlo return-to-go (scaled; ``data.returns_to_go.with_returns_to_go``)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    discounts: np.ndarray
    next_obs: np.ndarray
    normalizer: ObsNormalizer
    reward_scale: float
    mc_returns: np.ndarray | None = None

    def __len__(self):
        return len(self.rewards)

    def batch(self, rng, size):
        """A uniformly sampled Batch of ``size`` transitions (an MCBatch when the arrays have ``mc_returns``)."""
        from gde_ref.data.batch import Batch, MCBatch
        idx = rng.integers(0, len(self), size)
        batch = Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.discounts[idx], self.next_obs[idx])
        return batch if self.mc_returns is None else MCBatch(*batch, self.mc_returns[idx])


def prepare_transitions(dataset, discount, normalize_states=True, scale_rewards=True):
    """TrainingArrays from an ``OfflineDataset`` (see the module docstring)."""
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.source} has no transitions")
    obs = check_array("dataset observations", np.asarray(dataset.observations, np.float32), ndim=2)
    norm = ObsNormalizer.fit(obs) if normalize_states else ObsNormalizer.identity(obs.shape[1])
    scale = reward_scale(dataset.episode_returns) if scale_rewards else 1.0
    return TrainingArrays(norm(obs), np.ascontiguousarray(dataset.actions, np.float32),
                          (np.asarray(dataset.rewards, np.float64) * scale).astype(np.float32),
                          (discount * (1.0 - np.asarray(dataset.terminals, np.float32))).astype(np.float32),
                          norm(dataset.next_observations), norm, scale)
