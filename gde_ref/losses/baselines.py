"""Losses of the baselines and of the toy maze: DQN, discrete CQL, AWAC's actor, SAC (actor and temperature),
RND.

Same conventions as ``equations.py``: ``*_kernel`` writes gradients into given arrays and returns the
loss; the wrapper without the suffix checks its inputs and returns ``(loss, gradients...)``.
"""
import numpy as np

from gde_ref.losses.equations import _vectors, td_loss_kernel
from gde_ref.nn.checks import check_array, check_batch, check_range, check_same_dtype
from gde_ref.nn.kernels import kernel


def _actions(name, actions, batch, n_actions):
    actions = check_array(f"{name} actions", actions, ndim=1, floating=False, shape=(batch,))
    if not np.issubdtype(actions.dtype, np.integer):
        raise TypeError(f"{name} actions must be integers, got {actions.dtype.name}; use .astype(np.int64)")
    if actions.size and (actions.min() < 0 or actions.max() >= n_actions):
        raise ValueError(f"{name} actions must lie in [0, {n_actions}), got range "
                         f"[{actions.min()}, {actions.max()}]")
    return actions.astype(np.int64, copy=False)


# ------------------------------------------------------------------------------------------------
# DQN (Eq. 1 with a max over next actions) and discrete CQL
# ------------------------------------------------------------------------------------------------
@kernel
def dqn_loss_kernel(q_all, actions, reward, discount, next_q_target, d_q_all):
    """y_i = r_i + discount_i max_a' Q_target(s'_i, a');  L = mean_i (Q(s_i, a_i) - y_i)^2 (Eq. 1)."""
    n, n_act = q_all.shape
    q_taken, target, d_q = np.empty(n, q_all.dtype), np.empty(n, q_all.dtype), np.empty(n, q_all.dtype)
    for i in range(n):
        best = next_q_target[i, 0]
        for a in range(1, n_act):
            best = max(best, next_q_target[i, a])
        target[i] = reward[i] + discount[i] * best
        q_taken[i] = q_all[i, actions[i]]
    loss = td_loss_kernel(q_taken, target, d_q)
    d_q_all[:] = 0.0
    for i in range(n):
        d_q_all[i, actions[i]] = d_q[i]
    return loss


def dqn_loss(q_all, actions, reward, discount, next_q_target):
    """DQN's TD loss (paper Eq. 1). q_all, next_q_target (B, K); actions (B,) int; reward, discount (B,).

    Returns (loss, dloss/dq_all (B, K)); only the taken action's entry of each row is non-zero.
    """
    q_all = check_array("dqn_loss q_all", q_all, ndim=2)
    n, n_act = q_all.shape
    next_q_target = check_array("dqn_loss next_q_target", next_q_target, ndim=2, shape=(n, n_act))
    actions = _actions("dqn_loss", actions, n, n_act)
    reward, discount = _vectors("dqn_loss", ("reward", reward), ("discount", discount))
    check_batch("dqn_loss", n, ("reward", reward))
    check_same_dtype("dqn_loss", q_all, next_q_target, reward, discount)
    d_q_all = np.empty_like(q_all)
    return float(dqn_loss_kernel(q_all, actions, reward, discount, next_q_target, d_q_all)), d_q_all


@kernel
def cql_penalty_kernel(q_all, actions, alpha, d_q_all):
    """Discrete CQL (Kumar et al., 2020):  alpha * mean_i [ logsumexp_a Q(s_i, a) - Q(s_i, a_i) ].

    dL/dQ(s_i, a) = alpha / B * (softmax(Q(s_i, .))_a - 1[a = a_i]).
    """
    n, n_act = q_all.shape
    total = 0.0
    for i in range(n):
        top = q_all[i, 0]
        for a in range(1, n_act):
            top = max(top, q_all[i, a])
        z = 0.0
        for a in range(n_act):
            z += np.exp(q_all[i, a] - top)
        lse = top + np.log(z)
        total += lse - q_all[i, actions[i]]
        for a in range(n_act):
            d_q_all[i, a] = alpha * np.exp(q_all[i, a] - lse) / n
        d_q_all[i, actions[i]] -= alpha / n
    return alpha * total / n


def cql_penalty(q_all, actions, alpha):
    """The discrete CQL penalty; the CQL loss is ``dqn_loss + cql_penalty``. Returns (penalty, d/dq_all)."""
    q_all = check_array("cql_penalty q_all", q_all, ndim=2)
    actions = _actions("cql_penalty", actions, *q_all.shape)
    check_range("cql alpha", alpha, 0.0)
    d_q_all = np.empty_like(q_all)
    return float(cql_penalty_kernel(q_all, actions, alpha, d_q_all)), d_q_all


