"""Build executed copies of the tutorials, to read with their outputs without running them.

    python tutorials/build_executed.py                 # every tutorial, full mode, into docs/tutorials/
    python tutorials/build_executed.py OUT --quick     # the tests' quick mode (seconds; exercises' solutions loaded)
    python tutorials/build_executed.py --only 01a 02   # only the notebooks whose names contain 01a or 02

Each ``tutorials/*.ipynb`` runs top to bottom in a fresh kernel (nbclient, as tests/test_tutorials.py runs them)
and is written, with its outputs and figures, to ``OUT/NAME.ipynb`` (GitHub and nbviewer render it), and to
``OUT/NAME.html`` when nbconvert is installed (``pip install nbconvert``; without it only the .ipynb copies are
written). ``OUT`` defaults to ``docs/tutorials/``, which git ignores: the committed notebooks stay without
outputs. Full mode takes the budgets the notebooks' text describes (minutes per notebook); in full mode the
exercises' stubs are left as a student gets them, so their checkers print "not yet". A notebook whose cell
raises is still written (up to the failing cell) and the command exits with status 1.
"""
import argparse
import os
import sys
import time
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent
DEFAULT_OUT = TUTORIALS.parent / "docs" / "tutorials"


def build(path, out, quick, timeout, html_exporter):
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    # the kernel is a child process: it inherits this environment
    if quick:
        os.environ["GDE_REF_QUICK"] = "1"
    else:
        os.environ.pop("GDE_REF_QUICK", None)
    os.environ.pop("MPLBACKEND", None)          # the kernel's inline backend embeds the figures
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=timeout,
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    t0 = time.perf_counter()
    error = None
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        error = err
    seconds = time.perf_counter() - t0
    nb.metadata["gde_ref_build"] = {"mode": "quick" if quick else "full", "seconds": round(seconds, 1),
                                    "built": time.strftime("%Y-%m-%d %H:%M:%S"), "passed": error is None}
    written = [out / path.name]
    nbformat.write(nb, written[0])
    if html_exporter is not None:
        body, _ = html_exporter.from_notebook_node(nb)
        written.append(out / f"{path.stem}.html")
        written[-1].write_text(body, encoding="utf-8")
    return error, seconds, written


def main(argv=None):
    parser = argparse.ArgumentParser(description="Execute the tutorials and write copies with their outputs.")
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT.relative_to(TUTORIALS.parent)}/)")
    parser.add_argument("--quick", action="store_true", help="the tests' quick mode (GDE_REF_QUICK=1)")
    parser.add_argument("--only", nargs="+", metavar="PART", help="only notebooks whose file name contains PART")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    parser.add_argument("--no-html", action="store_true", help="write only the executed .ipynb copies")
    args = parser.parse_args(argv)
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError:
        sys.exit("building the tutorials needs nbformat, nbclient and ipykernel: pip install -e '.[test]'")
    html_exporter = None
    if not args.no_html:
        try:
            from nbconvert import HTMLExporter
            html_exporter = HTMLExporter()
        except ImportError:
            print("nbconvert is not installed: writing the executed .ipynb copies only "
                  "(pip install nbconvert for HTML pages as well)")

    notebooks = sorted(TUTORIALS.glob("*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if any(part in p.name for part in args.only)]
    if not notebooks:
        sys.exit(f"no tutorial matches {args.only}")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for path in notebooks:
        print(f"{path.name}: running ({'quick' if args.quick else 'full'} mode) ...", flush=True)
        error, seconds, written = build(path, args.out, args.quick, args.timeout, html_exporter)
        status = "ok" if error is None else "A CELL RAISED (written up to it)"
        print(f"{path.name}: {status}, {seconds:.0f} s -> {', '.join(str(w) for w in written)}", flush=True)
        if error is not None:
            failed.append(path.name)
            print(str(error)[-3000:], file=sys.stderr)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
