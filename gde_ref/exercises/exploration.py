"""Exercises on GDE's exploration loss (Eq. 5, Gaussian and categorical) and the discrete CQL penalty, checked
against ``gde_ref.losses``."""
import numpy as np

from gde_ref.exercises._core import Exercise, LossSpec, check_loss
from gde_ref.losses.baselines import cql_penalty
from gde_ref.losses.equations import gde_exploration_loss, gde_exploration_loss_discrete
from gde_ref.nn.distributions import categorical_kl, gaussian_kl, softmax

B, A, K = 5, 3, 4


# ------------------------------------------------------------------------------------------------
# Eq. 5, Gaussian policies
# ------------------------------------------------------------------------------------------------
def _gauss_cases():
    rng = np.random.default_rng(5)

    def case(rho, n=B, same=False):
        mean_b, log_std_b = np.tanh(rng.normal(size=(n, A))), rng.uniform(-1.5, 0.0, A)
        mean_t, log_std_t = (mean_b.copy(), log_std_b.copy()) if same else (
            np.tanh(rng.normal(size=(n, A))), rng.uniform(-1.5, 0.0, A))
        return dict(q_pi=rng.normal(size=n), mean_b=mean_b, log_std_b=log_std_b, mean_t=mean_t,
                    log_std_t=log_std_t, kl_weight=rho)
    return [("random batch, rho = 0.3", case(0.3), B, True),
            ("rho = 1.5", case(1.5), B, True),
            ("rho = 0 (no teacher term)", case(0.0), B, True),
            ("teacher equal to the exploration policy (KL = 0)", case(0.3, same=True), B, True),
            ("one state", case(0.3, n=1), 1, True)]


def _kl_mean(inputs, teacher_first=True):
    t = (inputs["mean_t"], inputs["log_std_t"])
    b = (inputs["mean_b"], inputs["log_std_b"])
    p, q = (t, b) if teacher_first else (b, t)
    return float(np.mean(gaussian_kl(p[0], p[1], q[0], q[1])[0]))


def _gauss_variants(inputs, ref):
    loss, d_q, d_mean, d_ls = ref
    rho = inputs["kl_weight"]
    kl = _kl_mean(inputs)
    out = [("your KL is KL(pi_b || pi_t): Eq. 5 uses KL(pi_t || pi_b), the teacher first "
            "(it makes pi_b cover the teacher's actions).",
            (loss - rho * kl + rho * _kl_mean(inputs, teacher_first=False), d_q, None, None)),
           ("the Q term has the wrong sign: the exploration policy maximises Q, so Eq. 5 is -mean Q + rho KL.",
            (loss + 2 * np.mean(inputs["q_pi"]), -d_q, d_mean, d_ls))]
    if rho != 1.0:
        out.append(("the KL term is not multiplied by rho = kl_weight: Eq. 5 is -mean Q + rho mean KL.",
                    gde_exploration_loss(inputs["q_pi"], inputs["mean_b"], inputs["log_std_b"], inputs["mean_t"],
                                         inputs["log_std_t"], 1.0)))
    return out


GAUSS = LossSpec(
    "eq5", "gde_exploration_loss", ("loss", "d_q_pi", "d_mean_b", "d_log_std_b"),
    {"d_q_pi": "q_pi", "d_mean_b": "mean_b", "d_log_std_b": "log_std_b"}, gde_exploration_loss,
    "dL/dq_pi = -1 / B; with sigma = exp(log_std), dKL(t || b)/dmu_b = (mu_b - mu_t) / sigma_b^2 and "
    "dKL/dlog sigma_b = 1 - (sigma_t^2 + (mu_t - mu_b)^2) / sigma_b^2, each times rho / B (log_std_b's summed over "
    "the batch).",
    variants=_gauss_variants,
    hints={"d_q_pi": {"sign": "d_q_pi has the wrong sign: the loss is -mean Q, so dL/dQ_i = -1 / B."},
           "d_log_std_b": {"shape": "d_log_std_b has shape {got} but should have shape {want}: log_std_b is one "
                                    "vector shared by every state, so sum the per-state gradients over the batch.",
                           "1/B": "d_log_std_b is B times too small: sum rho / B * dKL_i/dlog_std_b over the "
                                  "batch (each state adds its share), do not average it once more."}})