@kernel
def cql_sampled_penalty_kernel(q_samples, log_density, q_data, alpha, d_q_samples, d_q_data):
    """Continuous CQL(H) with importance sampling (Kumar et al., 2020; the official code's min_q_version 3):

        penalty = alpha * mean_i [ logsumexp_j (Q(s_i, a_ij) - log mu(a_ij)) - Q(s_i, a_i) ]

    q_samples (B, M): Q at s_i of M sampled actions (uniform, pi(.|s_i), pi(.|s'_i)); log_density (B, M) their
    log-densities (held constant); q_data (B,): Q(s_i, a_i) of the data actions.
    dL/dQ(s_i, a_ij) = alpha / B * softmax_j(Q - log mu)_ij,  dL/dQ(s_i, a_i) = -alpha / B.
    """
    n, m = q_samples.shape
    total = 0.0
    for i in range(n):
        top = q_samples[i, 0] - log_density[i, 0]
        for j in range(1, m):
            top = max(top, q_samples[i, j] - log_density[i, j])
        z = 0.0
        for j in range(m):
            z += np.exp(q_samples[i, j] - log_density[i, j] - top)
        lse = top + np.log(z)
        total += lse - q_data[i]
        for j in range(m):
            d_q_samples[i, j] = alpha * np.exp(q_samples[i, j] - log_density[i, j] - lse) / n
        d_q_data[i] = -alpha / n
    return alpha * total / n


def cql_sampled_penalty(q_samples, log_density, q_data, alpha):
    """The continuous CQL penalty (added to each critic's TD loss). q_samples, log_density (B, M); q_data (B,);
    alpha >= 0 (5.0, the paper's B.3). Returns (penalty, d/dq_samples (B, M), d/dq_data (B,))."""
    q_samples = check_array("cql_sampled_penalty q_samples", q_samples, ndim=2)
    log_density = check_array("cql_sampled_penalty log_density", log_density, ndim=2, shape=q_samples.shape)
    q_data = check_array("cql_sampled_penalty q_data", q_data, ndim=1, shape=(q_samples.shape[0],))
    check_same_dtype("cql_sampled_penalty", q_samples, log_density, q_data)
    check_range("cql alpha", alpha, 0.0)
    d_q_samples, d_q_data = np.empty_like(q_samples), np.empty_like(q_data)
    loss = cql_sampled_penalty_kernel(q_samples, log_density, q_data, alpha, d_q_samples, d_q_data)
    return float(loss), d_q_samples, d_q_data


# ------------------------------------------------------------------------------------------------
# AWAC (Nair et al., 2020)
# ------------------------------------------------------------------------------------------------
@kernel
def awac_actor_loss_kernel(log_prob, advantage, beta, d_log_prob):
    """AWAC's actor loss with the official code's batch-normalised weights (rlkit, normalize_over_batch):

        w_i = softmax_i(A_i / beta) = exp(A_i / beta) / sum_k exp(A_k / beta)
        L   = -mean_i B w_i log pi(a_i|s_i) = -sum_i w_i log pi(a_i|s_i)

    The weights are constants (the advantage gets no gradient from the actor): dL/dlog pi_i = -w_i. The
    softmax is taken after subtracting max_k A_k, so large advantages do not overflow.
    """
    n = log_prob.shape[0]
    top = advantage[0]
    for i in range(1, n):
        top = max(top, advantage[i])
    z = 0.0
    for i in range(n):
        z += np.exp((advantage[i] - top) / beta)
    total = 0.0
    for i in range(n):
        w = np.exp((advantage[i] - top) / beta) / z
        total -= w * log_prob[i]
        d_log_prob[i] = -w
    return total


def awac_actor_loss(log_prob, advantage, beta=2.0):
    """AWAC's actor loss (``awac_actor_loss_kernel``). log_prob (B,): log pi(a|s) of the data actions;
    advantage (B,): min(Q1, Q2)(s, a) - min(Q1, Q2)(s, a~pi); beta > 0 (2.0). Returns (loss, dloss/dlog_prob).

    Where it differs from CORL's AWAC (min(exp(A / lambda), 100), not normalised): the weights here sum to 1
    over the batch, as in rlkit, so their scale does not grow with the advantages.
    """
    log_prob, advantage = _vectors("awac_actor_loss", ("log_prob", log_prob), ("advantage", advantage))
    check_range("awac beta", beta, 0.0, low_open=True)
    if log_prob.shape[0] == 0:
        raise ValueError("awac_actor_loss: the batch is empty (the softmax over it is undefined)")
    d_log_prob = np.empty_like(log_prob)
    return float(awac_actor_loss_kernel(log_prob, advantage, beta, d_log_prob)), d_log_prob


