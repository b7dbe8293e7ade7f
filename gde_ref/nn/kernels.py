"""Numba kernels for small multi-layer perceptrons: dense layers, ReLU, and whole-network passes.

Every function here is a pure function of arrays: it reads its inputs and writes into the output
arrays it is given; nothing is allocated in the single-observation path and nothing is global.
Matrix products go to BLAS through ``np.dot(a, b, out)``; the elementwise work is written as loops.

A network lives in ONE flat parameter vector. Its ``layout`` is an int64 array with one row per
layer::

    layout[k] = (n_in, n_out, weight_offset, bias_offset, activation_column)

Layer k's weight is ``params[weight_offset : weight_offset + n_in * n_out]`` viewed as (n_in, n_out)
(so the forward pass is ``x @ W + b``) and its bias is ``params[bias_offset : bias_offset + n_out]``.
``activation_column`` is the sum of the output widths of layers 0..k-1: layer k's output for a batch
of B rows is stored in the flat activation buffer at ``acts[B * column : B * (column + n_out)]``.

Set ``NUMBA_DISABLE_JIT=1`` to run every kernel as plain Python and step through it in a debugger.
"""
from collections import namedtuple

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise reductions; NaN/inf semantics are kept (no "nnan"/"ninf"), so a
# diverging network still shows up as NaN instead of being optimised into garbage.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def kernel(fn):
    """The one decorator for gde_ref kernels: compiled, cached on disk, numpy error model."""
    return njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)(fn)


def blas_threads(n):
    """A context in which the BLAS that the kernels' ``np.dot`` calls uses ``n`` threads (threadpoolctl).
    It loads that BLAS (scipy's, which Numba calls) first: a limit applies only to libraries already loaded."""
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_limits
    return threadpool_limits(n, "blas")


N_IN, N_OUT, W_OFFSET, B_OFFSET, ACT_COLUMN = 0, 1, 2, 3, 4

Net = namedtuple("Net", ["params", "layout", "grads", "adam_m", "adam_v", "adam_t", "acts", "deltas", "dx"])
Net.__doc__ = """What a kernel sees of one network: params (P,), layout (L, 5), grads (P,), adam_m/adam_v (P,),
adam_t (1,) int64, acts/deltas (flat scratch for one batch size), dx (B, n_in) input gradient. A target or a
teacher is a Net too, with the trained network's layout and empty gradient/Adam arrays (never optimised)."""


# ----------------------------------------------------------------------------------------------
# views into the flat vectors
# ----------------------------------------------------------------------------------------------
@kernel
def layer_weight(params, layout, k):
    """Layer k's weight matrix, a (n_in, n_out) view into the flat vector ``params``."""
    n_in, n_out, off = layout[k, N_IN], layout[k, N_OUT], layout[k, W_OFFSET]
    return params[off:off + n_in * n_out].reshape((n_in, n_out))


@kernel
def layer_bias(params, layout, k):
    """Layer k's bias, a (n_out,) view into the flat vector ``params``."""
    off = layout[k, B_OFFSET]
    return params[off:off + layout[k, N_OUT]]


@kernel
def layer_output(acts, layout, k, batch):
    """Layer k's output for ``batch`` rows, a (batch, n_out) view into the activation buffer."""
    col, n_out = layout[k, ACT_COLUMN], layout[k, N_OUT]
    return acts[batch * col:batch * (col + n_out)].reshape((batch, n_out))


# ----------------------------------------------------------------------------------------------
# one dense layer and the ReLU
# ----------------------------------------------------------------------------------------------
@kernel
def dense_forward(x, weight, bias, out, relu):
    """out = x W + b, then ReLU when ``relu``.   x (B, n_in), W (n_in, n_out), b (n_out,), out (B, n_out).

    The bias and the ReLU are applied in one pass over out.
    """
    np.dot(x, weight, out)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            z = out[i, j] + bias[j]
            out[i, j] = max(z, 0) if relu else z


@kernel
def dense_backward_params(x, delta, d_weight, d_bias):
    """dL/dW = x^T delta and dL/db = sum_i delta_i, where delta = dL/d(out) (B, n_out)."""
    np.dot(x.T, delta, d_weight)
    d_bias[:] = 0.0
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            d_bias[j] += delta[i, j]


