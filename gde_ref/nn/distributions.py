"""Action distributions and their gradients, written out by hand.

Three families:

* **tanh-mean Gaussian** (IQL and GDE actors): mean = tanh(network output), a state-independent
  log-std parameter clipped to [log_std_min, log_std_max]; actions are *not* squashed, the mean is.
  Pieces: ``tanh_mean`` (+ backward), ``clip_log_std``, ``gaussian_log_prob``, ``gaussian_kl``.
* **squashed (tanh) Gaussian** (SAC): a = tanh(mean + std * noise), log-prob with the tanh Jacobian;
  the log-std is state-dependent and kept in [lo, hi] by ``bounded_log_std``.
* **categorical** (the maze): ``log_softmax``, ``categorical_entropy``, ``categorical_kl``.

Each ``*_kernel`` is a compiled loop that writes per-sample values and gradients into the arrays it
is given (gradients are per sample: callers weight and sum them); the function of the same name
without the suffix is the checked wrapper that allocates its outputs and returns them.
"""
import math

import numpy as np

from gde_ref.nn.checks import check_array, check_same_dtype
from gde_ref.nn.kernels import kernel

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
LOG2 = math.log(2.0)


# ================================================================================================
# tanh-mean Gaussian (IQL / GDE)
# ================================================================================================
@kernel
def tanh_mean_kernel(raw, mean):
    """mean = tanh(raw), elementwise; raw, mean (B, A)."""
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            mean[i, j] = np.tanh(raw[i, j])


@kernel
def tanh_mean_backward_kernel(mean, d_mean, d_raw):
    """dL/draw = dL/dmean * (1 - mean^2), since d tanh(x)/dx = 1 - tanh(x)^2."""
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            d_raw[i, j] = d_mean[i, j] * (1.0 - mean[i, j] * mean[i, j])


@kernel
def clip_log_std_kernel(log_std_param, low, high, log_std, grad_mask):
    """log_std = clip(param, low, high); grad_mask = d log_std / d param (1 inside, 0 outside)."""
    for j in range(log_std_param.shape[0]):
        p = log_std_param[j]
        log_std[j] = min(max(p, low), high)
        grad_mask[j] = 1.0 if low <= p <= high else 0.0


@kernel
def gaussian_log_prob_kernel(mean, log_std, x, logp, d_mean, d_log_std):
    """Diagonal Gaussian log-density and its gradients, per sample.

        log N(x; mu, sigma) = sum_j [ -(x_j - mu_j)^2 / (2 sigma_j^2) - log sigma_j - log(2 pi) / 2 ]
        d/d mu_j        = (x_j - mu_j) / sigma_j^2
        d/d log sigma_j = (x_j - mu_j)^2 / sigma_j^2 - 1

    mean, x (B, A); log_std (A,) (state-independent); outputs logp (B,), d_mean, d_log_std (B, A).
    """
    for i in range(mean.shape[0]):
        total = 0.0
        for j in range(mean.shape[1]):
            inv_var = np.exp(-2.0 * log_std[j])
            diff = x[i, j] - mean[i, j]
            z2 = diff * diff * inv_var
            total += -0.5 * z2 - log_std[j] - HALF_LOG_2PI
            d_mean[i, j] = diff * inv_var
            d_log_std[i, j] = z2 - 1.0
        logp[i] = total


@kernel
def gaussian_kl_kernel(mean_p, log_std_p, mean_q, log_std_q, kl, d_mean_q, d_log_std_q):
    """KL(p || q) between diagonal Gaussians, and its gradient w.r.t. q's mean and log-std, per sample.

        KL = sum_j [ log sigma_q - log sigma_p + (sigma_p^2 + (mu_p - mu_q)^2) / (2 sigma_q^2) - 1/2 ]
        d/d mu_q        = (mu_q - mu_p) / sigma_q^2
        d/d log sigma_q = 1 - (sigma_p^2 + (mu_p - mu_q)^2) / sigma_q^2

    In GDE p is the teacher and q the exploration policy (Eq. 5). mean_* (B, A), log_std_* (A,).
    """
    for i in range(mean_p.shape[0]):
        total = 0.0
        for j in range(mean_p.shape[1]):
            inv_var_q = np.exp(-2.0 * log_std_q[j])
            diff = mean_p[i, j] - mean_q[i, j]
            ratio = (np.exp(2.0 * log_std_p[j]) + diff * diff) * inv_var_q
            total += log_std_q[j] - log_std_p[j] + 0.5 * ratio - 0.5
            d_mean_q[i, j] = -diff * inv_var_q
            d_log_std_q[i, j] = 1.0 - ratio
        kl[i] = total


