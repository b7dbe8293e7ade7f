"""Adam (Kingma & Ba, 2015) on flat parameter vectors, and Polyak averaging for targets.

The optimiser state sits beside the parameters: first moment ``m``, second moment ``v`` (both the
size of the parameter vector) and the step count ``t`` (an int64 array of one element, so that a
kernel can advance it in place).
"""
import numpy as np

from gde_ref.nn.checks import check_array, check_range, check_same_dtype
from gde_ref.nn.kernels import kernel

__all__ = ["AdamState", "adam_step", "polyak_update", "adam_kernel", "polyak_kernel", "ADAM_DEFAULTS"]

ADAM_DEFAULTS = (0.9, 0.999, 1e-8)   # (beta1, beta2, eps): Kingma & Ba's defaults, as in IQL's optax.adam


class AdamState:
    """Adam's state for one flat parameter vector: m, v (zeros) and t = 0."""

    def __init__(self, n_params, dtype=np.float32):
        self.m = np.zeros(n_params, dtype)
        self.v = np.zeros(n_params, dtype)
        self.t = np.zeros(1, np.int64)

    def copy(self):
        twin = AdamState(0, self.m.dtype)
        twin.m, twin.v, twin.t = self.m.copy(), self.v.copy(), self.t.copy()
        return twin


@kernel
def adam_kernel(params, grads, m, v, t, lr, betas_eps):
    """One bias-corrected Adam step, in place on params, m, v and t; betas_eps = (beta1, beta2, eps).

        t <- t + 1
        m <- beta1 m + (1 - beta1) g
        v <- beta2 v + (1 - beta2) g^2
        params <- params - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)

    The scalars are first cast to the parameters' dtype, so that a float32 network is updated in
    float32 arithmetic throughout (mixing in float64 scalars would convert every element and stop the
    loop from vectorising); the bias corrections are computed in float64 before the cast.
    """
    beta1, beta2, eps = betas_eps
    t[0] += 1
    c = np.empty(8, params.dtype)
    c[0], c[1], c[2], c[3] = beta1, 1.0 - beta1, beta2, 1.0 - beta2
    c[4], c[5] = 1.0 / (1.0 - beta1 ** t[0]), 1.0 / (1.0 - beta2 ** t[0])
    c[6], c[7] = lr, eps
    b1, one_minus_b1, b2, one_minus_b2, inv_bias1, inv_bias2, step, eps_ = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    for i in range(params.shape[0]):
        g = grads[i]
        m_i = b1 * m[i] + one_minus_b1 * g
        v_i = b2 * v[i] + one_minus_b2 * g * g
        m[i] = m_i
        v[i] = v_i
        params[i] -= step * (m_i * inv_bias1) / (np.sqrt(v_i * inv_bias2) + eps_)


@kernel
def polyak_kernel(target, source, polyak):
    """target <- (1 - polyak) target + polyak source, in place (soft target update), in target's dtype."""
    c = np.empty(2, target.dtype)
    c[0], c[1] = 1.0 - polyak, polyak
    keep, take = c[0], c[1]
    for i in range(target.shape[0]):
        target[i] = keep * target[i] + take * source[i]


def adam_step(params, grads, state, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8):
    """Checked wrapper of ``adam_kernel``: updates ``params`` and ``state`` in place."""
    params = _check_flat("adam_step params", params)
    grads = check_array("adam_step grads", grads, ndim=1, shape=(params.size,))
    if state.m.shape != params.shape or state.v.shape != params.shape or state.t.shape != (1,):
        raise ValueError(f"adam_step: the Adam state is for {state.m.size} parameters but params has "
                         f"{params.size}; create it with AdamState(params.size, params.dtype)")
    check_same_dtype("adam_step", params, grads, state.m, state.v)
    check_range("adam lr", lr, 0.0)
    check_range("adam beta1", beta1, 0.0, 1.0, high_open=True)
    check_range("adam beta2", beta2, 0.0, 1.0, high_open=True)
    check_range("adam eps", eps, 0.0, low_open=True)
    adam_kernel(params, grads, state.m, state.v, state.t, lr, (beta1, beta2, eps))


def polyak_update(target, source, polyak):
    """Checked wrapper of ``polyak_kernel``: target <- (1 - polyak) target + polyak source."""
    target = _check_flat("polyak_update target", target)
    source = check_array("polyak_update source", source, ndim=1, shape=(target.size,))
    check_same_dtype("polyak_update", target, source)
    check_range("polyak", polyak, 0.0, 1.0)
    polyak_kernel(target, source, polyak)


def _check_flat(name, x):
    """In-place updates need the caller's own contiguous 1-D float vector (no silent copy)."""
    check_array(name, x, ndim=1)
    if not (x.flags.c_contiguous and x.flags.writeable):
        raise ValueError(f"{name} must be a writeable, contiguous vector (it is updated in place); "
                         "pass the network's own parameter vector, not a strided view or a copy")
    return x
