"""What every checker shares: the result object, calling the student's function safely, comparing an answer
with the package's and naming the mistake, and a float64 central difference.

A checker never trusts a formula written here: the expected values come from the package's own functions
(``gde_ref.losses``, ``gde_ref.nn``, ``gde_ref.data``, ``gde_ref.finetune``). The *variants* a checker
builds (the reference with a flipped sign, without its 1/B, with another clip...) only serve to name a
mistake once an answer is already known to be wrong.
"""
import numpy as np

RTOL, ATOL = 1e-6, 1e-9            # answer vs the package, both float64
FD_EPS, FD_RTOL, FD_ATOL = 1e-6, 1e-5, 1e-7   # answer vs a central difference (error ~1e-9)


class Result:
    """What a checker returns: ``passed`` (bool) and ``messages`` (list of str), each one thing to fix (or,
    on a pass, what was checked). Truthy when passed; prints as a short report."""

    def __init__(self, name, passed, messages):
        self.name, self.passed, self.messages = name, bool(passed), list(messages)

    def __bool__(self):
        return self.passed

    def __str__(self):
        head = f"{self.name}: {'passed' if self.passed else 'not yet'}"
        return "\n".join([head] + [f"  - {m}" for m in self.messages])

    __repr__ = __str__


class Report:
    """Collects problems across the cases of one checker; a problem already reported (in any case) is kept
    once, with the first case that showed it."""

    def __init__(self, name):
        self.name, self.problems, self._seen, self.cases, self.stopped = name, [], set(), 0, False

    def fail(self, case, text):
        if text not in self._seen:
            self._seen.add(text)
            self.problems.append(f"[{case}] {text}" if case else text)

    def stop(self, case, text):
        """A problem that makes the other cases pointless (wrong return type, a stub)."""
        self.fail(case, text)
        self.stopped = True

    def result(self, ok_text):
        if self.problems:
            return Result(self.name, False, self.problems)
        return Result(self.name, True, [f"Matches: {ok_text} ({self.cases} cases)."])


def copy_inputs(inputs):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}


def call(fn, fn_name, *args, **kwargs):
    """(True, output) or (False, a message naming what went wrong)."""
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        return False, f"{fn_name} raises NotImplementedError: fill in the lines at YOUR CODE HERE."
    except Exception as err:  # the student's code: any error is reported, not raised
        return False, f"calling your {fn_name} raised {type(err).__name__}: {err}"
    return True, out


def unpack(out, fn_name, names):
    """The student's return value as float64 arrays named ``names``, or a message saying what it should be."""
    want = "(" + ", ".join(names) + ")"
    if out is None:
        return None, f"{fn_name} returned None: return {want} (fill in YOUR CODE HERE)."
    if len(names) > 1:
        if not isinstance(out, (tuple, list)) or len(out) != len(names):
            got = f"{len(out)} values" if isinstance(out, (tuple, list)) else f"a {type(out).__name__}"
            return None, f"{fn_name} must return the tuple {want}, got {got}."
    else:
        out = (out,)
    arrays = []
    for name, value in zip(names, out):
        try:
            arrays.append(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):
            return None, f"{fn_name}'s {name} must be a number or an array of numbers, got {type(value).__name__}."
    return arrays, None


