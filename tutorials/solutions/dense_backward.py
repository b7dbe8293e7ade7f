"""Solution to exercise dense_backward (tutorial 00, section 1): a dense layer's backward, in plain NumPy."""
import numpy as np


def dense_backward(x, weight, delta):
    x, weight, delta = np.asarray(x), np.asarray(weight), np.asarray(delta)
    d_weight = x.T @ delta           # dL/dW_kj = sum_i x_ik delta_ij: (n_in, B)(B, n_out), shaped like W
    d_bias = delta.sum(axis=0)       # b is added to every row: its gradient sums over the batch
    dx = delta @ weight.T            # dL/dx_ik = sum_j delta_ij W_kj: (B, n_out)(n_out, n_in), shaped like x
    return d_weight, d_bias, dx
