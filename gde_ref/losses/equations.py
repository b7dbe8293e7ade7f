"""The paper's numbered equations (Eq. 1-5), one function each, with its gradient beside it.

Conventions for every loss here:
* arrays are per-sample over a batch of B transitions; the loss is the batch mean;
* a ``*_kernel`` writes the gradient w.r.t. the *trained* inputs into the arrays it is given and
  returns the loss; inputs that play the role of targets (stop-gradient in the paper) get none;
* the wrapper of the same name without ``_kernel`` checks shapes/dtypes and returns
  ``(loss, gradient, ...)``.
``discount`` is per sample: gamma^n (1 - terminal) for an n-step transition (gamma (1 - done) for n = 1),
so the same code serves one-step and n-step returns.
"""
import numpy as np

from gde_ref.nn.checks import check_array, check_batch, check_range, check_same_dtype
from gde_ref.nn.distributions import gaussian_kl_kernel, log_softmax_kernel
from gde_ref.nn.kernels import kernel

AWR_MAX_WEIGHT = 100.0  # IQL clips exp(lambda A) at 100 (official implementation)


def _vectors(name, *pairs):
    """Check (label, array) pairs are 1-D float arrays of one length and one dtype."""
    out = [check_array(f"{name} {label}", a, ndim=1) for label, a in pairs]
    check_batch(name, out[0].shape[0], *zip([p[0] for p in pairs], out))
    check_same_dtype(name, *out)
    return out


# ------------------------------------------------------------------------------------------------
# Eq. 1  TD error
# ------------------------------------------------------------------------------------------------
@kernel
def td_loss_kernel(q, target, d_q):
    """Eq. 1:  L(theta) = mean_i (y_i - Q(s_i, a_i))^2,  dL/dQ_i = 2 (Q_i - y_i) / B."""
    n = q.shape[0]
    total = 0.0
    for i in range(n):
        diff = q[i] - target[i]
        total += diff * diff
        d_q[i] = 2.0 * diff / n
    return total / n


def td_loss(q, target):
    """Eq. 1, squared TD error. q, target (B,) with target y = r + discount * max_a' Q_target(s', a').

    Returns (loss, dloss/dq (B,)). The target is held fixed (a target network), so it gets no gradient.
    """
    q, target = _vectors("td_loss", ("q", q), ("target", target))
    d_q = np.empty_like(q)
    return float(td_loss_kernel(q, target, d_q)), d_q


# ------------------------------------------------------------------------------------------------
# Eq. 2  expectile regression for V
# ------------------------------------------------------------------------------------------------
@kernel
def expectile_loss_kernel(q, v, expectile, d_v):
    """Eq. 2:  L_V = mean_i L2^tau(Q_i - V_i),  L2^tau(u) = |tau - 1(u < 0)| u^2.

    dL/dV_i = -2 |tau - 1(u_i < 0)| u_i / B.
    """
    n = q.shape[0]
    total = 0.0
    for i in range(n):
        u = q[i] - v[i]
        w = expectile if u >= 0.0 else 1.0 - expectile
        total += w * u * u
        d_v[i] = -2.0 * w * u / n
    return total / n


def expectile_loss(q, v, expectile):
    """Eq. 2 (Section 4.2.2), IQL's value loss.

    q (B,): target-network Q(s, a) (min of the twin targets; stop-gradient); v (B,): V_psi(s);
    expectile: tau in (0, 1) (0.7 locomotion, 0.9 antmaze). Returns (loss, dloss/dv (B,)).
    """
    q, v = _vectors("expectile_loss", ("q", q), ("v", v))
    check_range("expectile", expectile, 0.0, 1.0, low_open=True, high_open=True)
    d_v = np.empty_like(v)
    return float(expectile_loss_kernel(q, v, expectile, d_v)), d_v


# ------------------------------------------------------------------------------------------------
# Eq. 3  IQL Q loss
# ------------------------------------------------------------------------------------------------
@kernel
def iql_q_loss_kernel(q1, q2, reward, discount, next_v, d_q1, d_q2):
    """Eq. 3 for twin critics:  y = r + discount * V(s'),  L_Q = mean (Q1 - y)^2 + mean (Q2 - y)^2."""
    n = q1.shape[0]
    total = 0.0
    for i in range(n):
        y = reward[i] + discount[i] * next_v[i]
        e1, e2 = q1[i] - y, q2[i] - y
        total += e1 * e1 + e2 * e2
        d_q1[i] = 2.0 * e1 / n
        d_q2[i] = 2.0 * e2 / n
    return total / n


