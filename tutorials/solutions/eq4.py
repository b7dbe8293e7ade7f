"""Solution to exercise eq4 (tutorial 02, section 3): Eq. 4, advantage-weighted regression, in plain NumPy."""
import numpy as np


def awr_loss(log_prob, q, v, temperature, max_weight=100.0):
    log_prob = np.asarray(log_prob)
    weight = np.minimum(np.exp(temperature * (np.asarray(q) - np.asarray(v))), max_weight)   # constants
    loss = -np.mean(weight * log_prob)
    d_log_prob = -weight / log_prob.shape[0]
    return float(loss), d_log_prob
