"""Exercises on the engine (tutorial 00): a dense layer's backward, the MLP backward on the flat parameter
vector, and one Adam step; checked against ``gde_ref.nn`` and central differences of its forward pass."""
import numpy as np

from gde_ref.exercises._core import (Exercise, Report, call, central_difference, close, explain, match_variant,
                                     unpack)
from gde_ref.nn import kernels
from gde_ref.nn.adam import AdamState, adam_step
from gde_ref.nn.mlp import MLP, build_layout


# ------------------------------------------------------------------------------------------------
# one dense layer
# ------------------------------------------------------------------------------------------------
def _dense_reference(x, weight, delta):
    d_weight, d_bias = np.empty_like(weight), np.empty(weight.shape[1])
    dx = np.empty_like(x)
    kernels.dense_backward_params(x, delta, d_weight, d_bias)
    kernels.dense_backward_input(delta, weight, dx)
    return d_weight, d_bias, dx


def _dense_numeric(x, weight, bias, delta):
    """Central differences of L = sum(delta * (x W + b)), the forward pass by ``kernels.dense_forward``."""
    def loss(x_, w_, b_):
        out = np.empty((x_.shape[0], w_.shape[1]))
        kernels.dense_forward(x_, w_, b_, out, False)
        return float(np.sum(delta * out))
    return (central_difference(lambda w: loss(x, w, bias), weight),
            central_difference(lambda b: loss(x, weight, b), bias),
            central_difference(lambda x_: loss(x_, weight, bias), x))


DENSE_HINTS = {
    "d_weight": {"shape": "d_weight has shape {got} but weight has shape {want}: dL/dW = x^T delta is shaped like W "
                          "(delta^T x is its transpose).",
                 "1/B": "d_weight is B times too small: dL/dW = x^T delta sums over the batch rows (a mean loss's "
                        "1/B is already inside delta)."},
    "d_bias": {"1/B": "d_bias is B times too small: dL/db = sum_i delta_i, a sum over the batch rows, not their mean.",
               "shape": "d_bias has shape {got} but should have shape {want}: dL/db = sum_i delta_i, summed over the "
                        "batch rows (axis 0)."},
    "dx": {"shape": "dx has shape {got} but x has shape {want}: dL/dx = delta W^T is shaped like x."}}


def check_dense_backward(student):
    """Check ``dense_backward(x, weight, delta) -> (d_weight, d_bias, dx)`` for out = x W + b."""
    report, rng = Report("dense_backward"), np.random.default_rng(10)
    cases = [("random layer (B = 5, 4 -> 3)", 5, 4, 3), ("one row (B = 1)", 1, 4, 3),
             ("one output (a critic's head, 6 -> 1)", 5, 6, 1), ("square layer (3 -> 3)", 4, 3, 3),
             ("zero delta", 3, 2, 5)]
    for title, n, n_in, n_out in cases:
        if report.stopped:
            break
        report.cases += 1
        x, weight, bias = rng.normal(size=(n, n_in)), rng.normal(size=(n_in, n_out)), rng.normal(size=n_out)
        delta = np.zeros((n, n_out)) if title == "zero delta" else rng.normal(size=(n, n_out))
        ok, out = call(student, "dense_backward", x.copy(), weight.copy(), delta.copy())
        if not ok:
            report.stop(title, out)
            break
        got, problem = unpack(out, "dense_backward", ("d_weight", "d_bias", "dx"))
        if problem:
            report.stop(title, problem)
            break
        ref = _dense_reference(x, weight, delta)
        variants = {"d_weight": [("d_weight is transposed: dL/dW = x^T delta, an (n_in, n_out) matrix like W, "
                                  "not delta^T x.", ref[0].T)],
                    "dx": [("dx uses W instead of W^T: dL/dx = delta W^T.", delta @ weight if n_in == n_out else None)]}
        wrong = False
        for name, g, r in zip(("d_weight", "d_bias", "dx"), got, ref):
            text = explain(name, g, r, n, variants.get(name, ()), (), DENSE_HINTS.get(name))
            if text:
                report.fail(title, text)
                wrong = True
        if not wrong:
            for name, g, num in zip(("d_weight", "d_bias", "dx"), got, _dense_numeric(x, weight, bias, delta)):
                if not close(g, num, 1e-5, 1e-7):
                    report.fail(title, f"{name} does not match a central difference of out = x W + b.")
    return report.result("your dense_backward agrees with gde_ref.nn.kernels' dense backward and with central "
                         "differences")


