"""Replay buffer with n-step returns, shared by every online learner (maze, SAC, fine-tuning).

Transitions are stored already folded into n-step form::

    R_t = r_t + gamma r_{t+1} + ... + gamma^{m-1} r_{t+m-1},    discount_t = gamma^m (1 - terminal)

where m = n, or fewer steps when the episode ends first. The bootstrapped target is then
``R_t + discount_t * V(s_{t+m})`` for any n, which is what every update step computes
(``Batch.discounts``). A time-limit truncation is *not* a terminal: its transitions keep bootstrapping
(D4RL/IQL convention); a termination (a goal, a fall) stops the bootstrap.
"""
from collections import deque

import numpy as np

from gde_ref.data.batch import Batch


class ReplayBuffer:
    """A ring buffer of (n-step) transitions.

    Parameters
    ----------
    capacity : most transitions kept (the oldest are overwritten).
    obs_dim : observation size.
    act_dim : action size for continuous actions, or None for one integer action per step (discrete).
    n_step : n of the n-step return (1: ordinary one-step transitions).
    discount : gamma.
    """

    def __init__(self, capacity, obs_dim, act_dim=None, n_step=1, discount=0.99, dtype=np.float32):
        if capacity < 1 or n_step < 1 or not 0.0 <= discount <= 1.0:
            raise ValueError(f"ReplayBuffer needs capacity >= 1, n_step >= 1 and discount in [0, 1], got "
                             f"capacity={capacity}, n_step={n_step}, discount={discount}")
        self.capacity, self.n_step, self.discount = int(capacity), int(n_step), float(discount)
        self.discrete = act_dim is None
        self.obs = np.zeros((self.capacity, obs_dim), dtype)
        self.next_obs = np.zeros((self.capacity, obs_dim), dtype)
        self.actions = (np.zeros(self.capacity, np.int64) if self.discrete
                        else np.zeros((self.capacity, act_dim), dtype))
        self.rewards = np.zeros(self.capacity, dtype)
        self.discounts = np.zeros(self.capacity, dtype)
        self.size, self.next_index, self.total_added = 0, 0, 0
        self._pending = deque()  # the current episode's last < n steps, not yet folded

    def __len__(self):
        return self.size

    # -- writing ------------------------------------------------------------------------------
    def _store(self, obs, action, reward, next_obs, discount):
        i = self.next_index
        self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
        self.next_obs[i], self.discounts[i] = next_obs, discount
        self.next_index = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.total_added += 1

    def _fold(self, next_obs, terminal):
        """Store the n-step transition that starts at the oldest pending step."""
        ret, g = 0.0, 1.0
        for _, _, r in self._pending:
            ret += g * r
            g *= self.discount
        obs, action, _ = self._pending.popleft()
        self._store(obs, action, ret, next_obs, 0.0 if terminal else g)

    def add(self, obs, action, reward, next_obs, terminated, truncated=False):
        """Add one environment step. ``terminated``: the episode ended in a terminal state (no bootstrap);
        ``truncated``: it was cut by a time limit (bootstrap from next_obs). Either ends the episode."""
        self._pending.append((np.array(obs, copy=True), action if self.discrete else np.array(action, copy=True),
                              float(reward)))
        if terminated or truncated:
            while self._pending:
                self._fold(next_obs, terminated)
        elif len(self._pending) == self.n_step:
            self._fold(next_obs, False)

    def add_batch(self, obs, actions, rewards, next_obs, discounts):
        """Add already-formed transitions (e.g. a dataset), ``discounts`` = gamma^m (1 - terminal)."""
        for i in range(len(rewards)):
            self._store(obs[i], actions[i], rewards[i], next_obs[i], discounts[i])

    # -- reading ------------------------------------------------------------------------------
    def sample(self, batch_size, rng):
        """A Batch of ``batch_size`` transitions drawn uniformly with replacement, using ``rng``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        idx = rng.integers(0, self.size, batch_size)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.discounts[idx], self.next_obs[idx])

    # -- checkpoints --------------------------------------------------------------------------
    def state_dict(self):
        """Everything needed to continue exactly where this buffer is (for checkpoints)."""
        pending = list(self._pending)
        return {"obs": self.obs, "next_obs": self.next_obs, "actions": self.actions, "rewards": self.rewards,
                "discounts": self.discounts,
                "counters": np.array([self.size, self.next_index, self.total_added], np.int64),
                "pending_obs": np.array([p[0] for p in pending]).reshape(len(pending), self.obs.shape[1]),
                "pending_actions": np.array([p[1] for p in pending]).reshape((len(pending),) + self.actions.shape[1:]),
                "pending_rewards": np.array([p[2] for p in pending], np.float64)}

    def load_state_dict(self, state):
        for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
            if state[name].shape != getattr(self, name).shape:
                raise ValueError(f"buffer checkpoint has {name} of shape {state[name].shape}, this buffer "
                                 f"{getattr(self, name).shape}: it was saved for another task or capacity")
            getattr(self, name)[:] = state[name]
        self.size, self.next_index, self.total_added = (int(x) for x in state["counters"])
        self._pending = deque((o, (int(a) if self.discrete else a), float(r)) for o, a, r in
                              zip(state["pending_obs"], state["pending_actions"], state["pending_rewards"]))
