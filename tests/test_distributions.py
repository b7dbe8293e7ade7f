"""Tests of gde_ref.nn.distributions: tanh-mean Gaussian, squashed Gaussian, categorical.

Each kernel is compared with a naive NumPy/SciPy formula in float32 and float64, each hand-written
gradient with float64 central differences, and each checked wrapper with bad inputs.
"""
import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from gde_ref.nn import distributions as dist
from gradcheck import assert_grad_close

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
B, A, K = 4, 3, 5          # batch, action dimension, number of discrete actions


def random(rng, shape, dtype=np.float64, scale=1.0, shift=0.0):
    return (shift + scale * rng.standard_normal(shape)).astype(dtype)


def as64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


# ================================================================================================
# tanh-mean Gaussian
# ================================================================================================
@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_mean_matches_numpy(dtype):
    """tanh_mean(raw) = np.tanh(raw), same shape and dtype."""
    raw = random(np.random.default_rng(0), (B, A), dtype, scale=2.0)
    mean = dist.tanh_mean(raw)
    assert mean.dtype == dtype
    np.testing.assert_allclose(mean, np.tanh(raw.astype(np.float64)), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_mean_backward_matches_numpy(dtype):
    """tanh_mean_backward = d_mean * (1 - tanh(raw)^2)."""
    rng = np.random.default_rng(1)
    raw, d_mean = random(rng, (B, A), dtype), random(rng, (B, A), dtype)
    d_raw = dist.tanh_mean_backward(dist.tanh_mean(raw), d_mean)
    raw64, d_mean64 = as64(raw, d_mean)
    np.testing.assert_allclose(d_raw, d_mean64 / np.cosh(raw64) ** 2, **TOL[dtype])


def test_tanh_mean_backward_matches_central_differences():
    """tanh_mean_backward gives dL/draw for L = sum(c * tanh_mean(raw)) (float64)."""
    rng = np.random.default_rng(2)
    raw, c = random(rng, (B, A)), random(rng, (B, A))
    d_raw = dist.tanh_mean_backward(dist.tanh_mean(raw), c)
    assert_grad_close(lambda: np.sum(c * dist.tanh_mean(raw)), raw, d_raw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_log_std_matches_numpy(dtype):
    """clip_log_std = np.clip(p, low, high) with a mask of 1 inside [low, high] and 0 outside."""
    p = np.array([-7.0, -5.0, -1.0, 0.5, 2.0, 3.5], dtype)
    log_std, mask = dist.clip_log_std(p, low=-5.0, high=2.0)
    np.testing.assert_array_equal(log_std, np.clip(p, -5.0, 2.0))
    np.testing.assert_array_equal(mask, [0, 1, 1, 1, 1, 0])
    assert log_std.dtype == mask.dtype == dtype


def test_clip_log_std_mask_is_the_derivative():
    """Away from the bounds, c * mask equals the central-difference gradient of sum(c * clip(p))."""
    p = np.array([-7.0, -3.0, 0.5, 1.9, 3.0])
    c = np.random.default_rng(3).standard_normal(5)
    _, mask = dist.clip_log_std(p, low=-5.0, high=2.0)
    assert_grad_close(lambda: np.sum(c * dist.clip_log_std(p, -5.0, 2.0)[0]), p, c * mask)


def ref_gaussian_log_prob(mean, log_std, x):
    """(logp, dlogp/dmean, dlogp/dlog_std) via scipy.stats.norm and the textbook derivatives."""
    mean, log_std, x = as64(mean, log_std, x)
    std = np.exp(log_std)
    logp = norm.logpdf(x, loc=mean, scale=std).sum(axis=1)
    return logp, (x - mean) / std ** 2, (x - mean) ** 2 / std ** 2 - 1.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_log_prob_matches_scipy(dtype):
    """gaussian_log_prob's log-density and per-sample gradients equal the textbook formulas."""
    rng = np.random.default_rng(4)
    mean, x = random(rng, (B, A), dtype), random(rng, (B, A), dtype)
    log_std = random(rng, A, dtype, scale=0.5, shift=-0.5)
    got = dist.gaussian_log_prob(mean, log_std, x)
    for value, expected in zip(got, ref_gaussian_log_prob(mean, log_std, x)):
        assert value.dtype == dtype
        np.testing.assert_allclose(value, expected, **TOL[dtype])


def test_gaussian_log_prob_gradients_match_central_differences():
    """For L = sum_i w_i log N(x_i; mean_i, exp(log_std)), the returned gradients give dL/dmean, dL/dlog_std."""
    rng = np.random.default_rng(5)
    mean, x, w = random(rng, (B, A)), random(rng, (B, A)), random(rng, B)
    log_std = random(rng, A, scale=0.5, shift=-0.5)
    _, d_mean, d_log_std = dist.gaussian_log_prob(mean, log_std, x)

    def loss():
        return np.sum(w * dist.gaussian_log_prob(mean, log_std, x)[0])

    assert_grad_close(loss, mean, w[:, None] * d_mean)
    assert_grad_close(loss, log_std, (w[:, None] * d_log_std).sum(axis=0))


def ref_gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """Closed-form KL(p || q) of diagonal Gaussians and its gradients w.r.t. q's mean and log-std."""
    mean_p, log_std_p, mean_q, log_std_q = as64(mean_p, log_std_p, mean_q, log_std_q)
    var_p, var_q = np.exp(2 * log_std_p), np.exp(2 * log_std_q)
    kl = (np.log(np.sqrt(var_q) / np.sqrt(var_p)) + (var_p + (mean_p - mean_q) ** 2) / (2 * var_q) - 0.5)
    d_mean_q = (mean_q - mean_p) / var_q
    d_log_std_q = 1.0 - (var_p + (mean_p - mean_q) ** 2) / var_q
    return kl.sum(axis=1), d_mean_q, d_log_std_q


@pytest.mark.parametrize("dtype", DTYPES)
def test_gaussian_kl_matches_closed_form(dtype):
    """gaussian_kl's KL and gradients equal the closed-form expressions."""
    rng = np.random.default_rng(6)
    mean_p, mean_q = random(rng, (B, A), dtype), random(rng, (B, A), dtype)
    log_std_p, log_std_q = random(rng, A, dtype, 0.5, -0.5), random(rng, A, dtype, 0.5, -0.5)
    got = dist.gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)
    for value, expected in zip(got, ref_gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)):
        assert value.dtype == dtype
        np.testing.assert_allclose(value, expected, **TOL[dtype])