def check_eq5(student):
    """Check ``gde_exploration_loss(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight)`` (Eq. 5, Gaussian)."""
    return check_loss(GAUSS, student, _gauss_cases())


# ------------------------------------------------------------------------------------------------
# Eq. 5, categorical policies
# ------------------------------------------------------------------------------------------------
def _discrete_cases():
    rng = np.random.default_rng(6)

    def case(rho, n=B, k=K, offset=0.0, same=False):
        logits_b = rng.normal(size=(n, k)) + offset
        logits_t = logits_b.copy() if same else rng.normal(size=(n, k)) + offset
        return dict(q_all=rng.normal(size=(n, k)), logits_b=logits_b, logits_t=logits_t, kl_weight=rho)
    return [("random batch, rho = 0.3", case(0.3), B, True),
            ("rho = 2", case(2.0), B, True),
            ("rho = 0 (no teacher term)", case(0.0), B, True),
            ("teacher equal to the exploration policy", case(0.3, same=True), B, True),
            ("logits near 1000 (softmax must not overflow)", case(0.3, offset=1000.0), B, False),
            ("one action", case(0.3, k=1), B, True),
            ("one state", case(0.3, n=1), 1, True)]


def _discrete_variants(inputs, ref):
    loss, d_logits = ref
    q, zb, zt, rho = inputs["q_all"], inputs["logits_b"], inputs["logits_t"], inputs["kl_weight"]
    n = q.shape[0]
    pi_b, pi_t = softmax(zb), softmax(zt)
    kl_tb, kl_bt = categorical_kl(zt, zb)[0].mean(), categorical_kl(zb, zt)[0].mean()
    expected_q = np.sum(pi_b * q, axis=1, keepdims=True)
    out = [("your KL is KL(pi_b || pi_t): Eq. 5 uses KL(pi_t || pi_b) = sum_a pi_t (log pi_t - log pi_b).",
            (loss - rho * kl_tb + rho * kl_bt, None)),
           ("d_logits_b misses the baseline of the softmax derivative: d E_pi_b[Q] / dz_a = pi_a (Q_a - E_pi_b[Q]), "
            "not pi_a Q_a.", (loss, d_logits - pi_b * expected_q / n)),
           ("the Q term has the wrong sign: the exploration policy maximises E_pi_b[Q], so Eq. 5 is "
            "-mean E[Q] + rho KL.", (loss + 2 * np.mean(expected_q), d_logits + 2 * pi_b * (q - expected_q) / n)),
           ("the KL gradient has the wrong sign: d KL(pi_t || pi_b) / dz_b = pi_b - pi_t.",
            (loss, d_logits - 2 * rho * (pi_b - pi_t) / n))]
    if rho != 1.0:
        out.append(("the KL term is not multiplied by rho = kl_weight: Eq. 5 is -mean E[Q] + rho mean KL.",
                    gde_exploration_loss_discrete(q, zb, zt, 1.0)))
    return out


DISCRETE = LossSpec(
    "eq5_discrete", "gde_exploration_loss_discrete", ("loss", "d_logits_b"), {"d_logits_b": "logits_b"},
    gde_exploration_loss_discrete,
    "with pi = softmax(z), dL/dz_b = [-pi_b (Q - sum_a pi_b Q) + rho (pi_b - pi_t)] / B.",
    variants=_discrete_variants)


def check_eq5_discrete(student):
    """Check ``gde_exploration_loss_discrete(q_all, logits_b, logits_t, kl_weight) -> (loss, d_logits_b)``."""
    return check_loss(DISCRETE, student, _discrete_cases())


# ------------------------------------------------------------------------------------------------
# the discrete CQL penalty
# ------------------------------------------------------------------------------------------------
def _cql_cases():
    rng = np.random.default_rng(7)

    def case(alpha, n=B, k=K, offset=0.0, actions=None):
        acts = rng.integers(0, k, n) if actions is None else np.asarray(actions, np.int64)
        return dict(q_all=rng.normal(size=(n, k)) + offset, actions=acts, alpha=alpha)
    return [("random batch, alpha = 5", case(5.0), B, True),
            ("alpha = 0.5, repeated actions", case(0.5, actions=[1, 1, 1, 0, 0]), B, True),
            ("Q values near 1000 (logsumexp must not overflow)", case(1.0, offset=1000.0), B, False),
            ("alpha = 0", case(0.0), B, True),
            ("one action", case(2.0, k=1), B, True),
            ("one state", case(5.0, n=1), 1, True)]