def close(a, b, rtol=RTOL, atol=ATOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and bool(np.all(np.isfinite(a))) and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def _factor_text(label, c, batch, hints):
    """Words for "``label`` is c times the expected value", or None when c is no simple factor."""
    named = [(-1.0, "sign"), (2.0, "2"), (0.5, "1/2")]
    if batch > 2:   # with B = 1 (or 2) a factor B cannot be told from a sign or a 2
        named += [(float(batch), "B"), (1.0 / batch, "1/B"), (-float(batch), "-B")]
    for value, key in named:
        if np.isclose(c, value, rtol=1e-6):
            if key in hints:
                return hints[key]
            return {"sign": f"{label} has the wrong sign: check the sign of each term, and which way round each "
                            "difference is taken.",
                    "B": f"{label} is off by a factor of B = {batch}: did you forget the 1/B of the mean?",
                    "1/B": f"{label} is B = {batch} times too small: did you divide by B twice (or average "
                           "where the equation sums)?",
                    "2": f"{label} is twice the expected value: look for a factor 2 that is counted twice.",
                    "1/2": f"{label} is half the expected value: did you drop the 2 of d(x^2)/dx = 2x?",
                    "-B": f"{label} has the wrong sign AND is off by a factor of B = {batch}: check the sign and "
                          "the 1/B of the mean."}[key]
    return None


def explain(label, got, ref, batch=1, variants=(), rows=(), hints=None):
    """Why ``got`` is not ``ref`` in words a student can act on, or None when they agree.

    variants: (text, value) pairs, the reference as a known mistake would compute it, tried in order;
    rows: (mask over axis 0, text) groups: if every wrong row lies in one group, say so;
    hints: factor name ("sign", "B", "1/B", "2", "1/2", "-B", "shape") -> a better sentence than the generic one.
    """
    hints = hints or {}
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        if "shape" in hints:
            return hints["shape"].format(got=got.shape, want=ref.shape)
        text = f"{label} has shape {got.shape} but should have shape {ref.shape}"
        if got.ndim == 2 and got.shape == ref.shape[::-1]:
            text += ": it looks transposed"
        elif got.ndim == ref.ndim + 1 and got.shape[1:] == ref.shape:
            text += ": sum it over the batch axis"
        elif got.ndim == 0 and ref.ndim:
            text += ": return one value per entry, not their total"
        elif ref.ndim == 0:
            text += ": return one number (the mean over the batch)"
        return text + "."
    if not np.all(np.isfinite(got)):
        return (f"{label} contains NaN or inf where the expected values are finite: look for an exp that "
                "overflows (subtract the row max first) or a division by zero.")
    if close(got, ref):
        return None
    for text, value in variants:
        if value is not None and np.shape(value) == got.shape and close(got, value):
            return text
    if not np.any(got) and np.any(ref):
        return f"{label} is all zeros: is it filled in, and returned (not a fresh np.zeros)?"
    if np.any(ref):
        c = float(np.vdot(got, ref) / np.vdot(ref, ref))
        if close(got, c * ref):
            text = _factor_text(label, c, batch, hints)
            return text or (f"{label} is {c:.4g} times the expected value: look for a missing or an extra "
                            "constant factor.")
    if got.ndim >= 1 and got.shape[0] > 1 and rows:
        bad = ~np.all(np.isclose(got, ref, rtol=RTOL, atol=ATOL).reshape(got.shape[0], -1), axis=1)
        for mask, text in rows:
            mask = np.asarray(mask, bool)
            if mask.any() and (~mask).any() and not (bad & ~mask).any():
                return f"{label} is right except {text}."
    worst = np.unravel_index(int(np.argmax(np.abs(got - ref))), got.shape) if got.ndim else ()
    where = f" at index {tuple(int(i) for i in worst)}" if got.ndim else ""
    return (f"{label} is wrong{where}: yours {got[worst]:.6g}, expected {ref[worst]:.6g} "
            f"(largest difference {np.abs(got - ref).max():.3g}).")


def central_difference(f, x, eps=FD_EPS):
    """(f(x + eps e_i) - f(x - eps e_i)) / (2 eps) for every entry of the float64 array ``x`` (a new array;
    ``f`` gets perturbed copies, so ``x`` is never changed)."""
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (f(plus) - f(minus)) / (2.0 * eps)
    return grad


def match_variant(outputs, variants, ref=None):
    """The text of the first variant whose every given value (None: any) matches ``outputs``, or None. With
    ``ref``, a variant that gives the reference's own values (it cannot tell the mistake apart here) is skipped."""
    for text, values in variants:
        if ref is not None and all(v is None or (np.shape(v) == np.shape(r) and close(r, v))
                                   for r, v in zip(ref, values)):
            continue
        if all(v is None or (np.shape(v) == np.shape(o) and close(o, v)) for o, v in zip(outputs, values)):
            return text
    return None


class LossSpec:
    """One loss exercise: the student's ``function`` returns (loss, grad...) named ``outputs``; ``wrt`` maps each
    gradient to the input it differentiates; ``reference(**inputs)`` is the package's function; ``hint`` says
    what to differentiate when the loss is right and a gradient is not; ``variants(inputs, ref)`` gives
    (text, (loss, grads...)) tuples for whole-answer mistakes, ``array_variants(inputs, ref)`` per-output
    (text, value) lists, ``rows(inputs)`` per-output row groups, ``hints`` per-output factor sentences."""

    def __init__(self, name, function, outputs, wrt, reference, hint, variants=None, array_variants=None,
                 rows=None, hints=None):
        self.name, self.function, self.outputs, self.wrt = name, function, outputs, wrt
        self.reference, self.hint = reference, hint
        self.variants = variants or (lambda inputs, ref: [])
        self.array_variants = array_variants or (lambda inputs, ref: {})
        self.rows = rows or (lambda inputs: {})
        self.hints = hints or {}


def check_loss(spec, student, cases):
    """Run ``student`` on every case (title, inputs, batch size, numeric: whether to take central differences)
    and compare its loss and gradients with the package's function and with central differences of its own
    loss. Returns a Result."""
    report = Report(spec.name)
    fn = spec.function
    for title, inputs, batch, numeric in cases:
        if report.stopped:
            break
        report.cases += 1
        ref = [np.asarray(r, np.float64) for r in spec.reference(**copy_inputs(inputs))]
        given = copy_inputs(inputs)
        ok, out = call(student, fn, *given.values())   # positional, in the documented order
        if not ok:
            report.stop(title, out)
            break
        got, problem = unpack(out, fn, spec.outputs)
        if problem:
            report.stop(title, problem)
            break
        for key, value in inputs.items():
            if isinstance(value, np.ndarray) and not np.array_equal(given[key], value):
                report.fail(title, f"your {fn} changed its input {key} in place: work on a copy.")
        whole = match_variant(got, spec.variants(copy_inputs(inputs), ref), ref)
        if whole is not None:
            report.fail(title, whole)
            continue
        per_array, rows = spec.array_variants(copy_inputs(inputs), ref), spec.rows(inputs)
        wrong = {}
        for name, g, r in zip(spec.outputs, got, ref):
            text = explain(name, g, r, batch, per_array.get(name, ()), rows.get(name, ()), spec.hints.get(name))
            if text:
                wrong[name] = text
                report.fail(title, text)
        if numeric and got[0].ndim == 0:
            _check_numeric(report, spec, student, title, inputs, got, wrong)
    return report.result(f"your {fn} agrees with the package's {fn} and with central differences of its loss")


def _check_numeric(report, spec, student, title, inputs, got, wrong):
    """Compare each gradient with a central difference of the student's own loss (float64)."""
    loss_right = spec.outputs[0] not in wrong
    for name, g in zip(spec.outputs[1:], got[1:]):
        x = spec.wrt[name]

        def loss_at(value, x=x):
            moved = copy_inputs(inputs)
            moved[x] = value
            return float(np.asarray(student(*moved.values())[0], np.float64))
        try:
            numeric = central_difference(loss_at, inputs[x])
        except Exception as err:  # the student's function failed on a perturbed input
            report.fail(title, f"your {spec.function} failed on a slightly perturbed {x}: {type(err).__name__}: {err}")
            return
        consistent = g.shape == numeric.shape and close(g, numeric, FD_RTOL, FD_ATOL)
        if loss_right and name in wrong:
            report.fail(title, f"the loss is right but {name} is not (a central difference of your loss gives "
                               f"the expected {name}): {spec.hint}")
        elif loss_right and not consistent:
            report.fail(title, f"{name} does not match a central difference of your loss: {spec.hint}")
        elif not loss_right and consistent and name in wrong:
            report.fail(title, f"{name} is the derivative of your own loss, so the gradient follows the loss: "
                               "fix the loss first.")


class Exercise:
    """One exercise: its ``name`` (for ``check NAME``), the ``function`` the student writes, its ``signature``,
    ``what`` it is (one line), the ``paper``'s place for it, the full ``doc`` and the ``checker``."""

    def __init__(self, name, function, signature, what, paper, doc, checker):
        self.name, self.function, self.signature, self.what = name, function, signature, what
        self.paper, self.doc, self.checker = paper, doc, checker

    def check(self, student):
        return self.checker(student)
