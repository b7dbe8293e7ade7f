"""Monte-Carlo returns-to-go for Cal-QL (Nakamoto et al., 2023): of the offline data, and of online episodes.

Cal-QL lower-bounds the Q-values of the policy's actions by the discounted return G(s) that the data collected
from each state. The rule (``returns_to_go``, the official ``calc_return_to_go``), per trajectory:

    G_t = r_t + gamma (1 - terminal_t) G_{t+1},   G = 0 after the trajectory's last step (no bootstrap where a
                                                  time limit or the data cut it);
    a "sparse failure", a trajectory whose every reward equals ``failure_reward`` (the official reward_neg,
    antmaze's never-reached-the-goal reward), gets G_t = failure_reward / (1 - gamma) at every step, the value
    of failing forever, instead of the truncated sum.

* Offline (``dataset_returns_to_go``): a trajectory ends at a terminal, at a timeout, where the next state is
  not the next row's state (a D4RL file whose timeout step was dropped) and at the end of the data.
* Online (``MCReplayBuffer``): an episode's transitions enter the buffer, and can be sampled, as they come,
  with G = -inf (no bound: that row's penalty is CQL's); when the episode ends their G is filled in. Where
  our loop cuts an episode without ending it (an evaluation stage's end, ``end_stream``) the cut counts as
  its end: G is the sum of the rewards collected, without bootstrap, as the official code computes it for a
  trajectory cut at the env's step limit. Unlike the official sampler, which stores a trajectory only once
  it is complete, our transitions are sampleable at once (every method here learns from the same stream of
  data; a row of the running episode only lacks its bound for a while).

Rewards are as stored here (the env's, shifted by r - 1 on the sparse tasks, not yet scaled); G is linear in the rewards, failure rule included, so
scaling G by the reward scale when a batch is drawn is the same as computing it from scaled rewards.
Locomotion: the official Cal-QL computes G only for antmaze and Adroit (sparse rewards; any other env raises).
We apply the same rule to the dense locomotion rewards with no failure rule (``failure_reward`` None, the
default): G is then the discounted sum of the trajectory's remaining rewards.
"""
import numpy as np

from gde_ref.data.batch import MCBatch
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.trajectories import trajectory_ends
from gde_ref.nn.checks import check_array


def returns_to_go(rewards, terminals, ends, discount, failure_reward=None):
    """G (N,) float64 of the transitions of consecutive trajectories (the module docstring's rule).

    rewards (N,); terminals (N,) bool (no bootstrap from s'); ends (N,) bool: the last step of each trajectory
    (the last row always ends one); discount gamma in [0, 1); failure_reward: r_neg of the sparse-failure
    rule, or None for no such rule."""
    rewards = np.asarray(check_array("returns_to_go rewards", np.asarray(rewards, np.float64), ndim=1))
    n = rewards.shape[0]
    terminals, ends = (np.asarray(x) for x in (terminals, ends))
    for name, x in (("terminals", terminals), ("ends", ends)):
        if x.shape != (n,) or x.dtype != bool:
            raise ValueError(f"returns_to_go {name} must be a bool array of shape ({n},), got {x.dtype} {x.shape}")
    if not 0.0 <= discount < 1.0:
        raise ValueError(f"returns_to_go needs a discount in [0, 1) (G is a discounted sum), got {discount}")
    if not np.isfinite(rewards).all():
        raise ValueError("returns_to_go rewards contain NaN or inf")
    g = np.empty(n, np.float64)
    last = np.flatnonzero(ends | (np.arange(n) == n - 1))
    start = 0
    for end in last:
        r = rewards[start:end + 1]
        if failure_reward is not None and np.all(r == failure_reward):
            g[start:end + 1] = failure_reward / (1.0 - discount)
        else:
            following = 0.0
            for t in range(end, start - 1, -1):
                following = rewards[t] + discount * (0.0 if terminals[t] else following)
                g[t] = following
        start = end + 1
    return g


def dataset_returns_to_go(dataset, discount, failure_reward=None):
    """G (N,) float32 of every transition of an ``OfflineDataset``, from its raw rewards."""
    if len(dataset.rewards) == 0:
        raise ValueError(f"dataset {dataset.source} has no transitions")
    g = returns_to_go(dataset.rewards, np.asarray(dataset.terminals, bool), trajectory_ends(dataset), discount,
                      failure_reward)
    return g.astype(np.float32)


def with_returns_to_go(arrays, dataset, discount, failure_reward=None):
    """``TrainingArrays`` whose batches carry G (``MCBatch``), scaled as its rewards are."""
    from dataclasses import replace
    g = dataset_returns_to_go(dataset, discount, failure_reward).astype(np.float64) * arrays.reward_scale
    if g.shape != arrays.rewards.shape:
        raise ValueError(f"the training arrays have {len(arrays.rewards)} transitions, the dataset {len(g)}: "
                         "prepare them from this dataset")
    return replace(arrays, mc_returns=g.astype(np.float32))