# ------------------------------------------------------------------------------------------------
# the MLP backward
# ------------------------------------------------------------------------------------------------
def _sizes(layout):
    return [int(layout[0, kernels.N_IN])] + [int(n) for n in layout[:, kernels.N_OUT]]


def _net(params, layout):
    net = MLP(_sizes(layout), np.random.default_rng(0), dtype=np.float64)
    net.params[:] = params
    return net


def _mlp_reference(params, layout, x, d_out):
    net = _net(params, layout)
    net.forward(x)
    return net.backward(d_out, input_grad=True)


def _segments(layout):
    """(name, slice into the flat vector, shape) of each layer's weight and bias."""
    out = []
    for k, (n_in, n_out, w_off, b_off, _) in enumerate(layout):
        out += [(f"layer {k}'s weight", slice(w_off, w_off + n_in * n_out), (n_in, n_out)),
                (f"layer {k}'s bias", slice(b_off, b_off + n_out), (n_out,))]
    return out


def _mlp_pieces(params, layout, x, d_out, gate=True, out_relu=False):
    """The backward pass assembled from the package's layer kernels, with a known mistake switched on."""
    n, n_layers = x.shape[0], layout.shape[0]
    ws_acts = np.zeros(n * int(layout[:, kernels.N_OUT].sum()))
    out = kernels.mlp_forward(params, layout, x, ws_acts)
    hidden = [ws_acts[n * c:n * (c + w)].reshape(n, w) for _, w, _, _, c in layout]
    grads, delta = np.zeros_like(params), d_out * (out > 0) if out_relu else d_out.copy()
    for k in range(n_layers - 1, -1, -1):
        n_in, n_out, w_off, b_off, _ = layout[k]
        h_in = x if k == 0 else hidden[k - 1]
        d_w, d_b = grads[w_off:w_off + n_in * n_out].reshape(n_in, n_out), grads[b_off:b_off + n_out]
        kernels.dense_backward_params(h_in, delta, d_w, d_b)
        prev = np.empty((n, n_in))
        kernels.dense_backward_input(delta, params[w_off:w_off + n_in * n_out].reshape(n_in, n_out), prev)
        if k > 0 and gate:
            kernels.relu_backward_inplace(prev, h_in)
        delta = prev
    return grads, delta


def _mlp_variants(params, layout, x, d_out, ref):
    grads, dx = ref
    n = x.shape[0]
    bias_mean, transposed = grads.copy(), grads.copy()
    for name, part, shape in _segments(layout):
        if "bias" in name:
            bias_mean[part] /= n
        else:
            transposed[part] = grads[part].reshape(shape).T.ravel()
    return [("you forgot the ReLU gate: going back through a hidden layer, multiply delta by 1[h > 0] (h that "
             "layer's output) before the next layer down uses it.", _mlp_pieces(params, layout, x, d_out, gate=False)),
            ("you applied a ReLU to the output layer: the last layer is linear, so its delta is d_out itself.",
             _mlp_pieces(params, layout, x, d_out, out_relu=True)),
            ("the bias gradients are B times too small: dL/db = sum over the batch rows of delta, not the mean.",
             (bias_mean, dx)),
            ("the weight gradients are stored transposed: the flat vector holds each W as (n_in, n_out) row-major "
             "(params[w_off : w_off + n_in * n_out].reshape(n_in, n_out)), so flatten x^T delta, not delta^T x.",
             (transposed, dx))]


def _mlp_cases(rng):
    def case(title, sizes, n, dead=False):
        layout, _ = build_layout(sizes)
        params = MLP(sizes, rng, dtype=np.float64).params + 0.1 * rng.normal(size=build_layout(sizes)[1])
        if dead:
            params[layout[0, kernels.B_OFFSET]] = -50.0   # hidden unit 0 of layer 0: off for every row
        return title, params, layout, rng.normal(size=(n, sizes[0])), rng.normal(size=(n, sizes[-1]))
    return [case("two hidden layers [3, 5, 4, 2]", [3, 5, 4, 2], 4),
            case("no hidden layer [3, 2]", [3, 2], 4),
            case("a hidden unit off for every row", [3, 5, 2], 4, dead=True),
            case("one row (B = 1)", [4, 6, 3], 1),
            case("one output (a critic) [3, 6, 6, 1]", [3, 6, 6, 1], 5)]