@kernel
def calql_sampled_penalty_kernel(q_samples, log_density, floor, q_data, alpha, d_q_samples, d_q_data):
    """Cal-QL's calibrated penalty (Nakamoto et al., 2023): ``cql_sampled_penalty_kernel`` with every sampled
    Q-value first lifted to its floor,

        penalty = alpha * mean_i [ logsumexp_j (max(Q(s_i, a_ij), floor_ij) - log mu(a_ij)) - Q(s_i, a_i) ]

    floor (B, M): the lower bound of each sampled Q-value; Cal-QL puts the Monte-Carlo return-to-go G(s_i) of
    the batch state on the policy-sampled actions (pi(.|s_i) and pi(.|s'_i)) and -inf (no bound) on the
    uniform ones. The importance weight log mu is subtracted after the max, as in the official code.
    dL/dQ(s_i, a_ij) = alpha / B * softmax_j(max(Q, floor) - log mu)_ij where Q(s_i, a_ij) >= floor_ij and 0
    where the floor holds it (a tie passes the gradient; the official jnp.maximum splits it);
    dL/dQ(s_i, a_i) = -alpha / B."""
    n, m = q_samples.shape
    lifted = np.empty_like(q_samples)
    for i in range(n):
        for j in range(m):
            lifted[i, j] = max(q_samples[i, j], floor[i, j])
    loss = cql_sampled_penalty_kernel(lifted, log_density, q_data, alpha, d_q_samples, d_q_data)
    for i in range(n):
        for j in range(m):
            if q_samples[i, j] < floor[i, j]:
                d_q_samples[i, j] = 0.0
    return loss


def calql_sampled_penalty(q_samples, log_density, floor, q_data, alpha):
    """Cal-QL's penalty (``calql_sampled_penalty_kernel``). q_samples, log_density, floor (B, M) (floor: -inf
    where a Q-value is not bounded; no NaN, no +inf); q_data (B,); alpha >= 0. Returns (penalty, d/dq_samples
    (B, M), d/dq_data (B,))."""
    q_samples = check_array("calql_sampled_penalty q_samples", q_samples, ndim=2)
    log_density = check_array("calql_sampled_penalty log_density", log_density, ndim=2, shape=q_samples.shape)
    floor = check_array("calql_sampled_penalty floor", floor, ndim=2, shape=q_samples.shape)
    q_data = check_array("calql_sampled_penalty q_data", q_data, ndim=1, shape=(q_samples.shape[0],))
    check_same_dtype("calql_sampled_penalty", q_samples, log_density, floor, q_data)
    if np.isnan(floor).any() or np.isposinf(floor).any():
        raise ValueError("calql_sampled_penalty floor must be finite or -inf (no bound), got NaN or +inf")
    check_range("cql alpha", alpha, 0.0)
    d_q_samples, d_q_data = np.empty_like(q_samples), np.empty_like(q_data)
    loss = calql_sampled_penalty_kernel(q_samples, log_density, floor, q_data, alpha, d_q_samples, d_q_data)
    return float(loss), d_q_samples, d_q_data


# ------------------------------------------------------------------------------------------------
# SAC (Haarnoja et al., 2018)
# ------------------------------------------------------------------------------------------------
@kernel
def sac_actor_loss_kernel(log_prob, q_min, alpha, d_log_prob, d_q):
    """L_pi = mean_i [ alpha log pi(a_i|s_i) - min_k Q_k(s_i, a_i) ],  a_i ~ pi (reparameterised)."""
    n = log_prob.shape[0]
    total = 0.0
    for i in range(n):
        total += alpha * log_prob[i] - q_min[i]
        d_log_prob[i] = alpha / n
        d_q[i] = -1.0 / n
    return total / n


def sac_actor_loss(log_prob, q_min, alpha):
    """SAC's actor loss. log_prob, q_min (B,); alpha >= 0 (0: no entropy term). Returns (loss, dloss/dlog_prob, dloss/dq_min)."""
    log_prob, q_min = _vectors("sac_actor_loss", ("log_prob", log_prob), ("q_min", q_min))
    check_range("sac alpha", alpha, 0.0)
    d_log_prob, d_q = np.empty_like(log_prob), np.empty_like(q_min)
    return float(sac_actor_loss_kernel(log_prob, q_min, alpha, d_log_prob, d_q)), d_log_prob, d_q


