"""What an update kernel sees of one network: a ``Net`` bundle of arrays.

A compiled update step (IQL, GDE, SAC, DQN...) touches several networks, each with its parameter
vector, Adam state and scratch buffers. Passing them as one named tuple per network keeps the kernels'
signatures short and readable (``q1.params``, ``actor.grads``) while staying plain arrays for Numba.

A target network or a teacher is a ``Net`` too: its own ``params`` and ``acts``, the trained
network's ``layout``, and empty gradient/Adam arrays (it is never optimised).
"""
import numpy as np

from gde_ref.nn import kernels
from gde_ref.nn.adam import ADAM_DEFAULTS, adam_kernel, polyak_kernel
from gde_ref.nn.kernels import Net, kernel

__all__ = ["Net", "trained_net", "frozen_net", "scalar_net", "n_mlp_params", "net_forward", "net_backward",
           "net_adam", "net_polyak", "concat_columns"]


def trained_net(mlp, adam, batch):
    """The bundle of a trained network ``mlp`` (gde_ref.nn.MLP) with its ``AdamState``, for ``batch`` rows."""
    ws = mlp.workspace(batch)
    return Net(mlp.params, mlp.layout, ws.grads, adam.m, adam.v, adam.t, ws.acts, ws.deltas, ws.dx)


def frozen_net(params, mlp, batch, scratch=None):
    """The bundle of a never-optimised copy (target, teacher) with parameters ``params`` and mlp's layout.

    ``scratch``: a Workspace to use for its activations (defaults to a new one of its own).
    """
    ws = scratch if scratch is not None else type(mlp.workspace(batch))(mlp.layout, 0, batch, mlp.dtype)
    empty = np.zeros(0, mlp.dtype)
    return Net(params, mlp.layout, empty, empty, empty, np.zeros(1, np.int64), ws.acts, ws.deltas, ws.dx)


def scalar_net(value, grad, adam):
    """A trained parameter vector without layers (SAC's log alpha) as a Net: its ``grads`` and Adam state."""
    empty = np.zeros(0, value.dtype)
    return Net(value, np.zeros((0, 5), np.int64), grad, adam.m, adam.v, adam.t, empty, empty,
               np.zeros((0, 0), value.dtype))


@kernel
def n_mlp_params(layout):
    """Number of parameters of the MLP part; anything after it in the vector is 'extra' (an actor's log-std)."""
    last = layout.shape[0] - 1
    return layout[last, kernels.B_OFFSET] + layout[last, kernels.N_OUT]


@kernel
def net_forward(net, x):
    """Batch forward of ``net`` on x (B, n_in); returns the (B, n_out) output (a view into net.acts)."""
    return kernels.mlp_forward(net.params, net.layout, x, net.acts)


@kernel
def net_backward(net, x, d_out, param_grads, input_grad):
    """Backward of the last ``net_forward(net, x)``: fills net.grads (MLP part) and/or net.dx."""
    kernels.mlp_backward(net, x, d_out, param_grads, input_grad)


@kernel
def net_adam(net, lr):
    """One Adam step of the whole parameter vector (MLP and extras) with the gradients in net.grads."""
    adam_kernel(net.params, net.grads, net.adam_m, net.adam_v, net.adam_t, lr, ADAM_DEFAULTS)


@kernel
def net_polyak(target, source, rate):
    """target.params <- (1 - rate) target.params + rate source.params."""
    polyak_kernel(target.params, source.params, rate)


@kernel
def concat_columns(a, b, out):
    """out = [a, b] along columns: a (B, n), b (B, m), out (B, n + m). Builds critic inputs (s, a)."""
    n = a.shape[1]
    for i in range(a.shape[0]):
        for j in range(n):
            out[i, j] = a[i, j]
        for j in range(b.shape[1]):
            out[i, n + j] = b[i, j]