def check_mlp_backward(student):
    """Check ``mlp_backward(params, layout, x, d_out) -> (grads, dx)`` against ``MLP.backward``."""
    report = Report("mlp_backward")
    for title, params, layout, x, d_out in _mlp_cases(np.random.default_rng(11)):
        if report.stopped:
            break
        report.cases += 1
        ok, out = call(student, "mlp_backward", params.copy(), layout.copy(), x.copy(), d_out.copy())
        if not ok:
            report.stop(title, out)
            break
        got, problem = unpack(out, "mlp_backward", ("grads", "dx"))
        if problem:
            report.stop(title, problem)
            break
        ref = _mlp_reference(params, layout, x, d_out)
        if all(close(g, r) for g, r in zip(got, ref)):
            net = _net(params, layout)
            num_p = central_difference(lambda p: float(np.sum(d_out * net.forward(x, params=p))), params)
            num_x = central_difference(lambda v: float(np.sum(d_out * net.forward(v))), x)
            if not (close(got[0], num_p, 1e-5, 1e-7) and close(got[1], num_x, 1e-5, 1e-7)):
                report.fail(title, "grads or dx do not match a central difference of the forward pass.")
            continue
        whole = match_variant(got, _mlp_variants(params, layout, x, d_out, ref))
        if whole:
            report.fail(title, whole)
            continue
        text = explain("grads", got[0], ref[0], x.shape[0])
        if text and text.startswith("grads is wrong"):   # no simple cause: say which layers are wrong
            bad = [name for name, part, _ in _segments(layout) if not close(got[0][part], ref[0][part])]
            good = [name for name, part, _ in _segments(layout) if close(got[0][part], ref[0][part])]
            text = f"grads is wrong in {', '.join(bad)}" + (f" and right in {', '.join(good)}" if good else "") + "."
            if len(layout) > 1 and all(f"layer {len(layout) - 1}'s" not in name for name in bad):
                text += (" The output layer is right, so the error enters going back through a hidden layer: "
                         "check delta W^T and the ReLU gate 1[h > 0].")
        if text:
            report.fail(title, text)
        text = explain("dx", got[1], ref[1], x.shape[0])
        if text:
            report.fail(title, text)
    return report.result("your mlp_backward agrees with MLP.backward and with central differences of MLP.forward")


# ------------------------------------------------------------------------------------------------
# one Adam step
# ------------------------------------------------------------------------------------------------
def _adam_variants(p, g, m, v, t, lr, b1, b2, eps):
    """params after one step as known mistakes compute it (only to name a mistake)."""
    t1 = t + 1
    m1, v1 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    mh, vh = m1 / (1 - b1 ** t1), v1 / (1 - b2 ** t1)
    m2, v2 = b2 * m + (1 - b2) * g, b1 * v + (1 - b1) * g * g
    return [("params moved up the gradient: Adam subtracts lr * m_hat / (sqrt(v_hat) + eps).",
             p + lr * mh / (np.sqrt(vh) + eps)),
            ("the step has no bias correction: use m_hat = m / (1 - beta1^t) and v_hat = v / (1 - beta2^t).",
             p - lr * m1 / (np.sqrt(v1) + eps)),
            ("only m is bias-corrected: v_hat = v / (1 - beta2^t) too.", p - lr * mh / (np.sqrt(v1) + eps)),
            ("eps is inside the square root: the step is lr * m_hat / (sqrt(v_hat) + eps).",
             p - lr * mh / np.sqrt(vh + eps)),
            ("beta1 and beta2 are swapped: m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2.",
             p - lr * (m2 / (1 - b1 ** t1)) / (np.sqrt(v2 / (1 - b2 ** t1)) + eps)),
            ("the bias corrections use t + 1: increment t once per step, before using it (t = 1 at the first step).",
             p - lr * (m1 / (1 - b1 ** (t1 + 1))) / (np.sqrt(v1 / (1 - b2 ** (t1 + 1))) + eps))]


