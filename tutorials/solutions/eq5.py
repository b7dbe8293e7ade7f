"""Solution to exercise eq5 (tutorial 02, section 4): Eq. 5, GDE's exploration loss, in plain NumPy."""
import numpy as np


def gde_exploration_loss(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight):
    q_pi, mean_b, mean_t = np.asarray(q_pi), np.asarray(mean_b), np.asarray(mean_t)
    log_std_b, log_std_t = np.asarray(log_std_b), np.asarray(log_std_t)
    n = q_pi.shape[0]
    var_b = np.exp(2.0 * log_std_b)                       # (A,), broadcast over the batch
    diff = mean_t - mean_b                                # (B, A)
    # KL(pi_t || pi_b) between diagonal Gaussians, per state: sum over the action dimensions
    ratio = (np.exp(2.0 * log_std_t) + diff**2) / var_b  # (sigma_t^2 + (mu_t - mu_b)^2) / sigma_b^2
    kl = np.sum(log_std_b - log_std_t + 0.5 * ratio - 0.5, axis=1)
    loss = -np.mean(q_pi) + kl_weight * np.mean(kl)
    d_q_pi = np.full_like(q_pi, -1.0 / n)
    d_mean_b = kl_weight / n * (-diff / var_b)            # dKL/dmu_b = (mu_b - mu_t) / sigma_b^2
    d_log_std_b = kl_weight / n * np.sum(1.0 - ratio, axis=0)   # dKL/dlog sigma_b = 1 - ratio, summed over states
    return float(loss), d_q_pi, d_mean_b, d_log_std_b