def _cql_variants(inputs, ref):
    loss, d_q = ref
    q, acts, alpha = inputs["q_all"], inputs["actions"], inputs["alpha"]
    n, rows = q.shape[0], np.arange(q.shape[0])
    onehot = np.zeros_like(q)
    onehot[rows, acts] = 1.0
    top = np.argmax(q, axis=1)
    top_hot = np.zeros_like(q)
    top_hot[rows, top] = 1.0
    out = [("the penalty is missing -Q(s, a_i), the dataset action's value: alpha mean_i [logsumexp_a Q(s_i, a) "
            "- Q(s_i, a_i)] (its gradient has -alpha / B at the taken action).",
            (loss + alpha * np.mean(q[rows, acts]), d_q + alpha * onehot / n)),
           ("you used max_a Q: CQL's penalty uses the soft maximum logsumexp_a Q (its gradient is the softmax).",
            (alpha * np.mean(q[rows, top] - q[rows, acts]), alpha * (top_hot - onehot) / n)),
           ("the data term must use the dataset action a_i, not the greedy action argmax_a Q.",
            cql_penalty(q, top, alpha))]
    if alpha != 1.0:
        out.append(("the penalty is not multiplied by alpha: alpha mean_i [logsumexp_a Q - Q(s_i, a_i)].",
                    cql_penalty(q, acts, 1.0)))
    return out


CQL = LossSpec("cql_penalty", "cql_penalty", ("penalty", "d_q_all"), {"d_q_all": "q_all"}, cql_penalty,
               "dL/dQ(s_i, a) = alpha / B (softmax(Q(s_i, .))_a - 1[a = a_i]).", variants=_cql_variants)


def check_cql_penalty(student):
    """Check ``cql_penalty(q_all, actions, alpha) -> (penalty, d_q_all)`` against ``gde_ref.losses.cql_penalty``."""
    return check_loss(CQL, student, _cql_cases())


EXERCISES = [
    Exercise("eq5", "gde_exploration_loss",
             "gde_exploration_loss(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight) -> "
             "(loss, d_q_pi, d_mean_b, d_log_std_b)", "GDE's exploration loss, Gaussian policies", "Eq. 5",
             "Eq. 5: loss = -mean_i q_pi_i + rho mean_i KL(pi_t(.|s_i) || pi_b(.|s_i)), rho = kl_weight >= 0, "
             "between diagonal Gaussians: mean_b, mean_t (B, A), log_std_b, log_std_t (A,) shared by all states. "
             "Return (loss, d_q_pi (B,), d_mean_b (B, A), d_log_std_b (A,)).", check_eq5),
    Exercise("eq5_discrete", "gde_exploration_loss_discrete",
             "gde_exploration_loss_discrete(q_all, logits_b, logits_t, kl_weight) -> (loss, d_logits_b)",
             "GDE's exploration loss, categorical policies (the maze)", "Eq. 5",
             "Eq. 5 with pi = softmax(logits): loss = -mean_i sum_a pi_b(a|s_i) Q(s_i, a) + rho mean_i "
             "KL(pi_t || pi_b); q_all, logits_b, logits_t (B, K); q_all gets no gradient. "
             "Return (loss, d_logits_b (B, K)). Keep the softmax stable for large logits.", check_eq5_discrete),
    Exercise("cql_penalty", "cql_penalty", "cql_penalty(q_all, actions, alpha) -> (penalty, d_q_all)",
             "the discrete CQL penalty (Kumar et al., 2020)", "CQL baseline, B.3",
             "penalty = alpha mean_i [logsumexp_a Q(s_i, a) - Q(s_i, a_i)]; q_all (B, K), actions (B,) int, "
             "alpha >= 0. Return (penalty, d_q_all (B, K)). Keep logsumexp stable for large Q.",
             check_cql_penalty),
]