def check_adam(student):
    """Check ``adam_step(params, grads, state, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8)`` (in place)."""
    report, rng = Report("adam"), np.random.default_rng(12)
    cases = [("first step from a fresh state", 1, dict(lr=1e-2)), ("five steps", 5, dict(lr=1e-3)),
             ("default hyper-parameters", 3, {}), ("a zero gradient entry", 2, dict(lr=1e-2)),
             ("large eps and small gradients", 3, dict(lr=1e-2, eps=1e-3, scale=1e-3)),
             ("beta1 = 0 (no momentum), beta2 = 0.5", 3, dict(lr=1e-2, beta1=0.0, beta2=0.5))]
    for title, steps, hyper in cases:
        hyper = dict(hyper)
        scale = hyper.pop("scale", 1.0)
        full = dict(dict(lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8), **hyper)
        p_ref = rng.normal(size=6)
        p_got, s_ref, s_got = p_ref.copy(), AdamState(6, np.float64), AdamState(6, np.float64)
        report.cases += 1
        for step in range(steps):
            g = scale * rng.normal(size=6)
            if title == "a zero gradient entry":
                g[0] = 0.0
            before = (p_ref.copy(), s_ref.m.copy(), s_ref.v.copy(), int(s_ref.t[0]))
            adam_step(p_ref, g, s_ref, **full)
            ok, out = call(student, "adam_step", p_got, g.copy(), s_got, **hyper)
            where = f"{title}, step {step + 1}"
            if not ok:
                report.stop(where, out)
                return report.result("")
            if np.array_equal(p_got, before[0]) and not np.array_equal(p_ref, before[0]):
                report.fail(where, "params is unchanged: adam_step updates params in place (params -= ... or "
                                   "params[:] = ...); a new array it returns is ignored.")
                break
            if step == 0 and not np.all(np.isfinite(p_got)):
                report.fail(where, "params became NaN or inf at the first step: the bias corrections divide by "
                                   "1 - beta^t, which is 0 for t = 0; increment t first (t = 1 at the first step).")
                break
            p0, m0, v0, t0 = before
            variants = _adam_variants(p0, g, m0, v0, t0, full["lr"], full["beta1"], full["beta2"], full["eps"])
            problems = [explain("params", p_got, p_ref, 6, variants),
                        explain("state.m", s_got.m, s_ref.m, 6, [("state.m uses beta2: m <- beta1 m + (1 - beta1) g.",
                                                                   full["beta2"] * m0 + (1 - full["beta2"]) * g)]),
                        explain("state.v", s_got.v, s_ref.v, 6, [("state.v is not built from g^2: v <- beta2 v + "
                                                                   "(1 - beta2) g^2.", full["beta2"] * v0 +
                                                                   (1 - full["beta2"]) * np.abs(g))])]
            if int(np.asarray(s_got.t).ravel()[0]) != int(s_ref.t[0]):
                problems.append(f"state.t is {int(np.asarray(s_got.t).ravel()[0])} after {step + 1} step(s): it "
                                "counts the steps, so add 1 at every step (state.t[0] += 1).")
            problems = [p for p in problems if p]
            for text in problems:
                report.fail(where, text)
            if problems:
                break
    return report.result("your adam_step agrees with gde_ref.nn.adam_step, step after step")


EXERCISES = [
    Exercise("dense_backward", "dense_backward", "dense_backward(x, weight, delta) -> (d_weight, d_bias, dx)",
             "a dense layer's backward: dW, db, dx", "tutorial 00, sec. 1",
             "For out = x W + b with x (B, n_in), W (n_in, n_out), b (n_out,), and delta = dL/dout (B, n_out): "
             "return dL/dW (n_in, n_out), dL/db (n_out,) and dL/dx (B, n_in).", check_dense_backward),
    Exercise("mlp_backward", "mlp_backward", "mlp_backward(params, layout, x, d_out) -> (grads, dx)",
             "the MLP backward on the flat parameter vector", "tutorial 00, sec. 2-4",
             "params (P,) is one flat vector; layout (L, 5) int64 rows (n_in, n_out, weight_offset, bias_offset, "
             "activation_column) as gde_ref.nn.build_layout makes them; layer k's W is params[w_off : w_off + "
             "n_in * n_out].reshape(n_in, n_out), its b params[b_off : b_off + n_out]; out = x W + b with a ReLU "
             "after every layer but the last. Run the forward pass yourself, then return dL/dparams (P,), in the "
             "same layout, and dL/dx (B, n_in) for d_out = dL/dout (B, n_out).", check_mlp_backward),
    Exercise("adam", "adam_step", "adam_step(params, grads, state, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8)",
             "one bias-corrected Adam step, in place", "tutorial 00, sec. 5",
             "state has m, v (shaped like params) and t (an int64 array of one element, the steps taken), like "
             "gde_ref.nn.AdamState. Update params, state.m, state.v and state.t in place: t <- t + 1, "
             "m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2, params <- params - lr m_hat / "
             "(sqrt(v_hat) + eps) with m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t). Return nothing.",
             check_adam),
]