@kernel
def sac_alpha_loss_kernel(log_alpha, log_prob, target_entropy):
    """L(alpha) = -mean_i alpha (log pi(a_i|s_i) + H_target),  alpha = exp(log_alpha).

    Returns (loss, dL/dlog_alpha); log_prob is a constant here. Target entropy H_target = -|A|.
    """
    n = log_prob.shape[0]
    alpha = np.exp(log_alpha)
    total = 0.0
    for i in range(n):
        total += log_prob[i] + target_entropy
    loss = -alpha * total / n
    return loss, loss


def sac_alpha_loss(log_alpha, log_prob, target_entropy):
    """SAC's temperature loss; returns (loss, dloss/dlog_alpha) (they are equal: d(alpha)/dlog_alpha = alpha)."""
    log_prob = check_array("sac_alpha_loss log_prob", log_prob, ndim=1)
    loss, grad = sac_alpha_loss_kernel(float(log_alpha), log_prob, float(target_entropy))
    return float(loss), float(grad)


# ------------------------------------------------------------------------------------------------
# RND (Burda et al., 2018)
# ------------------------------------------------------------------------------------------------
@kernel
def rnd_loss_kernel(prediction, target, error, d_prediction):
    """e_i = ||f_pred(s_i) - f_target(s_i)||^2 (the intrinsic reward);  L = mean_i e_i.

    dL/df_pred(s_i) = 2 (f_pred(s_i) - f_target(s_i)) / B; the target network is frozen.
    """
    n, d = prediction.shape
    total = 0.0
    for i in range(n):
        e = 0.0
        for k in range(d):
            diff = prediction[i, k] - target[i, k]
            e += diff * diff
            d_prediction[i, k] = 2.0 * diff / n
        error[i] = e
        total += e
    return total / n


def rnd_loss(prediction, target):
    """RND predictor loss. prediction, target (B, F). Returns (loss, dloss/dprediction, per-sample error (B,)).

    The per-sample error is RND's (unnormalised) intrinsic reward.
    """
    prediction = check_array("rnd_loss prediction", prediction, ndim=2)
    target = check_array("rnd_loss target", target, ndim=2, shape=prediction.shape)
    check_same_dtype("rnd_loss", prediction, target)
    error, d_prediction = np.empty(prediction.shape[0], prediction.dtype), np.empty_like(prediction)
    loss = rnd_loss_kernel(prediction, target, error, d_prediction)
    return float(loss), d_prediction, error


# ------------------------------------------------------------------------------------------------
# TD3+BC actor loss (Fujimoto & Gu, 2021)
# ------------------------------------------------------------------------------------------------
@kernel
def td3bc_actor_loss_kernel(q_pi, pi, actions, alpha, d_q_pi, d_pi):
    """L = -lambda mean_i Q1(s_i, pi(s_i)) + mean_ij (pi_ij - a_ij)^2,  lambda = alpha / mean_i |Q1(s_i, pi(s_i))|.

    lambda is a constant (detached, as the official code): dL/dQ_i = -lambda / B, dL/dpi_ij = 2 (pi_ij - a_ij) / (B A).
    """
    n, n_act = pi.shape
    abs_mean = 0.0
    for i in range(n):
        abs_mean += abs(q_pi[i])
    lam = alpha / (abs_mean / n)
    total_q, total_bc = 0.0, 0.0
    for i in range(n):
        total_q += q_pi[i]
        d_q_pi[i] = -lam / n
        for j in range(n_act):
            diff = pi[i, j] - actions[i, j]
            total_bc += diff * diff
            d_pi[i, j] = 2.0 * diff / (n * n_act)
    return -lam * total_q / n + total_bc / (n * n_act)


def td3bc_actor_loss(q_pi, pi, actions, alpha=2.5):
    """TD3+BC's actor loss: q_pi (B,) = Q1(s, pi(s)); pi, actions (B, A); alpha > 0 (2.5).
    Returns (loss, dloss/dq_pi (B,), dloss/dpi (B, A)), lambda held constant."""
    q_pi = check_array("td3bc_actor_loss q_pi", q_pi, ndim=1)
    pi = check_array("td3bc_actor_loss pi", pi, ndim=2, shape=(q_pi.shape[0], None))
    actions = check_array("td3bc_actor_loss actions", actions, ndim=2, shape=pi.shape)
    check_same_dtype("td3bc_actor_loss", q_pi, pi, actions)
    check_range("alpha", alpha, 0.0, low_open=True)
    if not np.abs(q_pi).sum() > 0:
        raise ValueError("td3bc_actor_loss: every Q1(s, pi(s)) is 0, so lambda = alpha / mean|Q| is undefined")
    d_q, d_pi = np.empty_like(q_pi), np.empty_like(pi)
    return float(td3bc_actor_loss_kernel(q_pi, pi, actions, alpha, d_q, d_pi)), d_q, d_pi
