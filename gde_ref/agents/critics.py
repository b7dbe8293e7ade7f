"""Twin critics (Fujimoto et al., 2018): the critic pieces every continuous-action backbone shares.

IQL, SAC, TD3+BC and CQL each keep two critics Q1, Q2 on [s, a] and their Polyak-averaged targets. What
they share is written once here, as kernels over a ``TwinCritics`` record:

    twin_min(q1, q2, x)                 min(Q1, Q2)(x) and both outputs (online or target twins)
    twin_min_action_gradient(...)       dL/da of a loss on min(Q1, Q2)(s, a): through the smaller twin
    twin_forward(critics, x)            Q1(x), Q2(x) before a regression step
    twin_descent_step(critics, x, ...)  backward of dL/dQ1, dL/dQ2 and one Adam step of each twin
    twin_regression_step(critics, x, y) both twins regress a target y (Eq. 1): SAC's and TD3+BC's critic step
    twin_polyak(critics, rate)          the soft target update

A backbone's critic loss (IQL's Eq. 3, SAC's soft target, CQL's penalty) sits between ``twin_forward`` and
``twin_descent_step``; the loss functions themselves live in ``gde_ref.losses``.
"""
from collections import namedtuple

import numpy as np

from gde_ref.losses.equations import td_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import frozen_net, net_adam, net_backward, net_forward, net_polyak, trained_net
from gde_ref.nn.kernels import kernel

TwinCritics = namedtuple("TwinCritics", ["q1", "q2", "q1_target", "q2_target", "inputs"])
TwinCritics.__doc__ = """The twin critics as the kernels see them: q1, q2 (trained Nets), q1_target,
q2_target (frozen Nets) and ``inputs``, a (B, obs_dim + act_dim) scratch array for the critics' input [s, a]."""


@kernel
def twin_min(q1, q2, x):
    """(min(Q1(x), Q2(x)) as a (B,) array, Q1(x), Q2(x)): the twin-critic minimum, and the two outputs
    (views into the critics' activations) that ``twin_min_action_gradient`` needs to route gradients."""
    q1_out = net_forward(q1, x)
    q2_out = net_forward(q2, x)
    out = np.empty(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        out[i] = min(q1_out[i, 0], q2_out[i, 0])
    return out, q1_out, q2_out


@kernel
def twin_min_action_gradient(q1, q2, x, q1_out, q2_out, d_q_min, d_action):
    """Backward of min(Q1, Q2)(s, a) to the action, after ``twin_min(q1, q2, x)`` with x = [s, a].

    The min sends dL/dmin_i to the smaller twin of sample i only; both critics' input gradients are taken
    (no parameter gradients) and their action columns (the last d_action.shape[1] columns of x) are ADDED
    to d_action (B, A).
    """
    n, n_act = d_action.shape
    n_obs = x.shape[1] - n_act
    d_q1, d_q2 = np.zeros((n, 1), x.dtype), np.zeros((n, 1), x.dtype)
    for i in range(n):
        if q1_out[i, 0] <= q2_out[i, 0]:
            d_q1[i, 0] = d_q_min[i]
        else:
            d_q2[i, 0] = d_q_min[i]
    net_backward(q1, x, d_q1, False, True)
    net_backward(q2, x, d_q2, False, True)
    for i in range(n):
        for j in range(n_act):
            d_action[i, j] += q1.dx[i, n_obs + j] + q2.dx[i, n_obs + j]


@kernel
def twin_forward(critics, x):
    """(Q1(x), Q2(x)) of the trained twins, each (B,): views into their activations, valid until their next pass."""
    return net_forward(critics.q1, x)[:, 0], net_forward(critics.q2, x)[:, 0]


@kernel
def twin_descent_step(critics, x, d_q1, d_q2, lr):
    """One Adam step of each twin, after ``twin_forward(critics, x)``: d_q1, d_q2 (B, 1) are dL/dQ1, dL/dQ2."""
    net_backward(critics.q1, x, d_q1, True, False)
    net_adam(critics.q1, lr)
    net_backward(critics.q2, x, d_q2, True, False)
    net_adam(critics.q2, lr)


@kernel
def twin_regression_step(critics, x, y, lr):
    """Eq. 1 for each twin: one Adam step of Q_k on mean_i (Q_k(x_i) - y_i)^2, y (B,) a fixed target.
    Returns (the sum of the two losses, mean Q1(x) before the step)."""
    n = x.shape[0]
    q1_out, q2_out = twin_forward(critics, x)
    d_q1, d_q2 = np.empty((n, 1), x.dtype), np.empty((n, 1), x.dtype)
    loss = td_loss_kernel(q1_out, y, d_q1[:, 0])
    loss += td_loss_kernel(q2_out, y, d_q2[:, 0])
    q_mean = q1_out.mean()
    twin_descent_step(critics, x, d_q1, d_q2, lr)
    return loss, q_mean


@kernel
def twin_polyak(critics, rate):
    """Soft target update of both twins: Q_k' <- (1 - rate) Q_k' + rate Q_k."""
    net_polyak(critics.q1_target, critics.q1, rate)
    net_polyak(critics.q2_target, critics.q2, rate)


class Twins:
    """Two critics [obs + act, *hidden, 1], their target copies and Adam states, and their kernel record.

    ``rng`` draws Q1's then Q2's initial weights; the targets start as copies.
    """

    def __init__(self, obs_dim, act_dim, hidden, rng, dtype):
        self.q1 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.q2 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.q1_target, self.q2_target = self.q1.params.copy(), self.q2.params.copy()
        self.adam = {"q1": AdamState(self.q1.n_params, dtype), "q2": AdamState(self.q2.n_params, dtype)}
        self._records = {}

    def record(self, batch_size):
        """The ``TwinCritics`` record for a batch size (cached: the same arrays every step)."""
        r = self._records.get(batch_size)
        if r is None:
            r = self._records[batch_size] = TwinCritics(
                trained_net(self.q1, self.adam["q1"], batch_size), trained_net(self.q2, self.adam["q2"], batch_size),
                frozen_net(self.q1_target, self.q1, batch_size), frozen_net(self.q2_target, self.q2, batch_size),
                np.zeros((batch_size, self.q1.n_in), self.q1.dtype))
        return r

    def state(self):
        """Parameters, targets and Adam states by name (by reference)."""
        out = {"q1": self.q1.params, "q2": self.q2.params, "q1_target": self.q1_target, "q2_target": self.q2_target}
        for name, adam in self.adam.items():
            out.update({f"adam/{name}/m": adam.m, f"adam/{name}/v": adam.v, f"adam/{name}/t": adam.t})
        return out

    def q_min(self, obs, actions):
        """min(Q1, Q2)(s, a) for a batch, with the current critics (no gradient)."""
        x = np.concatenate([obs, actions], axis=1)
        return np.minimum(self.q1.forward(x), self.q2.forward(x))[:, 0]
