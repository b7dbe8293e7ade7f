"""``python -m gde_ref.exercises list | show NAME | check NAME FILE``.

Exit status: 0 when the check passed (or list/show ran), 1 when it did not, 2 on a usage error (unknown
exercise, missing file, the function not found in it), with one line saying which.
"""
import difflib
import importlib.util
import pathlib
import sys
import textwrap

from gde_ref.exercises import EXERCISES

USAGE = "usage: python -m gde_ref.exercises list | show NAME | check NAME path/to/solution.py"


def _usage(text):
    print(f"error: {text}", file=sys.stderr)
    return 2


def _unknown(name):
    near = difflib.get_close_matches(name, EXERCISES, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return _usage(f"unknown exercise {name!r}{hint}; `python -m gde_ref.exercises list` shows them all")


def _list():
    width = max(len(n) for n in EXERCISES)
    fn_width = max(len(ex.function) for ex in EXERCISES.values())
    paper_width = max(len(ex.paper) for ex in EXERCISES.values())
    print(f"{'name':<{width}}  {'function':<{fn_width}}  {'paper':<{paper_width}}  what")
    for ex in EXERCISES.values():
        print(f"{ex.name:<{width}}  {ex.function:<{fn_width}}  {ex.paper:<{paper_width}}  {ex.what}")
    return 0


def _show(name):
    ex = EXERCISES[name]
    print(f"{ex.name}: {ex.what} ({ex.paper})\n\n    def {ex.signature}\n\n{textwrap.fill(ex.doc, 100)}")
    return 0


def _load(path, function):
    """(the function, None) or (None, exit status after printing why)."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None, _usage(f"{'not a file' if path.exists() else 'no such file'}: {path}")
    spec = importlib.util.spec_from_file_location(f"_gde_ref_solution_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the student's file: report it as a failed check
        print(f"not yet: importing {path} raised {type(err).__name__}: {err}")
        return None, 1
    finally:
        sys.path.pop(0)
    fn = getattr(module, function, None)
    if not callable(fn):
        found = sorted(k for k, v in vars(module).items() if callable(v) and getattr(v, "__module__", "") ==
                       module.__name__)
        extra = f" (it defines {', '.join(found)})" if found else ""
        return None, _usage(f"{path} has no function {function}{extra}: the exercise asks for {function}")
    return fn, None


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        return _usage(f"no command; {USAGE}")
    if args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "list" and not rest:
        return _list()
    if command == "show" and len(rest) == 1:
        return _show(rest[0]) if rest[0] in EXERCISES else _unknown(rest[0])
    if command == "check" and len(rest) == 2:
        name, path = rest
        if name not in EXERCISES:
            return _unknown(name)
        fn, status = _load(path, EXERCISES[name].function)
        if fn is None:
            return status
        result = EXERCISES[name].check(fn)
        print(result)
        return 0 if result.passed else 1
    return _usage(f"bad arguments {' '.join(args)!r}; {USAGE}")


if __name__ == "__main__":
    sys.exit(main())