class MCReplayBuffer:
    """A ``ReplayBuffer`` (n-step folding, streams, ring) whose batches carry each row's return-to-go G of its
    state (``MCBatch``), filled when the row's episode ends (module docstring, Online). Same protocol: add,
    end_stream, add_batch (with G given), sample, len, state_dict / load_state_dict, n_step, discount."""

    def __init__(self, capacity, obs_dim, act_dim=None, n_step=1, discount=0.99, failure_reward=None,
                 dtype=np.float32):
        if not 0.0 <= discount < 1.0:
            raise ValueError(f"MCReplayBuffer needs a discount in [0, 1) (G is a discounted sum), got {discount}")
        self.replay = ReplayBuffer(capacity, obs_dim, act_dim, n_step, discount, dtype)
        self.n_step, self.discount, self.failure_reward = self.replay.n_step, self.replay.discount, failure_reward
        self.mc_returns = np.full(self.replay.capacity, -np.inf, dtype)
        self._episodes = {}   # stream -> ([raw rewards of its running episode], [total_added ids of its rows])

    def __len__(self):
        return len(self.replay)

    def _stored(self, stream, before):
        """The rows the replay buffer stored since its count was ``before`` belong to ``stream``'s episode."""
        ids = self._episodes.setdefault(stream, ([], []))[1]
        for t in range(before, self.replay.total_added):
            ids.append(t)
            self.mc_returns[t % self.replay.capacity] = -np.inf

    def _fill(self, stream, terminal):
        """``stream``'s episode ended (``terminal``: in a terminal state): write G of its rows still stored."""
        rewards, ids = self._episodes.pop(stream, ([], []))
        if not rewards:
            return
        n = len(rewards)
        terminals, ends = np.zeros(n, bool), np.zeros(n, bool)
        terminals[-1], ends[-1] = terminal, True
        g = returns_to_go(rewards, terminals, ends, self.discount, self.failure_reward)
        for k, t in enumerate(ids):
            if self.replay.total_added - t <= self.replay.capacity:    # not overwritten since
                self.mc_returns[t % self.replay.capacity] = g[k]

    def add(self, obs, action, reward, next_obs, terminated, truncated=False, stream="main"):
        """``ReplayBuffer.add``; the episode's G is written when it ends (terminated or truncated)."""
        before = self.replay.total_added
        self.replay.add(obs, action, reward, next_obs, terminated, truncated, stream)
        self._episodes.setdefault(stream, ([], []))[0].append(float(reward))
        self._stored(stream, before)
        if terminated or truncated:
            self._fill(stream, bool(terminated))

    def end_stream(self, stream="main"):
        """``ReplayBuffer.end_stream``; the cut ends the stream's episode: G without bootstrap."""
        before = self.replay.total_added
        self.replay.end_stream(stream)
        if stream in self._episodes:
            self._stored(stream, before)
            self._fill(stream, False)

    def add_batch(self, obs, actions, rewards, next_obs, discounts, mc_returns):
        """Already-formed transitions with their G (e.g. a dataset and ``dataset_returns_to_go``)."""
        before = self.replay.total_added
        self.replay.add_batch(obs, actions, rewards, next_obs, discounts)
        for k, t in enumerate(range(before, self.replay.total_added)):
            self.mc_returns[t % self.replay.capacity] = mc_returns[k]

    def sample(self, batch_size, rng):
        """An ``MCBatch`` of ``batch_size`` rows drawn uniformly with replacement (as ``ReplayBuffer.sample``)."""
        r = self.replay
        if r.size == 0:
            raise ValueError("cannot sample from an empty replay buffer: add transitions first")
        idx = rng.integers(0, r.size, batch_size)
        return MCBatch(r.obs[idx], r.actions[idx], r.rewards[idx], r.discounts[idx], r.next_obs[idx],
                       self.mc_returns[idx])

    def state_dict(self):
        """The replay buffer's state, G of every row, and each stream's running episode (rewards, row ids)."""
        out = {**self.replay.state_dict(), "mc_returns": self.mc_returns}
        for stream, (rewards, ids) in self._episodes.items():
            if rewards:
                out[f"episode/{stream}/rewards"] = np.array(rewards, np.float64)
                out[f"episode/{stream}/ids"] = np.array(ids, np.int64)
        return out

    def load_state_dict(self, state):
        if state["mc_returns"].shape != self.mc_returns.shape:
            raise ValueError(f"buffer checkpoint has mc_returns of shape {state['mc_returns'].shape}, this buffer "
                             f"{self.mc_returns.shape}: it was saved for another capacity")
        self.replay.load_state_dict({k: v for k, v in state.items() if not k.startswith("episode/")})
        self.mc_returns[:] = state["mc_returns"]
        streams = {key.split("/")[1] for key in state if key.startswith("episode/")}
        self._episodes = {s: ([float(r) for r in state[f"episode/{s}/rewards"]],
                              [int(t) for t in state[f"episode/{s}/ids"]]) for s in sorted(streams)}


def mc_offline_replay(offline, obs_dim, act_dim, discount, failure_reward=None):
    """A one-step ``MCReplayBuffer`` holding every raw transition of the dataset ``offline`` with its G
    (``dataset_returns_to_go``) and discount gamma (1 - terminal), never written to afterwards."""
    n = len(offline.rewards)
    buffer = MCReplayBuffer(n, obs_dim, act_dim, 1, discount, failure_reward)
    discounts = (discount * (1.0 - np.asarray(offline.terminals, np.float32))).astype(np.float32)
    buffer.add_batch(offline.observations, offline.actions, offline.rewards, offline.next_observations, discounts,
                     dataset_returns_to_go(offline, discount, failure_reward))
    return buffer