def tanh_mean(raw):
    """mean = tanh(raw) for a (B, A) array."""
    raw = check_array("tanh_mean raw", raw, ndim=2)
    mean = np.empty_like(raw)
    tanh_mean_kernel(raw, mean)
    return mean


def tanh_mean_backward(mean, d_mean):
    """dL/draw from dL/dmean, both (B, A), with mean = tanh(raw)."""
    mean = check_array("tanh_mean_backward mean", mean, ndim=2)
    d_mean = check_array("tanh_mean_backward d_mean", d_mean, ndim=2, shape=mean.shape)
    check_same_dtype("tanh_mean_backward", mean, d_mean)
    d_raw = np.empty_like(mean)
    tanh_mean_backward_kernel(mean, d_mean, d_raw)
    return d_raw


def clip_log_std(log_std_param, low=-5.0, high=2.0):
    """(clipped log-std, gradient mask) for a state-independent log-std parameter (A,)."""
    p = check_array("clip_log_std log_std_param", log_std_param, ndim=1)
    if not low < high:
        raise ValueError(f"clip_log_std needs low < high, got low={low}, high={high}")
    out, mask = np.empty_like(p), np.empty_like(p)
    clip_log_std_kernel(p, low, high, out, mask)
    return out, mask


def gaussian_log_prob(mean, log_std, x):
    """(logp (B,), dlogp/dmean (B, A), dlogp/dlog_std (B, A)) of x under N(mean, diag(exp(log_std))^2)."""
    mean = check_array("gaussian_log_prob mean", mean, ndim=2)
    log_std = check_array("gaussian_log_prob log_std", log_std, ndim=1, shape=(mean.shape[1],))
    x = check_array("gaussian_log_prob x", x, ndim=2, shape=mean.shape)
    check_same_dtype("gaussian_log_prob", mean, log_std, x)
    logp = np.empty(mean.shape[0], mean.dtype)
    d_mean, d_log_std = np.empty_like(mean), np.empty_like(mean)
    gaussian_log_prob_kernel(mean, log_std, x, logp, d_mean, d_log_std)
    return logp, d_mean, d_log_std


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """(KL(p || q) (B,), dKL/dmean_q (B, A), dKL/dlog_std_q (B, A)) between diagonal Gaussians."""
    mean_p = check_array("gaussian_kl mean_p", mean_p, ndim=2)
    n_act = mean_p.shape[1]
    log_std_p = check_array("gaussian_kl log_std_p", log_std_p, ndim=1, shape=(n_act,))
    mean_q = check_array("gaussian_kl mean_q", mean_q, ndim=2, shape=mean_p.shape)
    log_std_q = check_array("gaussian_kl log_std_q", log_std_q, ndim=1, shape=(n_act,))
    check_same_dtype("gaussian_kl", mean_p, log_std_p, mean_q, log_std_q)
    kl = np.empty(mean_p.shape[0], mean_p.dtype)
    d_mean_q, d_log_std_q = np.empty_like(mean_p), np.empty_like(mean_p)
    gaussian_kl_kernel(mean_p, log_std_p, mean_q, log_std_q, kl, d_mean_q, d_log_std_q)
    return kl, d_mean_q, d_log_std_q


# ================================================================================================
# squashed Gaussian (SAC)
# ================================================================================================
@kernel
def bounded_log_std_kernel(raw, low, high, log_std):
    """log_std = low + (high - low) (tanh(raw) + 1) / 2: a smooth squashing into [low, high]."""
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            log_std[i, j] = low + 0.5 * (high - low) * (np.tanh(raw[i, j]) + 1.0)


