"""Finite-difference gradient checks shared by the test files.

Import it from any test module in ``tests/`` as ``from gradcheck import numerical_grad, assert_grad_close``
(pytest puts ``tests/`` on ``sys.path`` because the directory has no ``__init__.py``).

The convention: ``f`` is a callable with NO arguments that returns a scalar loss and reads the array
``x`` being differentiated, directly or through a view (``x`` may be ``net.params`` or a slice of it, or
an input array a closure refers to). ``x`` is perturbed IN PLACE, one element at a time, and restored
exactly afterwards. Work in float64: central differences with ``eps = 1e-6`` are then accurate to about
1e-9 (truncation ~eps^2, rounding ~1e-16 |f| / eps), so a 1e-6 tolerance separates right from wrong.

Example::

    mean = rng.standard_normal((4, 3))
    loss = lambda: float(np.sum(weights * gaussian_log_prob(mean, log_std, x)[0]))
    assert_grad_close(loss, mean, analytic_d_mean)
"""
import numpy as np

__all__ = ["numerical_grad", "assert_grad_close"]


def numerical_grad(f, x, eps=1e-6):
    """Central-difference gradient (f(x + eps e_i) - f(x - eps e_i)) / (2 eps) of the scalar ``f()``.

    ``x``: a writeable float64 array (any shape, may be a view) that ``f`` reads. Returns a new float64
    array of ``x``'s shape. ``x`` holds its original values again when this returns (even on error).
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError("numerical_grad needs a float64 numpy array (float32 is too coarse for it)")
    if not x.flags.writeable:
        raise ValueError("numerical_grad perturbs x in place, so x must be writeable")
    grad = np.zeros(x.shape, np.float64)
    for index in np.ndindex(x.shape):
        original = x[index]
        try:
            x[index] = original + eps
            f_plus = float(f())
            x[index] = original - eps
            f_minus = float(f())
        finally:
            x[index] = original
        grad[index] = (f_plus - f_minus) / (2.0 * eps)
    return grad


def assert_grad_close(f, x, analytic, eps=1e-6, rtol=1e-6, atol=1e-7):
    """Assert that ``analytic`` equals ``numerical_grad(f, x, eps)`` within float64 tolerances.

    Also rejects an all-zero numerical gradient, which would make the comparison vacuous.
    """
    numeric = numerical_grad(f, x, eps)
    assert np.any(np.abs(numeric) > 10 * atol), "numerical gradient is all zero: the check would prove nothing"
    analytic = np.asarray(analytic, np.float64)
    assert analytic.shape == numeric.shape, f"gradient shape {analytic.shape} != {numeric.shape}"
    np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol,
                               err_msg="analytic gradient differs from central differences")
