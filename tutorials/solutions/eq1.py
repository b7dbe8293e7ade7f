"""Solution to exercise eq1 (tutorial 01a, section 3): Eq. 1, the TD loss, in plain NumPy."""
import numpy as np


def td_loss(q, target):
    q, target = np.asarray(q), np.asarray(target)
    error = q - target                        # the target y is held fixed: no gradient
    loss = np.mean(error**2)
    d_q = 2.0 * error / q.shape[0]            # d/dq of the mean: the 2 of the square and the 1/B
    return float(loss), d_q