@kernel
def dense_backward_input(delta, weight, dx):
    """dL/dx = delta W^T.   delta (B, n_out), W (n_in, n_out), dx (B, n_in).

    With a single output (a critic's or value's head) this is an outer product, which BLAS's gemm
    handles slowly (inner dimension 1); it is then a plain loop.
    """
    if weight.shape[1] == 1:
        for i in range(delta.shape[0]):
            d = delta[i, 0]
            for j in range(weight.shape[0]):
                dx[i, j] = d * weight[j, 0]
    else:
        np.dot(delta, weight.T, dx)


@kernel
def relu_inplace(z):
    """z <- max(z, 0), elementwise, in place (any 2-D shape)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            if z[i, j] < 0.0:
                z[i, j] = 0.0


@kernel
def relu_backward_inplace(delta, activated):
    """delta <- delta * 1[activated > 0]: ReLU's derivative, read from its output (in place)."""
    for i in range(delta.shape[0]):
        for j in range(delta.shape[1]):
            if activated[i, j] <= 0.0:
                delta[i, j] = 0.0


# ----------------------------------------------------------------------------------------------
# the whole network
# ----------------------------------------------------------------------------------------------
@kernel
def mlp_forward(params, layout, x, acts):
    """Batch forward pass: ReLU after every layer but the last (linear output).

    x (B, n_in) C-contiguous; acts: flat buffer of at least B * sum(widths) floats, which keeps
    every layer's output for the backward pass. Returns the (B, n_out) output, a view into acts.
    """
    batch = x.shape[0]
    n_layers = layout.shape[0]
    out = layer_output(acts, layout, 0, batch)
    dense_forward(x, layer_weight(params, layout, 0), layer_bias(params, layout, 0), out, n_layers > 1)
    for k in range(1, n_layers):
        h = out
        out = layer_output(acts, layout, k, batch)
        dense_forward(h, layer_weight(params, layout, k), layer_bias(params, layout, k), out, k < n_layers - 1)
    return out


@kernel
def mlp_backward(net, x, d_out, want_param_grads, want_input_grad):
    """Backward pass of ``mlp_forward(net.params, net.layout, x, net.acts)``, which must have just run.

    d_out (B, n_out) is dL/d(output). Writes dL/d(params) into the flat vector ``net.grads`` (same layout
    as params; overwritten, not accumulated) when ``want_param_grads``, and dL/dx into net.dx (B, n_in)
    when ``want_input_grad``. ``net.deltas``: scratch of at least 2 * B * max(widths) floats.
    """
    params, layout, acts, deltas = net.params, net.layout, net.acts, net.deltas
    batch = x.shape[0]
    n_layers = layout.shape[0]
    delta = d_out
    for k in range(n_layers - 1, -1, -1):
        h_in = x if k == 0 else layer_output(acts, layout, k - 1, batch)
        if want_param_grads:
            dense_backward_params(h_in, delta, layer_weight(net.grads, layout, k), layer_bias(net.grads, layout, k))
        if k > 0:
            n_in = layout[k, N_IN]
            start = (k % 2) * (deltas.shape[0] // 2)
            prev = deltas[start:start + batch * n_in].reshape((batch, n_in))
            dense_backward_input(delta, layer_weight(params, layout, k), prev)
            relu_backward_inplace(prev, h_in)
            delta = prev
        elif want_input_grad:
            dense_backward_input(delta, layer_weight(params, layout, 0), net.dx)


@kernel
def mlp_forward_single(params, layout, x, h):
    """Forward pass for ONE observation x (n_in,), without allocating.

    h: flat buffer of at least sum(widths) floats (one column of activations per layer). Returns the
    (n_out,) output as a view into h. Each layer is out = b + sum_i x_i W[i, :]: a loop over W's rows,
    each a contiguous run that vectorises; rows whose input is 0 (about half, after a ReLU) are skipped.
    This path is bound by reading the weights (about 270 KB for a 2x256 actor) from the CPU cache.
    """
    n_layers = layout.shape[0]
    src = x
    out = h[0:1]
    for k in range(n_layers):
        n_in, n_out = layout[k, N_IN], layout[k, N_OUT]
        w_off, b_off, col = layout[k, W_OFFSET], layout[k, B_OFFSET], layout[k, ACT_COLUMN]
        out = h[col:col + n_out]
        out[:] = params[b_off:b_off + n_out]
        for i in range(n_in):
            xi = src[i]
            if xi == 0.0:
                continue
            row = params[w_off + i * n_out:w_off + (i + 1) * n_out]
            for j in range(n_out):
                out[j] += xi * row[j]
        if k < n_layers - 1:
            for j in range(n_out):
                if out[j] < 0.0:
                    out[j] = 0.0
        src = out
    return out
