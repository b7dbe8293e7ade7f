"""``gde-ref report``: the results table's numbers from run directories, grouping, and bad input."""
import csv
import json

import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.experiments.report import group_runs, report

COLUMNS = ["env_step", "eval_return", "normalized_score", "teacher_score", "teacher_swapped", "kl_weight",
           "q_mean", "critic_loss", "actor_loss", "explore_loss"]


def fake_run(folder, algo, seed, final, curve, n_step=1, dataset="hopper-medium", swaps=0, action_temperature=1.0):
    """A run directory as gde-ref finetune writes it, with chosen numbers."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"algo": algo, "seed": seed, "dataset": dataset, "n_step": n_step,
                                                    "action_temperature": action_temperature}))
    (folder / "summary.json").write_text(json.dumps({"algo": algo, "dataset": dataset, "seed": seed, "env_steps": 100,
                                                     "final_normalized_score": final, "teacher_swaps": swaps}))
    with open(folder / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for k, score in enumerate(curve):
            writer.writerow({**{c: "nan" for c in COLUMNS}, "env_step": 50 * (k + 1), "normalized_score": score})
    return str(folder)


def test_table_has_each_seed_and_the_mean_and_population_std(tmp_path):
    runs = [fake_run(tmp_path / f"gde{s}", "gde", s, x, [1, 2], swaps=s) for s, x in enumerate([10.0, 20.0, 60.0])]
    runs += [fake_run(tmp_path / f"on{s}", "oniql", s, x, [1, 2]) for s, x in enumerate([5.0, 7.0])]
    runs += [fake_run(tmp_path / "n3", "gde", 0, 1.0, [1, 2], n_step=3)]
    runs += [fake_run(tmp_path / "t05", "oniql", 0, 3.0, [1, 2], action_temperature=0.5)]  # Fig. 2d: its own row
    table = report(runs, str(tmp_path / "out"))
    scores = np.array([10.0, 20.0, 60.0])
    assert f"| hopper-medium | gde | 0, 1, 2 | 10.0, 20.0, 60.0 | **{scores.mean():.1f} ± {scores.std():.1f}** | 0, 1, 2 |" in table
    assert "| hopper-medium | oniql | 0, 1 | 5.0, 7.0 | **6.0 ± 1.0** | - |" in table
    assert "| gde, n=3 |" in table and "| hopper-medium | oniql, t=0.5 | 0 | 3.0 |" in table
    assert table.index("oniql") < table.index("| gde |"), "methods in the paper's order"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {row["method"]: row["final_normalized_score"] for row in saved}["gde"] == [10.0, 20.0, 60.0]
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    assert (tmp_path / "out" / "results.md").read_text() == table


def test_curves_are_cut_to_the_shortest_seed(tmp_path):
    runs = [fake_run(tmp_path / "a", "gde", 0, 1.0, [1, 2, 3]), fake_run(tmp_path / "b", "gde", 1, 1.0, [1, 2])]
    groups = group_runs(runs)
    assert [len(rows) for _, _, rows in groups[("hopper-medium", "gde")]] == [3, 2]
    report(runs, str(tmp_path / "out"))  # a shorter (unfinished-looking) log must not break the figure


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a finished fine-tuning run" in err and "summary.json" in err and len(err.strip().splitlines()) == 1
    twice = [fake_run(tmp_path / "x", "gde", 0, 1.0, [1]), fake_run(tmp_path / "y", "gde", 0, 2.0, [1])]
    with pytest.raises(ValueError, match="share a seed"):
        report(twice, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing written for bad input"
