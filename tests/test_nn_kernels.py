"""Tests of the engine's network half: dense/ReLU kernels, whole-MLP passes, the MLP class, Adam, Polyak.

Every Numba kernel is compared with a slow NumPy version written here, in float32 (loose tolerance)
and float64 (tight); every gradient is also checked against float64 central differences.
"""
import numpy as np
import pytest

from gde_ref.nn import kernels
from gde_ref.nn.adam import AdamState, adam_kernel, adam_step, polyak_kernel, polyak_update
from gde_ref.nn.mlp import MLP, Workspace, build_layout, orthogonal
from gradcheck import assert_grad_close

DTYPES = [np.float32, np.float64]
# kernel vs. NumPy: float32 sums differ in the order of accumulation, float64 to rounding only.
TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
# 1, 2 and 3 layers, odd widths.
SIZES = [[4, 3], [5, 7, 3], [5, 7, 6, 3]]
SIZE_IDS = ["1-layer", "2-layer", "3-layer"]
BATCH = 6


# ------------------------------------------------------------------------------------------------
# helpers: networks and slow NumPy references
# ------------------------------------------------------------------------------------------------
def make_net(sizes, dtype=np.float64, seed=0, extra=0):
    """An MLP with random (non-zero) biases, so every term of forward and backward matters."""
    rng = np.random.default_rng(seed)
    net = MLP(sizes, rng, dtype=dtype, extra=extra)
    for k, n_out in enumerate(sizes[1:]):
        net.views[f"{k}.bias"][:] = 0.1 * rng.standard_normal(n_out)
    return net


def random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def ref_forward(net, x, params=None):
    """Slow forward through the named views: ``np.maximum(h @ W + b, 0)`` per hidden layer, linear output.

    Returns (output, [input of layer 0, input of layer 1, ...]).
    """
    views = net.named_views(net.params if params is None else params)
    n_layers = len(net.sizes) - 1
    h, inputs = x, []
    for k in range(n_layers):
        inputs.append(h)
        z = h @ views[f"{k}.weight"] + views[f"{k}.bias"]
        h = np.maximum(z, 0) if k < n_layers - 1 else z
    return h, inputs


def ref_backward(net, x, d_out, params=None):
    """Slow backward: dW_k = h_k^T delta, db_k = sum_rows delta, delta <- (delta W_k^T) * 1[h_k > 0].

    Returns (flat parameter gradient, input gradient).
    """
    params = net.params if params is None else params
    _, inputs = ref_forward(net, x, params)
    views = net.named_views(params)
    grads = np.zeros_like(params)
    grad_views = net.named_views(grads)
    delta = d_out
    for k in reversed(range(len(net.sizes) - 1)):
        grad_views[f"{k}.weight"][:] = inputs[k].T @ delta
        grad_views[f"{k}.bias"][:] = delta.sum(axis=0)
        delta = delta @ views[f"{k}.weight"].T
        if k > 0:
            delta = delta * (inputs[k] > 0)
    return grads, delta


def assert_hidden_units_alive(net, x):
    """Each hidden layer has both active and inactive units on x (else a gradient check is vacuous)."""
    _, inputs = ref_forward(net, x)
    for k, h in enumerate(inputs[1:]):
        active = np.mean(h > 0)
        assert 0.0 < active < 1.0, f"hidden layer {k}: fraction of active units {active}"


# ------------------------------------------------------------------------------------------------
# views into flat vectors
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_weight_and_bias_are_views_at_layout_offsets(dtype):
    """layer_weight/layer_bias return (n_in, n_out)/(n_out,) views of params at the layout's offsets."""
    layout, n_params = build_layout([5, 7, 6, 3])
    params = np.arange(n_params, dtype=dtype)
    for k, (n_in, n_out, w_off, b_off, _) in enumerate(layout):
        w = kernels.layer_weight(params, layout, k)
        b = kernels.layer_bias(params, layout, k)
        np.testing.assert_array_equal(w, params[w_off:w_off + n_in * n_out].reshape(n_in, n_out))
        np.testing.assert_array_equal(b, params[b_off:b_off + n_out])
        w[n_in - 1, n_out - 1] = -1.0
        b[0] = -2.0
        assert params[w_off + n_in * n_out - 1] == -1.0
        assert params[b_off] == -2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_output_is_view_at_activation_column(dtype):
    """layer_output(acts, layout, k, B) is the (B, n_out) block starting at B * activation_column."""
    layout, _ = build_layout([5, 7, 6, 3])
    batch = 4
    acts = np.arange(batch * (7 + 6 + 3), dtype=dtype)
    for k, (_, n_out, _, _, col) in enumerate(layout):
        out = kernels.layer_output(acts, layout, k, batch)
        np.testing.assert_array_equal(out, acts[batch * col:batch * (col + n_out)].reshape(batch, n_out))
        out[0, 0] = -1.0
        assert acts[batch * col] == -1.0


