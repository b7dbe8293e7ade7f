"""Run every tutorial notebook top to bottom, in quick mode, and require its own checks to pass.

Convention for tutorials/*.ipynb (picked up here automatically by glob):
  * the first code cell reads ``QUICK = os.environ.get("GDE_REF_QUICK") == "1"`` and shrinks its loops;
  * the last code cell asserts properties of the notebook's results (a gradient-check error, a loss
    that went down, ...) and then prints "All checks passed". A failed assertion is a failed cell,
    so this test checks what the tutorial teaches, not only that it runs;
  * the committed file has no outputs (small, diff-able).
"""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="tutorial tests need the test extras: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="tutorial tests need the test extras: pip install -e '.[test]'")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
CELL_TIMEOUT = 600          # seconds per cell
CHECKS_PASSED = "All checks passed"


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def stdout_of(cell):
    return "".join(out.get("text", "") for out in cell.outputs
                   if out.output_type == "stream" and out.get("name") == "stdout")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_tutorial_runs_in_quick_mode_and_its_checks_pass(path, monkeypatch):
    # the kernel is a child process: it inherits this environment
    monkeypatch.setenv("GDE_REF_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{path.name}: a cell raised\n{err}", pytrace=False)

    cells = code_cells(nb)
    not_run = [i for i, cell in enumerate(cells) if cell.execution_count is None]
    assert not not_run, f"{path.name}: code cells {not_run} were not executed"
    assert CHECKS_PASSED in stdout_of(cells[-1]), (
        f"{path.name}: the last code cell must assert the notebook's results and print {CHECKS_PASSED!r}; "
        f"it printed {stdout_of(cells[-1])!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_tutorial_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    with_outputs = [i for i, cell in enumerate(code_cells(nb)) if cell.outputs or cell.execution_count]
    assert not with_outputs, (f"{path.name}: code cells {with_outputs} have stored outputs; clear them "
                              f"(jupyter nbconvert --clear-output --inplace {path.name})")
