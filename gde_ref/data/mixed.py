"""Replay from two buffers in a fixed proportion: the offline data and the online samples kept apart.

Several methods sample each batch partly from the offline dataset and partly from the online samples, in a
fixed proportion rather than uniformly over their union: PEX (Zhang et al. 2023: 50/50), JSRL (Uchendu et
al. 2023: 25% offline / 75% online), Cal-QL (Nakamoto et al. 2023: 50/50). ``MixedBuffer`` is that: the
online part is an ordinary ``ReplayBuffer`` (the loop adds to it), the offline part a read-only
``ReplayBuffer`` filled once. With ``offline_fraction`` f, a batch of B holds round(f B) offline
transitions first, then B - round(f B) online ones; while the online part is empty the whole batch is
offline.
"""
import numpy as np

from gde_ref.data.buffer import ReplayBuffer


def offline_replay(offline, obs_dim, act_dim, discount, extra=0):
    """A one-step ``ReplayBuffer`` holding every transition of the raw dataset ``offline`` (observations,
    actions, rewards, next_observations, terminals), stored raw with discount gamma (1 - terminal); ``extra``:
    room for that many more transitions after them."""
    n = len(offline.rewards)
    buffer = ReplayBuffer(n + extra, obs_dim, act_dim, 1, discount)
    discounts = (discount * (1.0 - np.asarray(offline.terminals, np.float32))).astype(np.float32)
    buffer.add_batch(offline.observations, offline.actions, offline.rewards, offline.next_observations, discounts)
    return buffer


class MixedBuffer:
    """Batches of ``offline_fraction`` offline and 1 - ``offline_fraction`` online transitions.

    offline: a ``ReplayBuffer`` never written to after it is made (``offline_replay``); online: the buffer the
    loop writes to (``add``, ``end_stream`` go to it; ``len`` counts both)."""

    def __init__(self, offline, online, offline_fraction):
        if not 0.0 <= offline_fraction <= 1.0:
            raise ValueError(f"offline_fraction must be in [0, 1], got {offline_fraction}")
        if len(offline) == 0:
            raise ValueError("MixedBuffer needs a non-empty offline buffer")
        self.offline, self.online, self.offline_fraction = offline, online, float(offline_fraction)
        self.n_step, self.discount = online.n_step, online.discount

    def __len__(self):
        return len(self.offline) + len(self.online)

    def add(self, *args, **kwargs):
        self.online.add(*args, **kwargs)

    def end_stream(self, stream="main"):
        self.online.end_stream(stream)

    def split(self, batch_size):
        """(offline, online) counts of a batch of ``batch_size`` now."""
        n_off = batch_size if len(self.online) == 0 else int(round(self.offline_fraction * batch_size))
        return n_off, batch_size - n_off

    def sample(self, batch_size, rng):
        """The offline part's round(f B) transitions, then the online part's (each uniform with replacement), in
        the parts' batch type (a Batch; an MCBatch when both are ``data.returns_to_go.MCReplayBuffer``s)."""
        n_off, n_on = self.split(batch_size)
        parts = [b.sample(n, rng) for b, n in ((self.offline, n_off), (self.online, n_on)) if n > 0]
        return parts[0] if len(parts) == 1 else type(parts[0])(*(np.concatenate(x) for x in zip(*parts)))

    def state_dict(self):
        """The online part (the offline part is remade from the dataset, the same every time)."""
        return {f"online/{k}": v for k, v in self.online.state_dict().items()}

    def load_state_dict(self, state):
        self.online.load_state_dict({k[len("online/"):]: v for k, v in state.items() if k.startswith("online/")})