def iql_q_loss(q1, q2, reward, discount, next_v):
    """Eq. 3 (Section 4.2.2): L_Q(theta) = E[(r + gamma V_psi(s') - Q_theta(s, a))^2], for both critics.

    All arrays (B,); ``discount`` = gamma^n (1 - terminal); next_v = V_psi(s') is a target (no gradient).
    Returns (loss, dloss/dq1, dloss/dq2).
    """
    q1, q2, reward, discount, next_v = _vectors(
        "iql_q_loss", ("q1", q1), ("q2", q2), ("reward", reward), ("discount", discount), ("next_v", next_v))
    d_q1, d_q2 = np.empty_like(q1), np.empty_like(q2)
    loss = iql_q_loss_kernel(q1, q2, reward, discount, next_v, d_q1, d_q2)
    return float(loss), d_q1, d_q2


# ------------------------------------------------------------------------------------------------
# Eq. 4  advantage-weighted regression (exploitation actor)
# ------------------------------------------------------------------------------------------------
@kernel
def awr_loss_kernel(log_prob, q, v, temperature, max_weight, d_log_prob):
    """Eq. 4 as IQL implements it:  w_i = min(exp(lambda (Q_i - V_i)), 100),  L = -mean_i w_i log pi(a_i|s_i).

    dL/dlog pi_i = -w_i / B  (the weights are constants: Q and V get no gradient from the actor).
    """
    n = log_prob.shape[0]
    total = 0.0
    for i in range(n):
        w = min(np.exp(temperature * (q[i] - v[i])), max_weight)
        total -= w * log_prob[i]
        d_log_prob[i] = -w / n
    return total / n


def awr_loss(log_prob, q, v, temperature, max_weight=AWR_MAX_WEIGHT):
    """Eq. 4 (Section 4.2.2), the exploitation policy's actor loss.

    log_prob (B,): log pi_phi(a|s) of the dataset actions; q (B,): target Q(s, a); v (B,): V(s).
    temperature: lambda (3.0 locomotion, 10.0 antmaze). Returns (loss, dloss/dlog_prob).

    Deviation from the text: the paper prints ``lambda exp(A)`` and omits the sign; the loss that IQL
    (and this code) minimises is ``-exp(lambda A) log pi``, with the weight clipped at 100.
    """
    log_prob, q, v = _vectors("awr_loss", ("log_prob", log_prob), ("q", q), ("v", v))
    check_range("awr temperature", temperature, 0.0)
    check_range("awr max_weight", max_weight, 0.0, low_open=True)
    d_log_prob = np.empty_like(log_prob)
    return float(awr_loss_kernel(log_prob, q, v, temperature, max_weight, d_log_prob)), d_log_prob


# ------------------------------------------------------------------------------------------------
# Eq. 5  GDE exploration actor
# ------------------------------------------------------------------------------------------------
@kernel
def gde_exploration_loss_kernel(q_pi, explore, teacher, kl_weight, d_q_pi, d_mean_b, d_log_std_b):
    """Eq. 5:  L(mu) = -mean_i Q(s_i, pi_b(s_i)) + rho * mean_i KL(pi_t(.|s_i) || pi_b(.|s_i)).

    explore = (mean_b (B, A), log_std_b (A,)), teacher = (mean_t, log_std_t): the two Gaussians.
    d_q_pi (B,) = -1/B; d_mean_b (B, A) = rho/B dKL/dmean_b; d_log_std_b (A,) = rho/B sum_i dKL_i/dlog_std_b.
    """
    (mean_b, log_std_b), (mean_t, log_std_t) = explore, teacher
    n, n_act = mean_b.shape
    kl = np.empty(n, mean_b.dtype)
    d_ls = np.empty_like(mean_b)
    gaussian_kl_kernel(mean_t, log_std_t, mean_b, log_std_b, kl, d_mean_b, d_ls)
    scale = kl_weight / n
    d_log_std_b[:] = 0.0
    total = 0.0
    for i in range(n):
        total += -q_pi[i] + kl_weight * kl[i]
        d_q_pi[i] = -1.0 / n
        for j in range(n_act):
            d_mean_b[i, j] *= scale
            d_log_std_b[j] += scale * d_ls[i, j]
    return total / n


