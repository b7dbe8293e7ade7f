"""Exercises with checkers for the course: one per equation of the paper, the engine and Algorithm 1's bookkeeping.

A student writes one function (its signature is in ``show NAME``) and a checker runs it on random inputs and edge
cases, compares its values and gradients with the package's own implementation and with float64 central
differences, and says what is wrong in words to act on::

    from gde_ref.exercises import check
    result = check("eq2", expectile_loss)      # a Result: passed (bool), messages (list of str)
    print(result)

or, outside Jupyter::

    python -m gde_ref.exercises list
    python -m gde_ref.exercises show eq2
    python -m gde_ref.exercises check eq2 my_solution.py     # exit 0: passed, 1: not yet, 2: usage error

The checkers hold no solutions: the expected values come from ``gde_ref.losses``, ``gde_ref.nn``,
``gde_ref.data`` and ``gde_ref.finetune``.
"""
from gde_ref.exercises import algorithm, engine, equations, exploration
from gde_ref.exercises._core import Exercise, Result

EXERCISES = {ex.name: ex for module in (engine, equations, exploration, algorithm) for ex in module.EXERCISES}

__all__ = ["EXERCISES", "Exercise", "Result", "check", "exercise"]


def exercise(name):
    """The Exercise called ``name``; KeyError naming the known ones otherwise."""
    try:
        return EXERCISES[name]
    except KeyError:
        raise KeyError(f"unknown exercise {name!r}; the exercises are: {', '.join(EXERCISES)}") from None


def check(name, student):
    """Run exercise ``name``'s checker on the function ``student``; returns a Result (truthy when it passed)."""
    return exercise(name).check(student)
