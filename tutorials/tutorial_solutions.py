"""Load an exercise's solution in the tests' quick mode, so the tutorials run in CI with their stubs unfilled.

``load_solution(name, fallback)`` returns the function of ``solutions/NAME.py`` (next to this file) when that
folder exists and ``GDE_REF_QUICK=1``; otherwise it returns ``fallback``, the student's own function. A
teacher hands out the notebooks without ``solutions/``: the students' stubs are then always what is checked.
"""
import importlib.util
import os
from pathlib import Path

SOLUTIONS = Path(__file__).resolve().parent / "solutions"


def load_solution(name, fallback):
    path = SOLUTIONS / f"{name}.py"
    if os.environ.get("GDE_REF_QUICK") != "1" or not path.is_file():
        return fallback
    spec = importlib.util.spec_from_file_location(f"_tutorial_solution_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, fallback.__name__)
