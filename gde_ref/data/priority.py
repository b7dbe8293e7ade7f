"""Replay buffers that hold the offline dataset beside the online samples: the data strategies of the
paper's Table 5 (Appendix A.3.1) for IQL fine-tuning.

    SumTree            a binary sum-tree over leaf priorities: totals, updates and proportional sampling
    top_trajectories   "Filter": the rows of the highest-return trajectories holding 20% of the transitions
    n_step_offline     the raw dataset folded into n-step transitions (the online buffer's convention)
    PrioritizedBuffer  offline part (read-only) + online ``ReplayBuffer`` under one sum-tree: PER (Schaul et
                       al. 2016, "Prioritized Experience Replay") and Off2OnRL's balanced replay (Lee et al.
                       2022, "Offline-to-Online Reinforcement Learning via Balanced Replay and Pessimistic
                       Q-Ensemble") differ only in the priorities their learners write back (``finetune.datamix``)

Sampling is stratified proportional (Schaul et al. 2016, Appendix B.2.1; Off2OnRL's sampler): the total
mass is cut into B equal segments and one value is drawn uniformly in each, so a batch of B holds
transition i with probability p_i / sum_j p_j per draw. ``sample`` returns a ``SampledBatch``: a ``Batch``
that also carries the slots it was drawn from (``indices``) and its buffer, so that a learner can write the
new priorities back (``update_priorities``) without any change to the update kernels.
"""
import math

import numpy as np

from gde_ref.data.batch import Batch
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.trajectories import continues, trajectory_starts