# ------------------------------------------------------------------------------------------------
# dense layer and ReLU kernels
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_matches_numpy(dtype, relu):
    """dense_forward writes x @ W + b (then max(., 0) with relu) into out, overwriting what was there."""
    rng = np.random.default_rng(1)
    x, w, b = random(rng, (BATCH, 5), dtype), random(rng, (5, 7), dtype), random(rng, 7, dtype)
    out = np.full((BATCH, 7), 123.0, dtype)
    kernels.dense_forward(x, w, b, out, relu)
    want = np.maximum(x @ w + b, 0) if relu else x @ w + b
    assert (want < 0).any() != relu, "the test data must contain negative pre-activations"
    np.testing.assert_allclose(out, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_params_matches_numpy(dtype):
    """dense_backward_params writes x^T delta and the column sums of delta (overwriting, not adding)."""
    rng = np.random.default_rng(2)
    x, delta = random(rng, (BATCH, 5), dtype), random(rng, (BATCH, 7), dtype)
    d_w, d_b = np.full((5, 7), 123.0, dtype), np.full(7, 123.0, dtype)
    kernels.dense_backward_params(x, delta, d_w, d_b)
    np.testing.assert_allclose(d_w, x.T @ delta, **TOL[dtype])
    np.testing.assert_allclose(d_b, delta.sum(axis=0), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_out", [7, 1])
def test_dense_backward_input_matches_numpy(dtype, n_out):
    """dense_backward_input writes delta @ W^T (n_out = 1 takes the outer-product loop instead of BLAS)."""
    rng = np.random.default_rng(3)
    delta, w = random(rng, (BATCH, n_out), dtype), random(rng, (5, n_out), dtype)
    dx = np.full((BATCH, 5), 123.0, dtype)
    kernels.dense_backward_input(delta, w, dx)
    np.testing.assert_allclose(dx, delta @ w.T, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_inplace_matches_numpy(dtype):
    """relu_inplace replaces z by max(z, 0) in place."""
    z = random(np.random.default_rng(4), (BATCH, 7), dtype)
    expected = np.maximum(z, 0)
    kernels.relu_inplace(z)
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_inplace_matches_numpy(dtype):
    """relu_backward_inplace zeroes delta where the ReLU output is <= 0, and keeps it elsewhere."""
    rng = np.random.default_rng(5)
    activated = np.maximum(random(rng, (BATCH, 7), dtype), 0)
    delta = random(rng, (BATCH, 7), dtype)
    expected = delta * (activated > 0)
    kernels.relu_backward_inplace(delta, activated)
    np.testing.assert_array_equal(delta, expected)


def test_dense_kernels_gradients_match_central_differences():
    """For L = sum(c * (x W + b)), dense_backward_* give dL/dW, dL/db and dL/dx (float64)."""
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((BATCH, 5)), rng.standard_normal((5, 7)), rng.standard_normal(7)
    c = rng.standard_normal((BATCH, 7))
    out = np.empty((BATCH, 7))

    def loss():
        kernels.dense_forward(x, w, b, out, False)
        return np.sum(c * out)

    d_w, d_b, d_x = np.empty_like(w), np.empty_like(b), np.empty_like(x)
    kernels.dense_backward_params(x, c, d_w, d_b)
    kernels.dense_backward_input(c, w, d_x)
    assert_grad_close(loss, w, d_w)
    assert_grad_close(loss, b, d_b)
    assert_grad_close(loss, x, d_x)


# ------------------------------------------------------------------------------------------------
# whole-network kernels
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_forward_kernel_matches_numpy(dtype, sizes):
    """mlp_forward returns the output as a view into acts, and acts holds every layer's (ReLU'd) output."""
    net = make_net(sizes, dtype)
    x = random(np.random.default_rng(7), (BATCH, sizes[0]), dtype)
    ws = Workspace(net.layout, net.n_params, BATCH, dtype)
    out = kernels.mlp_forward(net.params, net.layout, x, ws.acts)
    expected, inputs = ref_forward(net, x)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    assert np.shares_memory(out, ws.acts)
    for k, hidden in enumerate(inputs[1:]):
        np.testing.assert_allclose(kernels.layer_output(ws.acts, net.layout, k, BATCH), hidden, **TOL[dtype])


@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_forward_matches_numpy(dtype, sizes):
    """MLP.forward equals the per-layer NumPy forward through the named views."""
    net = make_net(sizes, dtype)
    x = random(np.random.default_rng(8), (BATCH, sizes[0]), dtype)
    y = net.forward(x)
    assert y.shape == (BATCH, sizes[-1]) and y.dtype == dtype
    np.testing.assert_allclose(y, ref_forward(net, x)[0], **TOL[dtype])


@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_backward_matches_numpy(dtype, sizes):
    """MLP.backward's parameter and input gradients equal the explicit per-layer backward formulas."""
    net = make_net(sizes, dtype)
    rng = np.random.default_rng(9)
    x, d_out = random(rng, (BATCH, sizes[0]), dtype), random(rng, (BATCH, sizes[-1]), dtype)
    net.forward(x)
    grads, dx = net.backward(d_out, input_grad=True)
    ref_grads, ref_dx = ref_backward(net, x, d_out)
    np.testing.assert_allclose(grads, ref_grads, **TOL[dtype])
    np.testing.assert_allclose(dx, ref_dx, **TOL[dtype])


@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
def test_mlp_param_grad_matches_central_differences(sizes):
    """dL/dparams from MLP.backward matches central differences for L = sum(c * net(x)) (float64)."""
    net = make_net(sizes)
    rng = np.random.default_rng(10)
    x, c = rng.standard_normal((BATCH, sizes[0])), rng.standard_normal((BATCH, sizes[-1]))
    assert_hidden_units_alive(net, x)
    net.forward(x)
    grads, _ = net.backward(c)
    assert_grad_close(lambda: np.sum(c * net.forward(x)), net.params, grads)


@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
def test_mlp_input_grad_matches_central_differences(sizes):
    """dL/dx from MLP.backward(input_grad=True) matches central differences (float64)."""
    net = make_net(sizes)
    rng = np.random.default_rng(11)
    x, c = rng.standard_normal((BATCH, sizes[0])), rng.standard_normal((BATCH, sizes[-1]))
    assert_hidden_units_alive(net, x)
    net.forward(x)
    _, dx = net.backward(c, input_grad=True, param_grads=False)
    assert_grad_close(lambda: np.sum(c * net.forward(x)), x, dx)


@pytest.mark.parametrize("want_params, want_input", [(True, True), (True, False), (False, True), (False, False)])
def test_mlp_backward_kernel_flags_leave_unwanted_outputs_untouched(want_params, want_input):
    """mlp_backward writes grads only if want_param_grads and dx only if want_input_grad."""
    net = make_net([5, 7, 6, 3])
    rng = np.random.default_rng(12)
    x, d_out = rng.standard_normal((BATCH, 5)), rng.standard_normal((BATCH, 3))
    ws = Workspace(net.layout, net.n_params, BATCH, np.float64)
    ws.grads[:], ws.dx[:] = 123.0, 456.0
    kernels.mlp_forward(net.params, net.layout, x, ws.acts)
    empty = np.zeros(0)
    bundle = kernels.Net(net.params, net.layout, ws.grads, empty, empty, np.zeros(1, np.int64), ws.acts, ws.deltas,
                         ws.dx)
    kernels.mlp_backward(bundle, x, d_out, want_params, want_input)
    ref_grads, ref_dx = ref_backward(net, x, d_out)
    if want_params:
        np.testing.assert_allclose(ws.grads, ref_grads, **TOL[np.float64])
    else:
        assert np.all(ws.grads == 123.0)
    if want_input:
        np.testing.assert_allclose(ws.dx, ref_dx, **TOL[np.float64])
    else:
        assert np.all(ws.dx == 456.0)


def test_mlp_backward_returns_none_for_unrequested_gradients():
    """MLP.backward returns None in place of a gradient that was not asked for."""
    net = make_net([5, 7, 3])
    rng = np.random.default_rng(13)
    net.forward(rng.standard_normal((BATCH, 5)))
    d_out = rng.standard_normal((BATCH, 3))
    grads, dx = net.backward(d_out)
    assert grads.shape == (net.n_params,) and dx is None
    grads, dx = net.backward(d_out, input_grad=True, param_grads=False)
    assert grads is None and dx.shape == (BATCH, 5)


def test_mlp_backward_overwrites_instead_of_accumulating():
    """Two backward calls after one forward give the same gradients (grads are overwritten)."""
    net = make_net([5, 7, 6, 3])
    rng = np.random.default_rng(14)
    net.forward(rng.standard_normal((BATCH, 5)))
    d_out = rng.standard_normal((BATCH, 3))
    first = net.backward(d_out, input_grad=True)
    second = net.backward(d_out, input_grad=True)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_forward_and_backward_with_explicit_params_use_those_params():
    """forward(x, params=other) computes with ``other`` (e.g. a target vector), and so does backward."""
    net = make_net([5, 7, 6, 3])
    other = make_net([5, 7, 6, 3], seed=1).params
    rng = np.random.default_rng(15)
    x, d_out = rng.standard_normal((BATCH, 5)), rng.standard_normal((BATCH, 3))
    y = net.forward(x, params=other)
    np.testing.assert_allclose(y, ref_forward(net, x, other)[0], **TOL[np.float64])
    grads, dx = net.backward(d_out, input_grad=True)
    ref_grads, ref_dx = ref_backward(net, x, d_out, other)
    np.testing.assert_allclose(grads, ref_grads, **TOL[np.float64])
    np.testing.assert_allclose(dx, ref_dx, **TOL[np.float64])


# ------------------------------------------------------------------------------------------------
# single-observation path
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_forward_single_matches_batch_rows(dtype, sizes):
    """mlp_forward_single(x[i]) equals row i of the batch forward."""
    net = make_net(sizes, dtype)
    x = random(np.random.default_rng(16), (BATCH, sizes[0]), dtype)
    batch_out = net.forward(x)
    h = np.zeros(sum(sizes[1:]), dtype)
    for i in range(BATCH):
        out = kernels.mlp_forward_single(net.params, net.layout, x[i].copy(), h)
        np.testing.assert_allclose(out, batch_out[i], **TOL[dtype])


@pytest.mark.parametrize("sizes", SIZES, ids=SIZE_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_act_matches_batch_forward_rows(dtype, sizes):
    """MLP.act(x[i]) equals net.forward(x)[i] for every row."""
    net = make_net(sizes, dtype)
    x = random(np.random.default_rng(17), (BATCH, sizes[0]), dtype)
    batch_out = net.forward(x)
    for i in range(BATCH):
        out = net.act(x[i])
        assert out.shape == (sizes[-1],) and out.dtype == dtype
        np.testing.assert_allclose(out, batch_out[i], **TOL[dtype])


def test_act_reuses_one_internal_buffer():
    """Two act calls return views of the same memory: the first result is overwritten by the second."""
    net = make_net([5, 7, 3], np.float32)
    rng = np.random.default_rng(18)
    x0, x1 = random(rng, 5, np.float32), random(rng, 5, np.float32)
    a0 = net.act(x0)
    first_value = a0.copy()
    a1 = net.act(x1)
    assert np.shares_memory(a0, a1)
    assert a0.ctypes.data == a1.ctypes.data
    assert not np.array_equal(first_value, a1), "inputs chosen to give different outputs"
    np.testing.assert_array_equal(a0, a1)


def test_float32_forward_matches_float64_forward():
    """A float32 network computes the float64 network's output (same parameters) to ~1e-4 relative."""
    net64 = make_net([17, 64, 64, 6], np.float64)
    net32 = MLP([17, 64, 64, 6], np.random.default_rng(0), dtype=np.float32)
    net32.params[:] = net64.params
    x = np.random.default_rng(19).standard_normal((32, 17))
    y64 = net64.forward(x)
    y32 = net32.forward(x.astype(np.float32))
    scale = np.max(np.abs(y64))
    assert np.max(np.abs(y32 - y64)) <= 1e-4 * scale
    np.testing.assert_allclose(net32.act(x[0].astype(np.float32)), y64[0], rtol=1e-4, atol=1e-4 * scale)


# ------------------------------------------------------------------------------------------------
# MLP structure: initialisation, layout, views, copy
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_in, n_out", [(3, 8), (8, 3), (6, 6), (1, 5), (5, 1)])
def test_orthogonal_returns_gain_times_orthonormal_rows_or_columns(n_in, n_out):
    """orthogonal(): W W^T = gain^2 I if n_in <= n_out, else W^T W = gain^2 I."""
    gain = 1.7
    w = orthogonal(np.random.default_rng(20), n_in, n_out, gain)
    assert w.shape == (n_in, n_out)
    gram = w @ w.T if n_in <= n_out else w.T @ w
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(n_in, n_out)), atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mlp_init_is_orthogonal_with_zero_biases_and_extra(dtype):
    """MLP init: every weight is sqrt(2)-scaled orthogonal, every bias zero, extra parameters zero."""
    sizes = [5, 9, 9, 4]
    net = MLP(sizes, np.random.default_rng(21), dtype=dtype, extra=3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = net.views[f"{k}.weight"].astype(np.float64)
        gram = w @ w.T if n_in <= n_out else w.T @ w
        np.testing.assert_allclose(gram, 2.0 * np.eye(min(n_in, n_out)), atol=tol)
        assert np.all(net.views[f"{k}.bias"] == 0)
    assert net.views["extra"].shape == (3,) and np.all(net.views["extra"] == 0)
    assert net.params.dtype == dtype


def test_same_seed_gives_identical_params_and_different_seed_differs():
    """Initialisation is a function of the Generator: same seed -> same vector, other seed -> other."""
    a = MLP([5, 7, 3], np.random.default_rng(42))
    b = MLP([5, 7, 3], np.random.default_rng(42))
    c = MLP([5, 7, 3], np.random.default_rng(43))
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)


def test_named_views_write_through_to_params():
    """Writing into net.views[...] changes net.params, and vice versa."""
    net = MLP([5, 7, 3], np.random.default_rng(22), extra=2)
    net.views["0.weight"][1, 2] = 9.0
    assert net.params[1 * 7 + 2] == 9.0
    net.views["1.bias"][:] = 4.0
    np.testing.assert_array_equal(net.params[5 * 7 + 7 + 7 * 3:5 * 7 + 7 + 7 * 3 + 3], 4.0)
    net.views["extra"][:] = [-1.0, -2.0]
    np.testing.assert_array_equal(net.params[-2:], [-1.0, -2.0])
    net.params[5 * 7] = 7.0                     # first element of 0.bias
    assert net.views["0.bias"][0] == 7.0


@pytest.mark.parametrize("extra", [0, 4])
def test_layout_is_contiguous_and_covers_params(extra):
    """Layout blocks (weight, bias per layer, then extra) tile [0, n_params) without gap or overlap."""
    sizes = [5, 7, 6, 3]
    net = MLP(sizes, np.random.default_rng(23), extra=extra)
    offset, column = 0, 0
    for k, (n_in, n_out, w_off, b_off, col) in enumerate(net.layout):
        assert (n_in, n_out) == (sizes[k], sizes[k + 1])
        assert w_off == offset and b_off == w_off + n_in * n_out and col == column
        offset, column = b_off + n_out, column + n_out
    assert offset == net.n_mlp_params
    assert net.n_params == net.params.size == offset + extra
    covered = np.zeros(net.n_params, int)
    for view in net.views.values():
        covered[np.arange(view.size) + (view.ctypes.data - net.params.ctypes.data) // net.params.itemsize] += 1
    assert np.all(covered == 1)


@pytest.mark.parametrize("sizes", [[3], [], [3, 0, 2], [0, 4]])
def test_build_layout_rejects_bad_sizes(sizes):
    """build_layout needs at least two positive widths."""
    with pytest.raises(ValueError, match="MLP sizes must be"):
        build_layout(sizes)


def test_mlp_rejects_non_float_dtype():
    """An integer MLP dtype is refused with a message naming the dtype."""
    with pytest.raises(TypeError, match="MLP dtype must be float32 or float64"):
        MLP([3, 2], np.random.default_rng(0), dtype=np.int32)


def test_copy_has_independent_params():
    """Changing the copy's parameters leaves the original alone, and vice versa."""
    net = make_net([5, 7, 3])
    twin = net.copy()
    np.testing.assert_array_equal(twin.params, net.params)
    assert not np.shares_memory(twin.params, net.params)
    original = net.params.copy()
    twin.params[:] += 1.0
    twin.views["0.weight"][0, 0] = 99.0
    np.testing.assert_array_equal(net.params, original)
    net.params[:] = 0.0
    assert twin.views["0.weight"][0, 0] == 99.0


def test_copy_has_independent_buffers():
    """The copy's act buffer and workspaces are its own: using it doesn't disturb the original's results."""
    net = make_net([5, 7, 3])
    rng = np.random.default_rng(24)
    x, d_out = rng.standard_normal((BATCH, 5)), rng.standard_normal((BATCH, 3))
    net.forward(x)
    a = net.act(x[0])
    a_value = a.copy()
    twin = net.copy()
    twin.params[:] *= 2.0
    twin.act(x[1])
    twin.forward(rng.standard_normal((BATCH, 5)))
    np.testing.assert_array_equal(a, a_value)
    grads, dx = net.backward(d_out, input_grad=True)
    ref_grads, ref_dx = ref_backward(net, x, d_out)
    np.testing.assert_allclose(grads, ref_grads, **TOL[np.float64])
    np.testing.assert_allclose(dx, ref_dx, **TOL[np.float64])


# ------------------------------------------------------------------------------------------------
# MLP input validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad_x, error, match", [
    (np.zeros((4, 6), np.float32), ValueError, r"MLP input x must have shape \(B, 5\)"),
    (np.zeros(5, np.float32), ValueError, r"MLP input x must be 2-D.*batch axis"),
    (np.zeros((4, 5), np.float64), TypeError, r"MLP input x must have dtype float32, got float64"),
    (np.zeros((4, 5), np.int64), TypeError, r"MLP input x must have dtype float32, got int64"),
    ([[0.0] * 5] * 4, TypeError, r"MLP input x must be a numpy array, got list"),
], ids=["wrong-width", "1-D", "float64-into-float32", "int", "list"])
def test_forward_rejects_bad_input(bad_x, error, match):
    """MLP.forward refuses a wrong width, rank, dtype or type with a message naming x."""
    net = MLP([5, 7, 3], np.random.default_rng(25), dtype=np.float32)
    with pytest.raises(error, match=match):
        net.forward(bad_x)


@pytest.mark.parametrize("bad_x, error, match", [
    (np.zeros(4, np.float32), ValueError, r"MLP.act observation x must have shape"),
    (np.zeros((1, 5), np.float32), ValueError, r"MLP.act observation x must be 1-D"),
    (np.zeros(5, np.float64), TypeError, r"MLP.act observation x must have dtype float32"),
], ids=["wrong-length", "2-D", "float64-into-float32"])
def test_act_rejects_bad_observation(bad_x, error, match):
    """MLP.act refuses a wrong shape or dtype with a message naming the observation."""
    net = MLP([5, 7, 3], np.random.default_rng(26), dtype=np.float32)
    with pytest.raises(error, match=match):
        net.act(bad_x)


def test_act_rejects_list():
    """MLP.act given a list raises the checked TypeError (as forward does), not an AttributeError."""
    net = MLP([3, 2], np.random.default_rng(27), dtype=np.float64)
    with pytest.raises(TypeError, match="must be a numpy array"):
        net.act([0.0, 0.0, 0.0])


def test_forward_rejects_params_of_wrong_dtype():
    """MLP.forward(x, params=...) with params of another dtype raises a clear TypeError naming params."""
    net = MLP([3, 2], np.random.default_rng(28), dtype=np.float32)
    with pytest.raises(TypeError, match="params"):
        net.forward(np.zeros((2, 3), np.float32), params=np.zeros(net.n_params, np.float64))


@pytest.mark.parametrize("delta", [-1, 1])
def test_forward_rejects_params_of_wrong_size(delta):
    """A params override of the wrong length is refused (too short would be read past its end)."""
    net = MLP([3, 2], np.random.default_rng(28), dtype=np.float32)
    with pytest.raises(ValueError, match="MLP params must have shape"):
        net.forward(np.zeros((2, 3), np.float32), params=np.zeros(net.n_params + delta, np.float32))


def test_backward_before_forward_raises():
    """MLP.backward without a preceding forward raises RuntimeError telling to call forward first."""
    net = MLP([5, 7, 3], np.random.default_rng(29))
    with pytest.raises(RuntimeError, match="needs a forward pass first"):
        net.backward(np.zeros((2, 3), np.float32))


def test_backward_rejects_d_out_of_wrong_shape():
    """MLP.backward refuses a d_out whose batch or width differs from the last forward's output."""
    net = MLP([5, 7, 3], np.random.default_rng(30))
    net.forward(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"MLP d_out must have shape \(4, 3\)"):
        net.backward(np.zeros((3, 3), np.float32))


# ------------------------------------------------------------------------------------------------
# Adam and Polyak
# ------------------------------------------------------------------------------------------------
def textbook_adam(params, m, v, t, g, lr, beta1, beta2, eps):
    """Kingma & Ba (2015), Algorithm 1, in float64. Returns the new (params, m, v, t)."""
    t = t + 1
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g ** 2
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    return params - lr * m_hat / (np.sqrt(v_hat) + eps), m, v, t


ADAM_TOL = {np.float32: dict(rtol=1e-5, atol=1e-7), np.float64: dict(rtol=1e-12, atol=1e-15)}


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_textbook_over_several_steps(dtype):
    """adam_step follows the bias-corrected textbook update for params, m, v and t over 5 steps."""
    rng = np.random.default_rng(31)
    hyper = dict(lr=1e-2, beta1=0.8, beta2=0.95, eps=1e-6)
    params = random(rng, 11, dtype)
    state = AdamState(11, dtype)
    ref = (params.astype(np.float64), np.zeros(11), np.zeros(11), 0)
    for step in range(1, 6):
        grads = random(rng, 11, dtype) * step       # changing gradients, growing scale
        adam_step(params, grads, state, **hyper)
        ref = textbook_adam(*ref, grads.astype(np.float64), **hyper)
        np.testing.assert_allclose(params, ref[0], **ADAM_TOL[dtype])
        np.testing.assert_allclose(state.m, ref[1], **ADAM_TOL[dtype])
        np.testing.assert_allclose(state.v, ref[2], **ADAM_TOL[dtype])
        assert state.t[0] == ref[3] == step


def test_adam_kernel_updates_in_place():
    """adam_kernel changes the very arrays it is given (params, m, v and the one-element t)."""
    rng = np.random.default_rng(32)
    params, grads = rng.standard_normal(5), rng.standard_normal(5)
    m, v, t = np.zeros(5), np.zeros(5), np.zeros(1, np.int64)
    before = params.copy()
    adam_kernel(params, grads, m, v, t, 1e-3, (0.9, 0.999, 1e-8))
    expected = textbook_adam(before, np.zeros(5), np.zeros(5), 0, grads, 1e-3, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(params, expected[0], rtol=1e-12)
    np.testing.assert_allclose(m, expected[1], rtol=1e-12)
    np.testing.assert_allclose(v, expected[2], rtol=1e-12)
    assert t[0] == 1


def test_adam_state_copy_is_independent():
    """AdamState.copy() owns its m, v and t."""
    state = AdamState(4, np.float64)
    adam_step(np.zeros(4), np.ones(4), state)
    twin = state.copy()
    adam_step(np.zeros(4), np.ones(4), twin)
    assert state.t[0] == 1 and twin.t[0] == 2
    assert not np.array_equal(state.m, twin.m)


def _adam_call(case):
    """Build the arguments of one invalid adam_step call."""
    p32, g32 = np.zeros(6, np.float32), np.zeros(6, np.float32)
    state32 = AdamState(6, np.float32)
    return {
        "grads-size": (p32, np.zeros(5, np.float32), state32, {}),
        "grads-dtype": (p32, np.zeros(6, np.float64), state32, {}),
        "state-dtype": (p32, g32, AdamState(6, np.float64), {}),
        "strided-params": (np.zeros(12, np.float32)[::2], g32, state32, {}),
        "2-D-params": (np.zeros((2, 3), np.float32), g32, state32, {}),
        "beta1=1": (p32, g32, state32, {"beta1": 1.0}),
        "beta2<0": (p32, g32, state32, {"beta2": -0.1}),
        "lr<0": (p32, g32, state32, {"lr": -1e-3}),
        "eps=0": (p32, g32, state32, {"eps": 0.0}),
    }[case]


@pytest.mark.parametrize("case, error, match", [
    ("grads-size", ValueError, r"adam_step grads must have shape \(6,?\)"),
    ("grads-dtype", TypeError, r"adam_step: all arrays must share one dtype"),
    ("state-dtype", TypeError, r"adam_step: all arrays must share one dtype"),
    ("strided-params", ValueError, r"adam_step params must be a writeable, contiguous vector"),
    ("2-D-params", ValueError, r"adam_step params must be 1-D"),
    ("beta1=1", ValueError, r"adam beta1 must be in \[0.0, 1.0\)"),
    ("beta2<0", ValueError, r"adam beta2 must be in \[0.0, 1.0\)"),
    ("lr<0", ValueError, r"adam lr must be in"),
    ("eps=0", ValueError, r"adam eps must be in \(0.0"),
])
def test_adam_step_rejects_bad_arguments(case, error, match):
    """adam_step refuses mismatched sizes/dtypes, non-contiguous params and out-of-range hyper-parameters."""
    params, grads, state, hyper = _adam_call(case)
    with pytest.raises(error, match=match):
        adam_step(params, grads, state, **hyper)
    assert state.t[0] == 0, "a refused call must not advance the step count"


@pytest.mark.parametrize("state_size", [3, 10])
def test_adam_step_rejects_state_of_wrong_size(state_size):
    """An AdamState sized for another network is refused before the kernel could write out of bounds."""
    params = np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="Adam state is for"):
        adam_step(params, np.ones(6, np.float32), AdamState(state_size, np.float32))
    assert not params.any()


@pytest.mark.parametrize("polyak", [0.0, 0.005, 0.3, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_polyak_update_matches_formula(dtype, polyak):
    """polyak_update: target <- (1 - polyak) target + polyak source, in place; source unchanged."""
    rng = np.random.default_rng(33)
    target, source = random(rng, 9, dtype), random(rng, 9, dtype)
    expected = (1 - polyak) * target.astype(np.float64) + polyak * source.astype(np.float64)
    source_before = source.copy()
    polyak_update(target, source, polyak)
    np.testing.assert_allclose(target, expected, **ADAM_TOL[dtype])
    np.testing.assert_array_equal(source, source_before)


def test_polyak_kernel_matches_formula():
    """polyak_kernel (unchecked) performs the same soft update."""
    rng = np.random.default_rng(34)
    target, source = rng.standard_normal(7), rng.standard_normal(7)
    expected = 0.9 * target + 0.1 * source
    polyak_kernel(target, source, 0.1)
    np.testing.assert_allclose(target, expected, rtol=1e-12)


@pytest.mark.parametrize("target, source, polyak, error, match", [
    (np.zeros(4), np.zeros(4), -0.1, ValueError, r"polyak must be in \[0.0, 1.0\]"),
    (np.zeros(4), np.zeros(4), 1.5, ValueError, r"polyak must be in \[0.0, 1.0\]"),
    (np.zeros(4), np.zeros(4), float("nan"), ValueError, r"polyak must be in"),
    (np.zeros(4), np.zeros(3), 0.5, ValueError, r"polyak_update source must have shape \(4,?\)"),
    (np.zeros(4), np.zeros(4, np.float32), 0.5, TypeError, r"polyak_update: all arrays must share one dtype"),
    (np.zeros(8)[::2], np.zeros(4), 0.5, ValueError, r"polyak_update target must be a writeable, contiguous"),
], ids=["negative", "above-one", "nan", "size", "dtype-mix", "strided-target"])
def test_polyak_update_rejects_bad_arguments(target, source, polyak, error, match):
    """polyak_update refuses a coefficient outside [0, 1], mismatched vectors and a strided target."""
    with pytest.raises(error, match=match):
        polyak_update(target, source, polyak)
