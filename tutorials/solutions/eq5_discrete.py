"""Solution to exercise eq5_discrete (tutorial 01b, section 2): Eq. 5 with categorical policies, in plain NumPy."""
import numpy as np


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)                  # stable for large logits
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def gde_exploration_loss_discrete(q_all, logits_b, logits_t, kl_weight):
    q_all, logits_b, logits_t = np.asarray(q_all), np.asarray(logits_b), np.asarray(logits_t)
    n = q_all.shape[0]
    log_b, log_t = _log_softmax(logits_b), _log_softmax(logits_t)
    pi_b, pi_t = np.exp(log_b), np.exp(log_t)
    expected_q = (pi_b * q_all).sum(axis=1)                  # E_{pi_b}[Q(s_i, .)], exact over the K actions
    kl = (pi_t * (log_t - log_b)).sum(axis=1)                # KL(pi_t || pi_b) per state
    loss = np.mean(-expected_q + kl_weight * kl)
    # d/dz of -sum_a pi_b Q is -pi_b (Q - E[Q]); d/dz of KL(pi_t || softmax z) is pi_b - pi_t
    d_logits_b = (-pi_b * (q_all - expected_q[:, None]) + kl_weight * (pi_b - pi_t)) / n
    return float(loss), d_logits_b