def test_gaussian_kl_is_zero_for_equal_and_positive_otherwise():
    """KL(p || p) = 0 with zero gradient, and KL(p || q) > 0 for q != p."""
    rng = np.random.default_rng(7)
    mean, log_std = random(rng, (B, A)), random(rng, A, scale=0.5)
    kl, d_mean, d_log_std = dist.gaussian_kl(mean, log_std, mean, log_std)
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)
    np.testing.assert_allclose(d_mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(d_log_std, 0.0, atol=1e-12)
    kl, _, _ = dist.gaussian_kl(mean, log_std, mean + 0.1, log_std - 0.2)
    assert np.all(kl > 0)


def test_gaussian_kl_gradients_match_central_differences():
    """For L = sum_i w_i KL(p_i || q_i), the returned gradients give dL/dmean_q and dL/dlog_std_q."""
    rng = np.random.default_rng(8)
    mean_p, mean_q, w = random(rng, (B, A)), random(rng, (B, A)), random(rng, B)
    log_std_p, log_std_q = random(rng, A, scale=0.5, shift=-0.5), random(rng, A, scale=0.5, shift=-0.5)
    _, d_mean_q, d_log_std_q = dist.gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)

    def loss():
        return np.sum(w * dist.gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)[0])

    assert_grad_close(loss, mean_q, w[:, None] * d_mean_q)
    assert_grad_close(loss, log_std_q, (w[:, None] * d_log_std_q).sum(axis=0))