@kernel
def bounded_log_std_backward_kernel(raw, low, high, d_log_std, d_raw):
    """dL/draw = dL/dlog_std * (high - low) / 2 * (1 - tanh(raw)^2)."""
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            t = np.tanh(raw[i, j])
            d_raw[i, j] = d_log_std[i, j] * 0.5 * (high - low) * (1.0 - t * t)


@kernel
def squashed_gaussian_sample_kernel(mean, log_std, noise, action, logp):
    """Reparameterised sample and its log-density, per sample.

        u = mu + sigma * eps,   a = tanh(u)
        log pi(a|s) = sum_j [ -eps_j^2 / 2 - log sigma_j - log(2 pi)/2 - log(1 - tanh(u_j)^2) ]
        log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2 u))        (numerically stable form)

    mean, log_std, noise, action (B, A); logp (B,).
    """
    for i in range(mean.shape[0]):
        total = 0.0
        for j in range(mean.shape[1]):
            eps = noise[i, j]
            u = mean[i, j] + np.exp(log_std[i, j]) * eps
            action[i, j] = np.tanh(u)
            m2u = -2.0 * u
            softplus = max(m2u, 0.0) + np.log1p(np.exp(-abs(m2u)))
            total += -0.5 * eps * eps - log_std[i, j] - HALF_LOG_2PI - 2.0 * (LOG2 - u - softplus)
        logp[i] = total


@kernel
def squashed_gaussian_backward_kernel(action, log_std, noise, d_action, d_logp, d_mean, d_log_std):
    """Gradients of L(a, log pi) through the reparameterised sample (eps held fixed).

        du/dmu = 1,  du/dlog sigma = sigma eps,  da/du = 1 - a^2,  d log pi / du = 2 a,
        d log pi / d log sigma (direct) = -1
        dL/dmu        = dL/da (1 - a^2) + dL/dlogpi * 2 a
        dL/dlog sigma = dL/dmu * sigma * eps - dL/dlogpi

    action, log_std, noise, d_action, d_mean, d_log_std (B, A); d_logp (B,).
    """
    for i in range(action.shape[0]):
        for j in range(action.shape[1]):
            a = action[i, j]
            d_u = d_action[i, j] * (1.0 - a * a) + d_logp[i] * 2.0 * a
            d_mean[i, j] = d_u
            d_log_std[i, j] = d_u * np.exp(log_std[i, j]) * noise[i, j] - d_logp[i]


def bounded_log_std(raw, low=-5.0, high=2.0):
    """SAC's state-dependent log-std squashed into [low, high]; raw (B, A)."""
    raw = check_array("bounded_log_std raw", raw, ndim=2)
    out = np.empty_like(raw)
    bounded_log_std_kernel(raw, low, high, out)
    return out


def bounded_log_std_backward(raw, d_log_std, low=-5.0, high=2.0):
    """dL/draw from dL/dlog_std for ``bounded_log_std``."""
    raw = check_array("bounded_log_std_backward raw", raw, ndim=2)
    d_log_std = check_array("bounded_log_std_backward d_log_std", d_log_std, ndim=2, shape=raw.shape)
    check_same_dtype("bounded_log_std_backward", raw, d_log_std)
    d_raw = np.empty_like(raw)
    bounded_log_std_backward_kernel(raw, low, high, d_log_std, d_raw)
    return d_raw


def squashed_gaussian_sample(mean, log_std, noise):
    """(action (B, A), log_prob (B,)) of a = tanh(mean + exp(log_std) * noise)."""
    mean = check_array("squashed_gaussian_sample mean", mean, ndim=2)
    log_std = check_array("squashed_gaussian_sample log_std", log_std, ndim=2, shape=mean.shape)
    noise = check_array("squashed_gaussian_sample noise", noise, ndim=2, shape=mean.shape)
    check_same_dtype("squashed_gaussian_sample", mean, log_std, noise)
    action, logp = np.empty_like(mean), np.empty(mean.shape[0], mean.dtype)
    squashed_gaussian_sample_kernel(mean, log_std, noise, action, logp)
    return action, logp