class SumTree:
    """Priorities p_0..p_{capacity-1} >= 0 at the leaves of a complete binary tree whose every inner node is
    the sum of its two children, so the root is sum_i p_i. ``nodes[1]`` is the root; the children of node k
    are 2k and 2k + 1; leaf i is node ``base + i`` (base = the next power of two >= capacity; the padding
    leaves stay 0). A parent is always recomputed as left + right, never incremented, so the tree is a
    function of its leaves alone: rebuilding it from saved leaves gives bit-identical sums."""

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError(f"SumTree needs capacity >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.base = 1 << max(0, math.ceil(math.log2(self.capacity)))
        self.nodes = np.zeros(2 * self.base, np.float64)

    @property
    def total(self):
        return float(self.nodes[1])

    @property
    def leaves(self):
        """The priorities (a view: read only through it)."""
        return self.nodes[self.base:self.base + self.capacity]

    def set(self, indices, priorities):
        """p_i <- priority for each i of ``indices``, then every ancestor recomputed level by level."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        priorities = np.broadcast_to(np.asarray(priorities, np.float64), indices.shape)
        if indices.size == 0:
            return
        if indices.min() < 0 or indices.max() >= self.capacity:
            raise IndexError(f"SumTree leaf index out of [0, {self.capacity}): {indices.min()}..{indices.max()}")
        if not np.isfinite(priorities).all() or priorities.min() < 0:
            raise ValueError("priorities must be finite and >= 0")
        self.nodes[self.base + indices] = priorities
        parents = np.unique((self.base + indices) // 2)
        while parents.size and parents[-1] >= 1:
            self.nodes[parents] = self.nodes[2 * parents] + self.nodes[2 * parents + 1]
            if parents[0] == 1:
                break
            parents = np.unique(parents // 2)

    def load_leaves(self, leaves):
        """Set every leaf at once (a checkpoint), rebuilding all inner nodes bottom-up."""
        self.nodes[:] = 0.0
        self.nodes[self.base:self.base + self.capacity] = leaves
        level = self.base // 2           # nodes level..2 level - 1, from the leaves' parents up to the root
        while level >= 1:
            self.nodes[level:2 * level] = self.nodes[2 * level:4 * level:2] + self.nodes[2 * level + 1:4 * level:2]
            level //= 2

    def find(self, values):
        """For each v in [0, total): the leaf i with sum_{j<i} p_j <= v < sum_{j<=i} p_j (a descent from the root:
        go right when v >= the left child's sum, subtracting it)."""
        values = np.array(values, np.float64).reshape(-1)
        node = np.ones(values.shape, np.int64)
        while node.size and node[0] < self.base:
            left = 2 * node
            left_sum = self.nodes[left]
            right = values >= left_sum
            values = values - np.where(right, left_sum, 0.0)
            node = left + right
        leaf = np.minimum(node - self.base, self.capacity - 1)
        # a one-ulp rounding of v - left_sum can end the descent on an empty slot just right of a full one
        # (the online part fills its slots in order): step back to the nearest leaf with mass
        while True:
            empty = self.nodes[self.base + leaf] <= 0.0
            if not empty.any():
                return leaf
            leaf[empty] -= 1
            if leaf.min() < 0:
                raise RuntimeError("SumTree.find reached no leaf with a positive priority")

    def sample(self, batch_size, rng):
        """``batch_size`` leaves drawn proportionally to their priorities, stratified: one uniform value in
        each of batch_size equal segments of [0, total)."""
        total = self.total
        if not total > 0.0:
            raise ValueError("cannot sample from a SumTree whose priorities sum to 0: add transitions first")
        u = (np.arange(batch_size) + rng.random(batch_size)) * (total / batch_size)
        return self.find(np.minimum(u, np.nextafter(total, 0.0)))


# ------------------------------------------------------------------------------------------------
# the raw offline dataset: trajectories, Table 5's filter, n-step folding
# ------------------------------------------------------------------------------------------------
def top_trajectories(offline, fraction=0.2):
    """Table 5's "Filter": the rows (sorted) of the highest-return trajectories, taken whole in decreasing order
    of their undiscounted return (ties: earlier first) until they hold at least ``fraction`` of the transitions.
    Whole trajectories are kept, so the share can exceed ``fraction`` by less than one trajectory."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(offline.rewards)
    if n == 0:
        raise ValueError("the offline dataset is empty")
    starts = trajectory_starts(offline)
    lengths = np.diff(np.append(starts, n))
    returns = np.add.reduceat(np.asarray(offline.rewards, np.float64), starts)
    order = np.argsort(-returns, kind="stable")
    need = math.ceil(fraction * n - 1e-9)
    count = int(np.searchsorted(np.cumsum(lengths[order]), need)) + 1
    keep = np.sort(order[:count])
    return np.concatenate([np.arange(starts[k], starts[k] + lengths[k]) for k in keep])


def n_step_offline(offline, n_step, discount):
    """The raw dataset folded like the online ``ReplayBuffer`` folds its steps: row i becomes
    (s_i, a_i, sum_{k<m} gamma^k r_{i+k}, gamma^m (1 - terminal_{i+m-1}), s'_{i+m-1}), m = n or fewer where its
    trajectory ends first (a terminal: no bootstrap; a timeout or the data's end: bootstrap from the last s').
    Returns (obs, actions, returns, discounts, next_obs), float32 like the dataset."""
    cont = continues(offline)
    n = len(cont)
    rewards = np.asarray(offline.rewards, np.float64)
    ret, last = rewards.copy(), np.arange(n)
    alive, g = np.ones(n, bool), 1.0
    for _ in range(1, n_step):
        alive &= cont[last]                      # the window still continues past its last row
        g *= discount
        step = np.minimum(last + 1, n - 1)
        ret += np.where(alive, g * rewards[step], 0.0)
        last = np.where(alive, step, last)
    m = last - np.arange(n) + 1
    discounts = np.power(discount, m) * (1.0 - np.asarray(offline.terminals, np.float64)[last])
    dt = np.asarray(offline.observations).dtype
    return (np.asarray(offline.observations), np.asarray(offline.actions), ret.astype(dt), discounts.astype(dt),
            np.asarray(offline.next_observations)[last])


def offline_part(offline, obs_dim, act_dim, n_step, discount, rows=None):
    """A ``ReplayBuffer`` holding the n-step folded dataset (``rows``: only those rows; folding is done first,
    on whole trajectories)."""
    folded = n_step_offline(offline, n_step, discount)
    if rows is not None:
        folded = tuple(x[rows] for x in folded)
    buffer = ReplayBuffer(len(folded[2]), obs_dim, act_dim, n_step, discount)
    buffer.add_batch(*folded[:2], folded[2], folded[4], folded[3])
    return buffer


# ------------------------------------------------------------------------------------------------
# the prioritized buffer
# ------------------------------------------------------------------------------------------------
class SampledBatch(Batch):
    """A ``Batch`` that also says where it came from: ``indices`` (B,) slots of ``buffer`` (a
    ``PrioritizedBuffer``), and ``parts``: (offline, online) uniform Batches drawn with it (the density-ratio
    estimator's data, ``uniform_parts``) or None."""


class PrioritizedBuffer:
    """The offline transitions (slots 0..M-1, never overwritten) and the online ones (slots M..M+C-1, a ring
    ``ReplayBuffer`` with its own n-step folding and streams) under one ``SumTree``.

    offline: the read-only offline ``ReplayBuffer`` (``offline_part``); online: the one the loop writes to;
    offline_priority: every offline slot's first priority; first_max: the running maximum's start. A new online
    transition enters with the running maximum (Schaul et al. 2016: new transitions are replayed at least once
    soon), which only grows (``update_priorities``). ``uniform_parts``: also draw that many offline and online
    transitions uniformly with every ``sample`` (Off2OnRL's density-ratio batches), 0 for none.
    """

    def __init__(self, offline, online, offline_priority=1.0, first_max=1.0, uniform_parts=0):
        if len(offline) == 0:
            raise ValueError("PrioritizedBuffer needs a non-empty offline part")
        if offline_priority <= 0 or first_max <= 0:
            raise ValueError(f"priorities must be > 0, got offline_priority={offline_priority}, first_max={first_max}")
        self.offline, self.online, self.uniform_parts = offline, online, int(uniform_parts)
        self.n_step, self.discount = online.n_step, online.discount
        self.n_offline = len(offline)
        self.tree = SumTree(self.n_offline + online.capacity)
        self.tree.set(np.arange(self.n_offline), offline_priority)
        self.max_priority = float(first_max)

    def __len__(self):
        return self.n_offline + len(self.online)

    @property
    def total_added(self):
        return self.n_offline + self.online.total_added

    def _track(self, before):
        """Give the online slots written since ``total_added`` was ``before`` the running max priority."""
        new = np.arange(before, self.online.total_added) % self.online.capacity
        self.tree.set(self.n_offline + new, self.max_priority)

    def add(self, *args, **kwargs):
        before = self.online.total_added
        self.online.add(*args, **kwargs)
        self._track(before)

    def end_stream(self, stream="main"):
        before = self.online.total_added
        self.online.end_stream(stream)
        self._track(before)

    def _gather(self, slots):
        """The Batch at global ``slots`` (offline below M, online from M)."""
        on = slots >= self.n_offline
        i_off, i_on = np.where(on, 0, slots), np.where(on, slots - self.n_offline, 0)
        fields = []
        for name in ("obs", "actions", "rewards", "discounts", "next_obs"):
            a, b = getattr(self.offline, name)[i_off], getattr(self.online, name)[i_on]
            fields.append(np.where(on.reshape((-1,) + (1,) * (a.ndim - 1)), b, a))
        return fields

    def sample(self, batch_size, rng):
        """A ``SampledBatch`` of ``batch_size`` slots drawn proportionally to priority (stratified), then, with
        ``uniform_parts`` = K, K offline and K online slots uniformly (its ``parts``; None while no online
        transition is stored)."""
        slots = self.tree.sample(batch_size, rng)
        batch = SampledBatch(*self._gather(slots))
        batch.indices, batch.buffer, batch.parts = slots, self, None
        if self.uniform_parts and len(self.online):
            k = self.uniform_parts
            batch.parts = (Batch(*self._gather(rng.integers(0, self.n_offline, k))),
                           Batch(*self._gather(self.n_offline + rng.integers(0, len(self.online), k))))
        return batch

    def update_priorities(self, indices, priorities):
        """Write new priorities (> 0) at ``indices`` (a batch's slots); the running max follows them."""
        priorities = np.asarray(priorities, np.float64)
        if priorities.shape != np.shape(indices) or not (priorities > 0).all() or not np.isfinite(priorities).all():
            raise ValueError(f"update_priorities needs one finite priority > 0 per index ({np.shape(indices)}), "
                             f"got shape {priorities.shape}")
        self.tree.set(indices, priorities)
        self.max_priority = max(self.max_priority, float(priorities.max()))

    def state_dict(self):
        """The online part, every priority and the running max (the offline part is remade from the dataset)."""
        return {**{f"online/{k}": v for k, v in self.online.state_dict().items()},
                "priorities": self.tree.leaves.copy(), "max_priority": np.array([self.max_priority])}

    def load_state_dict(self, state):
        if state["priorities"].shape != self.tree.leaves.shape:
            raise ValueError(f"buffer checkpoint has {state['priorities'].shape[0]} priorities, this buffer "
                             f"{self.tree.capacity} slots: it was saved for another dataset or capacity")
        self.online.load_state_dict({k[len("online/"):]: v for k, v in state.items() if k.startswith("online/")})
        self.tree.load_leaves(state["priorities"])
        self.max_priority = float(state["max_priority"][0])
