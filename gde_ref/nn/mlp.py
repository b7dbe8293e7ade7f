"""A small MLP whose parameters live in ONE contiguous vector, with named per-layer views.

>>> import numpy as np
>>> net = MLP([11, 256, 256, 3], np.random.default_rng(0))
>>> net.views["0.weight"].shape, net.views["2.bias"].shape
((11, 256), (3,))
>>> y = net.forward(np.zeros((4, 11), np.float32))        # (4, 3)
>>> grads, dx = net.backward(np.ones((4, 3), np.float32), input_grad=True)

Initialisation follows the reference IQL code (ikostrikov/implicit_q_learning, ``common.default_init``):
every weight matrix, the output layer's included, is orthogonal with gain sqrt(2); biases are zero.
"""
import numpy as np

from gde_ref.nn import kernels
from gde_ref.nn.checks import check_array

__all__ = ["MLP", "build_layout", "orthogonal", "Workspace"]


def build_layout(sizes):
    """Layout rows (n_in, n_out, weight_offset, bias_offset, activation_column) for widths ``sizes``.

    ``sizes = [n_in, h1, ..., n_out]``; returns (layout int64 (L, 5), number of parameters).
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"MLP sizes must be at least [n_in, n_out] of positive ints, got {sizes}")
    rows, offset, column = [], 0, 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        rows.append((n_in, n_out, offset, offset + n_in * n_out, column))
        offset += n_in * n_out + n_out
        column += n_out
    return np.array(rows, dtype=np.int64), offset


def orthogonal(rng, n_in, n_out, gain):
    """An (n_in, n_out) matrix with orthonormal rows or columns, times ``gain`` (Saxe et al., 2014).

    QR of a standard normal matrix, with the signs of R's diagonal folded into Q so that the result
    is uniformly distributed (as flax's ``orthogonal`` initialiser does).
    """
    a = rng.standard_normal((max(n_in, n_out), min(n_in, n_out)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if n_in < n_out:
        q = q.T
    return gain * q


class Workspace:
    """Scratch for one network and one batch size: activations, backward deltas, gradients, dx."""

    def __init__(self, layout, n_params, batch, dtype):
        widths = layout[:, kernels.N_OUT]
        max_width = int(max(widths.max(), layout[:, kernels.N_IN].max()))
        self.batch = batch
        self.acts = np.zeros(batch * int(widths.sum()), dtype)
        self.deltas = np.zeros(2 * batch * max_width, dtype)
        self.grads = np.zeros(n_params, dtype)
        self.dx = np.zeros((batch, int(layout[0, kernels.N_IN])), dtype)


class MLP:
    """Fully connected network: ReLU hidden layers, linear output, one flat parameter vector.

    Parameters
    ----------
    sizes : list of int, ``[n_in, hidden..., n_out]``.
    rng : numpy.random.Generator used for the initialisation (explicit, so runs are reproducible).
    dtype : float32 for training (default) or float64 (gradient checks).
    gain : the orthogonal initialisation's gain (sqrt(2), as IQL).
    extra : number of additional trailing parameters kept in the same vector (e.g. an actor's
        state-independent log-std), exposed as ``views["extra"]`` and initialised to zero.
    """

    def __init__(self, sizes, rng, dtype=np.float32, gain=np.sqrt(2.0), extra=0):
        self.sizes = [int(s) for s in sizes]
        self.layout, self.n_mlp_params = build_layout(self.sizes)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"MLP dtype must be float32 or float64, got {self.dtype}")
        self.n_extra = int(extra)
        self.params = np.zeros(self.n_mlp_params + self.n_extra, self.dtype)
        self.views = self.named_views(self.params)
        for k, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            self.views[f"{k}.weight"][:] = orthogonal(rng, n_in, n_out, gain)
        self._single = np.zeros(int(self.layout[:, kernels.N_OUT].sum()), self.dtype)
        self._workspaces = {}
        self._last_x = None

    # -- structure ---------------------------------------------------------------------------
    @property
    def n_in(self):
        return self.sizes[0]

    @property
    def n_out(self):
        return self.sizes[-1]

    @property
    def n_params(self):
        return self.params.size

    def named_views(self, flat):
        """Named per-layer views into any flat vector with this network's layout (params, grads, Adam m)."""
        out = {}
        for k, (n_in, n_out, w_off, b_off, _) in enumerate(self.layout):
            out[f"{k}.weight"] = flat[w_off:w_off + n_in * n_out].reshape(n_in, n_out)
            out[f"{k}.bias"] = flat[b_off:b_off + n_out]
        if self.n_extra:
            out["extra"] = flat[self.n_mlp_params:]
        return out

    def workspace(self, batch):
        """The (cached) scratch buffers for a batch of ``batch`` rows."""
        ws = self._workspaces.get(batch)
        if ws is None:
            ws = self._workspaces[batch] = Workspace(self.layout, self.n_params, batch, self.dtype)
        return ws

    # -- passes ------------------------------------------------------------------------------
    def _check_input(self, x):
        return check_array("MLP input x", x, ndim=2, dtype=self.dtype, shape=(None, self.n_in))

    def forward(self, x, params=None):
        """Batch forward: x (B, n_in) -> (B, n_out), a fresh array.

        ``params`` (a flat vector with this layout, e.g. a target copy) defaults to ``self.params``.
        ``backward`` differentiates the most recent forward: this keeps its own copies of x and params,
        so changing either afterwards (a finite-difference probe, an optimiser step) cannot corrupt it.
        """
        x = self._check_input(x)
        if params is None:
            params = self.params
        else:
            params = check_array("MLP params", params, ndim=1, dtype=self.dtype, shape=(self.n_params,))
        ws = self.workspace(x.shape[0])
        self._last_x, self._last_params = x.copy(), params.copy()
        out = kernels.mlp_forward(self._last_params, self.layout, self._last_x, ws.acts)
        return out.copy()

    def backward(self, d_out, input_grad=False, param_grads=True):
        """Backward pass of the last ``forward``: returns (dL/dparams flat copy or None, dL/dx or None)."""
        if self._last_x is None:
            raise RuntimeError("MLP.backward needs a forward pass first: call net.forward(x) before backward")
        x = self._last_x
        d_out = check_array("MLP d_out", d_out, ndim=2, dtype=self.dtype, shape=(x.shape[0], self.n_out))
        ws = self.workspace(x.shape[0])
        empty = ws.grads[:0]
        net = kernels.Net(self._last_params, self.layout, ws.grads, empty, empty, np.zeros(1, np.int64), ws.acts,
                          ws.deltas, ws.dx)
        kernels.mlp_backward(net, x, d_out, param_grads, input_grad)
        return (ws.grads.copy() if param_grads else None), (ws.dx.copy() if input_grad else None)

    def act(self, x):
        """Single-observation forward, x (n_in,) -> (n_out,), with no allocation.

        The result is a view into an internal buffer, valid until the next call.
        """
        if not isinstance(x, np.ndarray) or x.shape != (self.sizes[0],) or x.dtype != self.dtype:
            check_array("MLP.act observation x", x, ndim=1, dtype=self.dtype, shape=(self.n_in,))
        return kernels.mlp_forward_single(self.params, self.layout, x, self._single)

    # -- copies ------------------------------------------------------------------------------
    def copy(self):
        """A deep copy (same layout, own parameter vector and buffers), e.g. a target or a teacher."""
        twin = object.__new__(MLP)
        twin.__dict__.update(self.__dict__)
        twin.params = self.params.copy()
        twin.views = twin.named_views(twin.params)
        twin._single = np.zeros_like(self._single)
        twin._workspaces, twin._last_x = {}, None
        return twin