def squashed_gaussian_backward(action, log_std, noise, d_action, d_logp):
    """(dL/dmean, dL/dlog_std) from dL/daction (B, A) and dL/dlogp (B,) of a squashed sample."""
    action = check_array("squashed_gaussian_backward action", action, ndim=2)
    shape = action.shape
    log_std = check_array("squashed_gaussian_backward log_std", log_std, ndim=2, shape=shape)
    noise = check_array("squashed_gaussian_backward noise", noise, ndim=2, shape=shape)
    d_action = check_array("squashed_gaussian_backward d_action", d_action, ndim=2, shape=shape)
    d_logp = check_array("squashed_gaussian_backward d_logp", d_logp, ndim=1, shape=(shape[0],))
    check_same_dtype("squashed_gaussian_backward", action, log_std, noise, d_action, d_logp)
    d_mean, d_log_std = np.empty_like(action), np.empty_like(action)
    squashed_gaussian_backward_kernel(action, log_std, noise, d_action, d_logp, d_mean, d_log_std)
    return d_mean, d_log_std


# ================================================================================================
# categorical (discrete actions)
# ================================================================================================
@kernel
def log_softmax_kernel(logits, out):
    """out = logits - logsumexp(logits) row by row (max-shifted, so it never overflows)."""
    for i in range(logits.shape[0]):
        top = logits[i, 0]
        for k in range(1, logits.shape[1]):
            top = max(top, logits[i, k])
        total = 0.0
        for k in range(logits.shape[1]):
            total += np.exp(logits[i, k] - top)
        lse = top + np.log(total)
        for k in range(logits.shape[1]):
            out[i, k] = logits[i, k] - lse


@kernel
def categorical_entropy_kernel(logits, entropy, d_logits):
    """H(p) = -sum_k p_k log p_k with p = softmax(z);  dH/dz_k = -p_k (log p_k + H)."""
    log_p = np.empty_like(logits)
    log_softmax_kernel(logits, log_p)
    for i in range(logits.shape[0]):
        h = 0.0
        for k in range(logits.shape[1]):
            h -= np.exp(log_p[i, k]) * log_p[i, k]
        entropy[i] = h
        for k in range(logits.shape[1]):
            d_logits[i, k] = -np.exp(log_p[i, k]) * (log_p[i, k] + h)


@kernel
def categorical_kl_kernel(logits_p, logits_q, kl, d_logits_q):
    """KL(p || q) = sum_k p_k (log p_k - log q_k);  dKL/dz_q = softmax(z_q) - softmax(z_p)."""
    log_p, log_q = np.empty_like(logits_p), np.empty_like(logits_q)
    log_softmax_kernel(logits_p, log_p)
    log_softmax_kernel(logits_q, log_q)
    for i in range(logits_p.shape[0]):
        total = 0.0
        for k in range(logits_p.shape[1]):
            p = np.exp(log_p[i, k])
            total += p * (log_p[i, k] - log_q[i, k])
            d_logits_q[i, k] = np.exp(log_q[i, k]) - p
        kl[i] = total


def log_softmax(logits):
    """log softmax(logits) row by row; logits (B, K)."""
    logits = check_array("log_softmax logits", logits, ndim=2)
    out = np.empty_like(logits)
    log_softmax_kernel(logits, out)
    return out


def softmax(logits):
    """softmax(logits) row by row; logits (B, K)."""
    return np.exp(log_softmax(logits))


def categorical_entropy(logits):
    """(entropy (B,), dH/dlogits (B, K)) of softmax(logits)."""
    logits = check_array("categorical_entropy logits", logits, ndim=2)
    entropy, d_logits = np.empty(logits.shape[0], logits.dtype), np.empty_like(logits)
    categorical_entropy_kernel(logits, entropy, d_logits)
    return entropy, d_logits


def categorical_kl(logits_p, logits_q):
    """(KL(p || q) (B,), dKL/dlogits_q (B, K)) between softmax(logits_p) and softmax(logits_q)."""
    logits_p = check_array("categorical_kl logits_p", logits_p, ndim=2)
    logits_q = check_array("categorical_kl logits_q", logits_q, ndim=2, shape=logits_p.shape)
    check_same_dtype("categorical_kl", logits_p, logits_q)
    kl, d_logits_q = np.empty(logits_p.shape[0], logits_p.dtype), np.empty_like(logits_p)
    categorical_kl_kernel(logits_p, logits_q, kl, d_logits_q)
    return kl, d_logits_q
