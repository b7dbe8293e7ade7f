"""Input validation for the public wrappers around kernels.

Kernels never check their inputs (a check inside a compiled loop costs time and gives a poor
message); the Python wrapper in front of each one calls these helpers first, so that a wrong shape or
dtype stops with one sentence naming the argument, what was expected, and how to fix it.
"""
import numpy as np

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(name, x, ndim=None, dtype=None, shape=None, floating=True):
    """Return ``x`` as a C-contiguous array after checking its rank, dtype and shape.

    ``shape`` may contain None for "any size"; ``dtype`` None accepts float32 or float64 when
    ``floating`` (the default). Raises TypeError for a wrong type/dtype, ValueError for a wrong shape.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}; wrap it with np.asarray(...)")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {x.shape}"
                         + ("; add a batch axis with x[None]" if ndim == 2 and x.ndim == 1 else ""))
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {x.dtype.name}; "
                        f"convert it with .astype(np.{np.dtype(dtype).name})")
    if dtype is None and floating and x.dtype not in FLOATS:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype.name}; convert it with .astype(np.float32)")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            dims = ["B" if s is None else str(s) for s in shape]
            want = "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {want}, got {x.shape}")
    return np.ascontiguousarray(x)


def check_same_dtype(name, *arrays):
    """All arrays share one floating dtype (kernels are compiled per dtype and never mix them)."""
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: all arrays must share one dtype, got {sorted(d.name for d in dtypes)}; "
                        "cast them with .astype(np.float32) (training) or np.float64 (gradient checks)")
    return arrays[0].dtype


def check_batch(name, batch, *arrays_and_names):
    """Every (label, array) pair has ``batch`` rows."""
    for label, a in arrays_and_names:
        if a.shape[0] != batch:
            raise ValueError(f"{name}: {label} has {a.shape[0]} rows but the batch has {batch}; "
                             "pass arrays from the same batch")


def check_range(name, value, low=None, high=None, low_open=False, high_open=False):
    """A scalar hyper-parameter lies in its documented range."""
    value = float(value)
    bad = (not np.isfinite(value)
           or (low is not None and (value < low or (low_open and value == low)))
           or (high is not None and (value > high or (high_open and value == high))))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low if low is not None else '-inf'}, "
                         f"{high if high is not None else 'inf'}{hi}, got {value}")
    return value


def restore_arrays(what, targets, saved):
    """Copy every array of ``saved`` named in ``targets`` into it, in place (compiled records that hold the
    arrays stay valid). A missing name or another shape is one error saying what the file was made for."""
    for name, target in targets.items():
        got = saved.get(name)
        if got is None or np.shape(got) != target.shape:
            raise ValueError(f"{what}'s {name} is {'missing' if got is None else np.shape(got)}, this needs "
                             f"{target.shape}: it was saved by another algorithm, backbone or network size")
        target[...] = got


def sub_state(saved, prefix):
    """The entries of a saved state under ``prefix`` (e.g. "agent/"), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in saved.items() if k.startswith(prefix)}
