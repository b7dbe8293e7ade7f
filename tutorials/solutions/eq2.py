"""Solution to exercise eq2 (tutorial 02, section 2): Eq. 2, IQL's expectile loss for V, in plain NumPy."""
import numpy as np


def expectile_loss(q, v, expectile):
    u = np.asarray(q) - np.asarray(v)                    # residuals Q - V; q is a target (no gradient)
    weight = np.where(u < 0, 1.0 - expectile, expectile)  # |tau - 1(u < 0)|
    loss = np.mean(weight * u**2)
    d_v = -2.0 * weight * u / u.shape[0]                 # d/dv of the mean: the 1/B and the minus of u = q - v
    return float(loss), d_v