# ================================================================================================
# squashed Gaussian
# ================================================================================================
@pytest.mark.parametrize("dtype", DTYPES)
def test_bounded_log_std_matches_numpy(dtype):
    """bounded_log_std = low + (high - low)(tanh(raw) + 1)/2, inside [low, high]."""
    raw = random(np.random.default_rng(9), (B, A), dtype, scale=3.0)
    out = dist.bounded_log_std(raw, low=-4.0, high=1.5)
    expected = -4.0 + 5.5 * (np.tanh(raw.astype(np.float64)) + 1.0) / 2.0
    np.testing.assert_allclose(out, expected, **TOL[dtype])
    assert np.all((out >= -4.0) & (out <= 1.5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bounded_log_std_backward_matches_numpy(dtype):
    """bounded_log_std_backward = d_log_std * (high - low)/2 * (1 - tanh(raw)^2)."""
    rng = np.random.default_rng(10)
    raw, d_log_std = random(rng, (B, A), dtype), random(rng, (B, A), dtype)
    d_raw = dist.bounded_log_std_backward(raw, d_log_std, low=-4.0, high=1.5)
    raw64, d64 = as64(raw, d_log_std)
    np.testing.assert_allclose(d_raw, d64 * 2.75 / np.cosh(raw64) ** 2, **TOL[dtype])


def test_bounded_log_std_backward_matches_central_differences():
    """bounded_log_std_backward gives dL/draw for L = sum(c * bounded_log_std(raw)) (float64)."""
    rng = np.random.default_rng(11)
    raw, c = random(rng, (B, A)), random(rng, (B, A))
    d_raw = dist.bounded_log_std_backward(raw, c, low=-4.0, high=1.5)
    assert_grad_close(lambda: np.sum(c * dist.bounded_log_std(raw, -4.0, 1.5)), raw, d_raw)


def squashed_inputs(rng, dtype=np.float64):
    """mean, log_std, noise with |u| = |mean + std * noise| moderate (tanh not saturated)."""
    return (random(rng, (B, A), dtype, scale=0.5), random(rng, (B, A), dtype, scale=0.3, shift=-1.0),
            random(rng, (B, A), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_squashed_gaussian_sample_matches_naive_formula(dtype):
    """a = tanh(u) and log pi = sum(-eps^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) at moderate u."""
    mean, log_std, noise = squashed_inputs(np.random.default_rng(12), dtype)
    action, logp = dist.squashed_gaussian_sample(mean, log_std, noise)
    mean64, log_std64, noise64 = as64(mean, log_std, noise)
    u = mean64 + np.exp(log_std64) * noise64
    assert np.max(np.abs(u)) < 3.0
    expected = (-0.5 * noise64 ** 2 - log_std64 - 0.5 * np.log(2 * np.pi) - np.log(1 - np.tanh(u) ** 2)).sum(1)
    assert action.dtype == logp.dtype == dtype
    np.testing.assert_allclose(action, np.tanh(u), **TOL[dtype])
    np.testing.assert_allclose(logp, expected, **TOL[dtype])


def test_squashed_gaussian_log_prob_is_finite_when_tanh_saturates():
    """At |u| = 30 (1 - tanh^2 underflows) logp is finite and uses log(1 - tanh(u)^2) ~ 2 log 2 - 2|u|."""
    mean = np.array([[30.0, -30.0, 0.0]])
    log_std, noise = np.zeros((1, 3)), np.array([[0.0, 0.0, 0.5]])
    _, logp = dist.squashed_gaussian_sample(mean, log_std, noise)
    u = mean + noise
    moderate = np.minimum(np.abs(u), 5.0)           # keeps np.log away from log(0) in the unused branch
    log_jac = np.where(np.abs(u) > 20, 2 * math.log(2.0) - 2 * np.abs(u), np.log(1 - np.tanh(moderate) ** 2))
    expected = (-0.5 * noise ** 2 - log_std - 0.5 * np.log(2 * np.pi) - log_jac).sum(1)
    assert np.all(np.isfinite(logp))
    np.testing.assert_allclose(logp, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_squashed_gaussian_backward_matches_chain_rule(dtype):
    """dL/dmean = c1 (1 - a^2) + c2 2a;  dL/dlog_std = dL/dmean * std * eps - c2 (written out in NumPy)."""
    rng = np.random.default_rng(13)
    mean, log_std, noise = squashed_inputs(rng, dtype)
    c1, c2 = random(rng, (B, A), dtype), random(rng, B, dtype)
    action, _ = dist.squashed_gaussian_sample(mean, log_std, noise)
    d_mean, d_log_std = dist.squashed_gaussian_backward(action, log_std, noise, c1, c2)
    mean64, log_std64, noise64, c1_64, c2_64 = as64(mean, log_std, noise, c1, c2)
    a = np.tanh(mean64 + np.exp(log_std64) * noise64)
    d_u = c1_64 * (1 - a ** 2) + c2_64[:, None] * 2 * a
    np.testing.assert_allclose(d_mean, d_u, **TOL[dtype])
    np.testing.assert_allclose(d_log_std, d_u * np.exp(log_std64) * noise64 - c2_64[:, None], **TOL[dtype])


def test_squashed_gaussian_backward_matches_central_differences():
    """With the noise fixed, backward gives dL/dmean and dL/dlog_std of L = sum(c1 * a) + sum(c2 * logp)."""
    rng = np.random.default_rng(14)
    mean, log_std, noise = squashed_inputs(rng)
    c1, c2 = random(rng, (B, A)), random(rng, B)

    def loss():
        action, logp = dist.squashed_gaussian_sample(mean, log_std, noise)
        return np.sum(c1 * action) + np.sum(c2 * logp)

    action, _ = dist.squashed_gaussian_sample(mean, log_std, noise)
    d_mean, d_log_std = dist.squashed_gaussian_backward(action, log_std, noise, c1, c2)
    assert_grad_close(loss, mean, d_mean)
    assert_grad_close(loss, log_std, d_log_std)


# ================================================================================================
# categorical
# ================================================================================================
@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_matches_scipy(dtype):
    """log_softmax = logits - logsumexp(logits) per row; softmax rows sum to one."""
    logits = random(np.random.default_rng(15), (B, K), dtype, scale=2.0)
    logits64 = logits.astype(np.float64)
    out = dist.log_softmax(logits)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, logits64 - logsumexp(logits64, axis=1, keepdims=True), **TOL[dtype])
    np.testing.assert_allclose(dist.softmax(logits).sum(axis=1), 1.0, rtol=1e-6)


def test_log_softmax_does_not_overflow_for_large_logits():
    """Logits around +-1000 (exp overflows) give finite log-probabilities equal to SciPy's."""
    logits = np.array([[1000.0, 999.0, 0.0, -1000.0, 998.5]])
    out = dist.log_softmax(logits)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, logits - logsumexp(logits, axis=1, keepdims=True), rtol=1e-12)


def ref_entropy(logits):
    logits = np.asarray(logits, np.float64)
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    return -(np.exp(log_p) * log_p).sum(axis=1)


def ref_categorical_kl(logits_p, logits_q):
    logits_p, logits_q = as64(logits_p, logits_q)
    log_p = logits_p - logsumexp(logits_p, axis=1, keepdims=True)
    log_q = logits_q - logsumexp(logits_q, axis=1, keepdims=True)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=1), np.exp(log_q) - np.exp(log_p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_entropy_matches_numpy(dtype):
    """categorical_entropy = -sum p log p; uniform logits give log K."""
    logits = random(np.random.default_rng(16), (B, K), dtype, scale=2.0)
    entropy, _ = dist.categorical_entropy(logits)
    assert entropy.dtype == dtype
    np.testing.assert_allclose(entropy, ref_entropy(logits), **TOL[dtype])
    uniform, _ = dist.categorical_entropy(np.zeros((2, K), dtype))
    np.testing.assert_allclose(uniform, np.log(K), **TOL[dtype])


def test_categorical_entropy_gradient_matches_central_differences():
    """For L = sum_i w_i H(softmax(z_i)), w[:, None] * dH/dz is dL/dz (float64)."""
    rng = np.random.default_rng(17)
    logits, w = random(rng, (B, K), scale=2.0), random(rng, B)
    _, d_logits = dist.categorical_entropy(logits)
    assert_grad_close(lambda: np.sum(w * dist.categorical_entropy(logits)[0]), logits, w[:, None] * d_logits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kl_matches_numpy(dtype):
    """categorical_kl = sum p (log p - log q) with gradient softmax(z_q) - softmax(z_p); KL(p||p) = 0."""
    rng = np.random.default_rng(18)
    logits_p, logits_q = random(rng, (B, K), dtype, 2.0), random(rng, (B, K), dtype, 2.0)
    kl, d_logits_q = dist.categorical_kl(logits_p, logits_q)
    expected_kl, expected_grad = ref_categorical_kl(logits_p, logits_q)
    assert kl.dtype == d_logits_q.dtype == dtype
    np.testing.assert_allclose(kl, expected_kl, **TOL[dtype])
    np.testing.assert_allclose(d_logits_q, expected_grad, **TOL[dtype])
    assert np.all(kl > 0)
    np.testing.assert_allclose(dist.categorical_kl(logits_p, logits_p)[0], 0.0, atol=1e-6)


def test_categorical_kl_gradient_matches_central_differences():
    """For L = sum_i w_i KL(p_i || q_i), w[:, None] * dKL/dz_q is dL/dz_q (float64)."""
    rng = np.random.default_rng(19)
    logits_p, logits_q, w = random(rng, (B, K), scale=2.0), random(rng, (B, K), scale=2.0), random(rng, B)
    _, d_logits_q = dist.categorical_kl(logits_p, logits_q)
    assert_grad_close(lambda: np.sum(w * dist.categorical_kl(logits_p, logits_q)[0]),
                      logits_q, w[:, None] * d_logits_q)


# ================================================================================================
# input validation of the wrappers
# ================================================================================================
f32 = lambda *shape: np.zeros(shape, np.float32)       # noqa: E731
f64 = lambda *shape: np.zeros(shape, np.float64)       # noqa: E731

BAD_CALLS = {
    "tanh_mean-1D": (lambda: dist.tanh_mean(f32(A)), ValueError, r"tanh_mean raw must be 2-D"),
    "tanh_mean-int": (lambda: dist.tanh_mean(np.zeros((B, A), int)), TypeError,
                      r"tanh_mean raw must be float32 or float64"),
    "tanh_mean_backward-shape": (lambda: dist.tanh_mean_backward(f32(B, A), f32(B, A + 1)), ValueError,
                                 r"tanh_mean_backward d_mean must have shape \(4, 3\)"),
    "tanh_mean_backward-dtype": (lambda: dist.tanh_mean_backward(f32(B, A), f64(B, A)), TypeError,
                                 r"tanh_mean_backward: all arrays must share one dtype"),
    "clip_log_std-2D": (lambda: dist.clip_log_std(f32(B, A)), ValueError,
                        r"clip_log_std log_std_param must be 1-D"),
    "clip_log_std-bounds": (lambda: dist.clip_log_std(f32(A), low=2.0, high=-5.0), ValueError,
                            r"clip_log_std needs low < high"),
    "log_prob-log_std-shape": (lambda: dist.gaussian_log_prob(f32(B, A), f32(A + 1), f32(B, A)), ValueError,
                               r"gaussian_log_prob log_std must have shape \(3,?\)"),
    "log_prob-x-shape": (lambda: dist.gaussian_log_prob(f32(B, A), f32(A), f32(B + 1, A)), ValueError,
                         r"gaussian_log_prob x must have shape \(4, 3\)"),
    "log_prob-dtype": (lambda: dist.gaussian_log_prob(f32(B, A), f64(A), f32(B, A)), TypeError,
                       r"gaussian_log_prob: all arrays must share one dtype"),
    "log_prob-list": (lambda: dist.gaussian_log_prob([[0.0] * A] * B, f32(A), f32(B, A)), TypeError,
                      r"gaussian_log_prob mean must be a numpy array"),
    "kl-mean_q-shape": (lambda: dist.gaussian_kl(f32(B, A), f32(A), f32(B, A + 1), f32(A)), ValueError,
                        r"gaussian_kl mean_q must have shape \(4, 3\)"),
    "kl-log_std_q-shape": (lambda: dist.gaussian_kl(f32(B, A), f32(A), f32(B, A), f32(B, A)), ValueError,
                           r"gaussian_kl log_std_q must be 1-D"),
    "kl-dtype": (lambda: dist.gaussian_kl(f64(B, A), f64(A), f32(B, A), f32(A)), TypeError,
                 r"gaussian_kl: all arrays must share one dtype"),
    "bounded-1D": (lambda: dist.bounded_log_std(f32(A)), ValueError, r"bounded_log_std raw must be 2-D"),
    "bounded_backward-shape": (lambda: dist.bounded_log_std_backward(f32(B, A), f32(B, A + 1)), ValueError,
                               r"bounded_log_std_backward d_log_std must have shape \(4, 3\)"),
    "bounded_backward-dtype": (lambda: dist.bounded_log_std_backward(f32(B, A), f64(B, A)), TypeError,
                               r"bounded_log_std_backward: all arrays must share one dtype"),
    "sample-log_std-1D": (lambda: dist.squashed_gaussian_sample(f32(B, A), f32(A), f32(B, A)), ValueError,
                          r"squashed_gaussian_sample log_std must be 2-D"),
    "sample-noise-shape": (lambda: dist.squashed_gaussian_sample(f32(B, A), f32(B, A), f32(B, A + 1)),
                           ValueError, r"squashed_gaussian_sample noise must have shape \(4, 3\)"),
    "sample-dtype": (lambda: dist.squashed_gaussian_sample(f32(B, A), f32(B, A), f64(B, A)), TypeError,
                     r"squashed_gaussian_sample: all arrays must share one dtype"),
    "backward-d_logp-shape": (lambda: dist.squashed_gaussian_backward(f32(B, A), f32(B, A), f32(B, A),
                                                                      f32(B, A), f32(B + 1)),
                              ValueError, r"squashed_gaussian_backward d_logp must have shape \(4,?\)"),
    "backward-dtype": (lambda: dist.squashed_gaussian_backward(f32(B, A), f32(B, A), f32(B, A),
                                                               f64(B, A), f32(B)),
                       TypeError, r"squashed_gaussian_backward: all arrays must share one dtype"),
    "log_softmax-int": (lambda: dist.log_softmax(np.zeros((B, K), np.int32)), TypeError,
                        r"log_softmax logits must be float32 or float64"),
    "entropy-1D": (lambda: dist.categorical_entropy(f32(K)), ValueError, r"categorical_entropy logits must be 2-D"),
    "cat_kl-shape": (lambda: dist.categorical_kl(f32(B, K), f32(B, K + 1)), ValueError,
                     r"categorical_kl logits_q must have shape \(4, 5\)"),
    "cat_kl-dtype": (lambda: dist.categorical_kl(f32(B, K), f64(B, K)), TypeError,
                     r"categorical_kl: all arrays must share one dtype"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_wrappers_reject_bad_inputs(case):
    """Each checked wrapper stops a wrong shape, rank, dtype mix or type with a message naming the argument."""
    call, error, match = BAD_CALLS[case]
    with pytest.raises(error, match=match):
        call()