def gde_exploration_loss(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight):
    """Eq. 5 (Section 4.2.3), GDE's exploration actor loss, for tanh-mean Gaussian policies.

    q_pi (B,): min of the twin critics at (s, pi_b(s)), pi_b(s) the exploration policy's mean action
    (deterministic, as in TD3); mean_b, mean_t (B, A): exploration / teacher means; log_std_b,
    log_std_t (A,): their (clipped) log-stds; kl_weight: rho >= 0 (0.3, decayed linearly to 0).
    The KL is analytic between the diagonal Gaussians, KL(teacher || exploration).
    Returns (loss, dloss/dq_pi (B,), dloss/dmean_b (B, A), dloss/dlog_std_b (A,)).
    """
    q_pi = check_array("gde_exploration_loss q_pi", q_pi, ndim=1)
    mean_b = check_array("gde_exploration_loss mean_b", mean_b, ndim=2)
    n, n_act = mean_b.shape
    mean_t = check_array("gde_exploration_loss mean_t", mean_t, ndim=2, shape=(n, n_act))
    log_std_b = check_array("gde_exploration_loss log_std_b", log_std_b, ndim=1, shape=(n_act,))
    log_std_t = check_array("gde_exploration_loss log_std_t", log_std_t, ndim=1, shape=(n_act,))
    check_batch("gde_exploration_loss", n, ("q_pi", q_pi))
    check_same_dtype("gde_exploration_loss", q_pi, mean_b, log_std_b, mean_t, log_std_t)
    check_range("kl_weight (rho)", kl_weight, 0.0)
    d_q_pi, d_mean_b, d_log_std_b = np.empty_like(q_pi), np.empty_like(mean_b), np.empty_like(log_std_b)
    loss = gde_exploration_loss_kernel(q_pi, (mean_b, log_std_b), (mean_t, log_std_t), kl_weight,
                                       d_q_pi, d_mean_b, d_log_std_b)
    return float(loss), d_q_pi, d_mean_b, d_log_std_b


@kernel
def gde_exploration_loss_discrete_kernel(q_all, logits_b, logits_t, kl_weight, d_logits_b):
    """Eq. 5 for categorical policies:  L = -mean_i sum_a pi_b(a|s_i) Q(s_i, a) + rho mean_i KL(pi_t || pi_b).

    dL/dz_b = [ -pi_b (Q - sum_a pi_b Q) + rho (pi_b - pi_t) ] / B,  with pi = softmax(z).
    """
    n, n_act = q_all.shape
    log_b, log_t = np.empty_like(logits_b), np.empty_like(logits_t)
    log_softmax_kernel(logits_b, log_b)
    log_softmax_kernel(logits_t, log_t)
    total = 0.0
    for i in range(n):
        expected_q = 0.0
        for a in range(n_act):
            expected_q += np.exp(log_b[i, a]) * q_all[i, a]
        kl = 0.0
        for a in range(n_act):
            p_b, p_t = np.exp(log_b[i, a]), np.exp(log_t[i, a])
            kl += p_t * (log_t[i, a] - log_b[i, a])
            d_logits_b[i, a] = (-p_b * (q_all[i, a] - expected_q) + kl_weight * (p_b - p_t)) / n
        total += -expected_q + kl_weight * kl
    return total / n


def gde_exploration_loss_discrete(q_all, logits_b, logits_t, kl_weight):
    """Eq. 5 with a categorical exploration policy (the maze): the expectation over actions is exact.

    q_all (B, K): Q(s, .) (no gradient); logits_b, logits_t (B, K): exploration / teacher logits.
    Returns (loss, dloss/dlogits_b (B, K)).
    """
    q_all = check_array("gde_exploration_loss_discrete q_all", q_all, ndim=2)
    logits_b = check_array("gde_exploration_loss_discrete logits_b", logits_b, ndim=2, shape=q_all.shape)
    logits_t = check_array("gde_exploration_loss_discrete logits_t", logits_t, ndim=2, shape=q_all.shape)
    check_same_dtype("gde_exploration_loss_discrete", q_all, logits_b, logits_t)
    check_range("kl_weight (rho)", kl_weight, 0.0)
    d_logits_b = np.empty_like(logits_b)
    loss = gde_exploration_loss_discrete_kernel(q_all, logits_b, logits_t, kl_weight, d_logits_b)
    return float(loss), d_logits_b
