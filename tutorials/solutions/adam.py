"""Solution to exercise adam (tutorial 00, section 5): one bias-corrected Adam step, in place, in plain NumPy."""
import numpy as np


def adam_step(params, grads, state, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8):
    g = np.asarray(grads)
    state.t[0] += 1                                    # t counts the steps: t = 1 at the first one
    t = int(state.t[0])
    state.m *= beta1                                   # m <- beta1 m + (1 - beta1) g, in place
    state.m += (1.0 - beta1) * g
    state.v *= beta2                                   # v <- beta2 v + (1 - beta2) g^2, in place
    state.v += (1.0 - beta2) * g * g
    m_hat = state.m / (1.0 - beta1**t)                 # bias corrections
    v_hat = state.v / (1.0 - beta2**t)
    params -= lr * m_hat / (np.sqrt(v_hat) + eps)      # in place: the caller's array moves
