"""A batch of transitions, the unit every update step consumes."""
from collections import namedtuple

import numpy as np

from gde_ref.nn.checks import check_array, check_batch, check_same_dtype

Batch = namedtuple("Batch", ["obs", "actions", "rewards", "discounts", "next_obs"])
Batch.__doc__ = """Transitions (s, a, r, s') of one batch of B rows.

obs, next_obs (B, obs_dim); actions (B, act_dim) float, or (B,) int for discrete actions;
rewards (B,); discounts (B,) = gamma^n (1 - terminal) of each (n-step) transition, so that the
bootstrapped target is rewards + discounts * V(next_obs) for any n."""

MCBatch = namedtuple("MCBatch", Batch._fields + ("mc_returns",))
MCBatch.__doc__ = """A Batch with each row's Monte-Carlo return-to-go G(s) of its state (B,), for Cal-QL (Nakamoto et
al., 2023; ``agents.calql``); in the rewards' units (scaled with them), -inf where it is not known yet (no bound).
Made by ``data.returns_to_go``; the other backbones take plain Batches."""


def check_batch_arrays(name, batch, obs_dim, act_dim, dtype=np.float32):
    """Validate a continuous-action Batch for an agent with these dimensions; returns it C-contiguous."""
    if not isinstance(batch, Batch):
        raise TypeError(f"{name} expects a gde_ref.data.Batch, got {type(batch).__name__}")
    obs = check_array(f"{name} batch.obs", batch.obs, ndim=2, dtype=dtype, shape=(None, obs_dim))
    n = obs.shape[0]
    out = Batch(obs,
                check_array(f"{name} batch.actions", batch.actions, ndim=2, dtype=dtype, shape=(n, act_dim)),
                check_array(f"{name} batch.rewards", batch.rewards, ndim=1, dtype=dtype, shape=(n,)),
                check_array(f"{name} batch.discounts", batch.discounts, ndim=1, dtype=dtype, shape=(n,)),
                check_array(f"{name} batch.next_obs", batch.next_obs, ndim=2, dtype=dtype, shape=(n, obs_dim)))
    check_batch(name, n, *zip(Batch._fields, out))
    check_same_dtype(name, *out)
    return out
