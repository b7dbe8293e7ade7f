"""Replay buffer with n-step returns, shared by every online learner (maze, SAC, fine-tuning).

Transitions are stored already folded into n-step form::

    R_t = r_t + gamma r_{t+1} + ... + gamma^{m-1} r_{t+m-1},    discount_t = gamma^m (1 - terminal)

where m = n, or fewer steps when the episode ends first. The bootstrapped target is then
``R_t + discount_t * V(s_{t+m})`` for any n, which is what every update step computes
(``Batch.discounts``). A time-limit truncation is *not* a terminal: its transitions keep bootstrapping
(D4RL/IQL convention); a termination (a goal, a fall) stops the bootstrap.

Several environments may feed one buffer (the exploration env and the evaluation-stage env of
Algorithm 1): each is a *stream* with its own pending queue, so an n-step return never mixes rewards of
two envs and its next state comes from the same env. ``end_stream`` folds a stream's pending steps as a
truncation (they bootstrap from that stream's last next state) when its env stops without the episode
ending, e.g. at the end of an evaluation stage.
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
        self._pending = {}    # stream -> the current episode's last < n steps, not yet folded
        self._last_next = {}  # stream -> the next state of its latest step (what end_stream bootstraps from)

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

    def _fold(self, pending, next_obs, terminal):
        """Store the n-step transition that starts at the oldest of ``pending`` (one stream's queue)."""
        ret, g = 0.0, 1.0
        for _, _, r in pending:
            ret += g * r
            g *= self.discount
        obs, action, _ = pending.popleft()
        self._store(obs, action, ret, next_obs, 0.0 if terminal else g)

    def add(self, obs, action, reward, next_obs, terminated, truncated=False, stream="main"):
        """Add one environment step of ``stream`` (one env; see the module docstring). ``terminated``: the
        episode ended in a terminal state (no bootstrap); ``truncated``: it was cut by a time limit
        (bootstrap from next_obs). Either ends the episode."""
        pending = self._pending.setdefault(stream, deque())
        pending.append((np.array(obs, copy=True), action if self.discrete else np.array(action, copy=True),
                        float(reward)))
        if terminated or truncated:
            while pending:
                self._fold(pending, next_obs, terminated)
            self._last_next.pop(stream, None)
        else:
            self._last_next[stream] = np.array(next_obs, copy=True)
            if len(pending) == self.n_step:
                self._fold(pending, next_obs, False)

    def end_stream(self, stream="main"):
        """``stream``'s env stops mid-episode (an evaluation stage ends): fold its pending steps as a
        truncation, each bootstrapping from the stream's last next state. Nothing pending: nothing to do."""
        pending = self._pending.get(stream)
        while pending:
            self._fold(pending, self._last_next[stream], False)
        self._last_next.pop(stream, None)

    def pending_steps(self, stream="main"):
        """How many of ``stream``'s steps wait for their n-step return (always 0 for n = 1)."""
        return len(self._pending.get(stream, ()))

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
        """Everything needed to continue exactly where this buffer is (for checkpoints): the arrays, the
        counters and, per stream, its pending steps (``pending/STREAM/...``) and last next state."""
        out = {"obs": self.obs, "next_obs": self.next_obs, "actions": self.actions, "rewards": self.rewards,
               "discounts": self.discounts,
               "counters": np.array([self.size, self.next_index, self.total_added], np.int64)}
        for stream, pending in self._pending.items():
            if not pending:
                continue
            pending = list(pending)
            out[f"pending/{stream}/obs"] = np.array([p[0] for p in pending]).reshape(len(pending), self.obs.shape[1])
            out[f"pending/{stream}/actions"] = np.array([p[1] for p in pending]).reshape(
                (len(pending),) + self.actions.shape[1:])
            out[f"pending/{stream}/rewards"] = np.array([p[2] for p in pending], np.float64)
            out[f"pending/{stream}/last_next"] = self._last_next[stream]
        return out

    def load_state_dict(self, state):
        for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
            if state[name].shape != getattr(self, name).shape:
                raise ValueError(f"buffer checkpoint has {name} of shape {state[name].shape}, this buffer "
                                 f"{getattr(self, name).shape}: it was saved for another task or capacity")
            getattr(self, name)[:] = state[name]
        self.size, self.next_index, self.total_added = (int(x) for x in state["counters"])
        self._pending, self._last_next = {}, {}
        streams = {key.split("/")[1] for key in state if key.startswith("pending/")}
        for stream in sorted(streams):
            part = {name: state[f"pending/{stream}/{name}"] for name in ("obs", "actions", "rewards", "last_next")}
            self._pending[stream] = deque((o, (int(a) if self.discrete else a), float(r)) for o, a, r in
                                          zip(part["obs"], part["actions"], part["rewards"]))
            self._last_next[stream] = part["last_next"]
