"""``gde-ref report``: the results table's numbers from run directories, grouping, and bad input."""
import csv
import json

import numpy as np
import pytest

from scipy import stats

from gde_ref.cli import main
from gde_ref.experiments.finetune import LOG_COLUMNS
from gde_ref.experiments.report import group_runs, report, seed_statistics


def fake_run(folder, algo, seed, final, curve, n_step=1, dataset="hopper-medium", swaps=0, action_temperature=1.0,
             evaluation_stages=None, old_log=False, **settings):
    """A run directory as gde-ref finetune writes it, with chosen numbers: a report row per curve point
    (every 50 env steps, 40 of them exploration) and a stage row between two reports."""
    folder.mkdir(parents=True)
    stages = algo.startswith("gde") if evaluation_stages is None else evaluation_stages
    (folder / "config.json").write_text(json.dumps({"algo": algo, "seed": seed, "dataset": dataset, "n_step": n_step,
                                                    "action_temperature": action_temperature,
                                                    "evaluation_stages": stages, **settings}))
    (folder / "summary.json").write_text(json.dumps({"algo": algo, "dataset": dataset, "seed": seed, "env_steps": 100,
                                                     "final_normalized_score": final, "last_normalized_score": final,
                                                     "teacher_swaps": swaps}))
    columns = [c for c in LOG_COLUMNS if c != "kind"] if old_log else LOG_COLUMNS
    with open(folder / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for k, score in enumerate(curve):
            row = {**{c: "nan" for c in columns}, "env_step": 50 * k, "exploration_steps": 40 * k,
                   "normalized_score": score}
            writer.writerow(row if old_log else {**row, "kind": "report"})
            if not old_log:
                writer.writerow({**row, "kind": "stage", "normalized_score": -1000.0})
    return str(folder)


def test_seed_statistics_are_sample_std_and_a_bootstrap_ci():
    x = [10.0, 20.0, 60.0, 30.0, 35.0]
    st = seed_statistics(x)
    assert st["mean"] == 31.0 and np.isclose(st["std"], np.std(x, ddof=1))
    ci = stats.bootstrap((np.array(x),), np.mean, n_resamples=10_000, method="percentile",
                         rng=np.random.default_rng(0)).confidence_interval
    assert (st["ci_low"], st["ci_high"]) == (ci.low, ci.high)
    assert min(x) < st["ci_low"] < st["mean"] < st["ci_high"] < max(x)
    assert seed_statistics([5.0, 5.0, 5.0]) == {"mean": 5.0, "std": 0.0, "ci_low": 5.0, "ci_high": 5.0}
    one = seed_statistics([7.0])
    assert one["mean"] == 7.0 and np.isnan(one["std"]) and np.isnan(one["ci_low"])


def test_table_has_each_seed_the_mean_sample_std_and_ci(tmp_path):
    runs = [fake_run(tmp_path / f"gde{s}", "gde", s, x, [1, 2], swaps=s) for s, x in enumerate([10.0, 20.0, 60.0])]
    runs += [fake_run(tmp_path / f"on{s}", "oniql", s, x, [1, 2]) for s, x in enumerate([5.0, 7.0])]
    runs += [fake_run(tmp_path / "n3", "gde", 0, 1.0, [1, 2], n_step=3)]
    runs += [fake_run(tmp_path / "t05", "oniql", 0, 3.0, [1, 2], action_temperature=0.5)]  # Fig. 2d: its own row
    table = report(runs, str(tmp_path / "out"))
    st = seed_statistics([10.0, 20.0, 60.0])
    assert (f"| hopper-medium | gde | 0, 1, 2 | 10.0, 20.0, 60.0 | **30.0 ± {np.std([10, 20, 60], ddof=1):.1f}** | "
            f"[{st['ci_low']:.1f}, {st['ci_high']:.1f}] | 0, 1, 2 |") in table
    assert "| hopper-medium | oniql | 0, 1 | 5.0, 7.0 | **6.0 ± 1.4** | [5.0, 7.0] | - |" in table
    assert "| gde, n=3 |" in table and "| hopper-medium | oniql, t=0.5 | 0 | 3.0 |" in table
    assert table.index("oniql") < table.index("| gde |"), "methods in the paper's order"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    gde = {row["method"]: row for row in saved["tasks"]}["gde"]
    assert gde["final_normalized_score"] == [10.0, 20.0, 60.0] and gde["mean"] == 30.0 and gde["ci_low"] == st["ci_low"]
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    assert (tmp_path / "out" / "results.md").read_text() == table


def test_curves_are_cut_to_the_shortest_seed(tmp_path):
    runs = [fake_run(tmp_path / "a", "gde", 0, 1.0, [1, 2, 3]), fake_run(tmp_path / "b", "gde", 1, 1.0, [1, 2])]
    groups = group_runs(runs)
    assert [len(rows) for _, _, rows in groups[("hopper-medium", "gde")]] == [3, 2], "report rows only"
    assert all(row["kind"] == "report" for _, _, rows in groups[("hopper-medium", "gde")] for row in rows)
    report(runs, str(tmp_path / "out"))  # a shorter (unfinished-looking) log must not break the figure
    report(runs, str(tmp_path / "by-exploration"), x="exploration_steps")
    assert (tmp_path / "by-exploration" / "curves.png").stat().st_size > 0


def test_a_baseline_with_stages_gets_its_own_row_and_old_runs_are_refused(tmp_path):
    runs = [fake_run(tmp_path / "a", "oniql", 0, 1.0, [1]), fake_run(tmp_path / "b", "oniql", 0, 2.0, [1],
                                                                     evaluation_stages=True)]
    assert set(group_runs(runs)) == {("hopper-medium", "oniql"), ("hopper-medium", "oniql, stages")}
    old = fake_run(tmp_path / "old", "gde", 0, 1.0, [1], old_log=True)
    with pytest.raises(ValueError, match="before the reporting evaluation existed"):
        group_runs([old])


def test_bad_input_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a finished fine-tuning run" in err and "summary.json" in err and len(err.strip().splitlines()) == 1
    twice = [fake_run(tmp_path / "x", "gde", 0, 1.0, [1]), fake_run(tmp_path / "y", "gde", 0, 2.0, [1])]
    with pytest.raises(ValueError, match="share a seed"):
        report(twice, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "nothing written for bad input"


def test_runs_that_differ_in_a_setting_are_not_averaged(tmp_path):
    """Two gde seeds with different budgets (or rho) are two experiments: the report names what differs."""
    runs = [fake_run(tmp_path / "a", "gde", 0, 10.0, [1, 2], steps=50_000, kl_weight=0.3),
            fake_run(tmp_path / "b", "gde", 1, 20.0, [1, 2], steps=600, kl_weight=0.3)]
    with pytest.raises(ValueError, match=r"runs of gde on hopper-medium differ in steps \(50000 in .*a, 600 in .*b\)"):
        report(runs, str(tmp_path / "out"))
    other_rho = fake_run(tmp_path / "c", "gde", 1, 20.0, [1, 2], steps=50_000, kl_weight=1.0)
    with pytest.raises(ValueError, match="differ in kl_weight"):
        report([runs[0], other_rho], str(tmp_path / "out"))


def test_aggregate_across_datasets_is_the_iqm_of_every_run_and_gde_improvement(tmp_path):
    """Two datasets x (gde, oniql) x 4 seeds: the IQM pools all 8 runs of a method; P(gde > oniql) counts the
    pairs of seeds per dataset; a method missing on one dataset is left out of the aggregate."""
    scores = {("hopper-medium", "gde"): [60, 70, 80, 90], ("walker2d-medium", "gde"): [10, 20, 30, 40],
              ("hopper-medium", "oniql"): [55, 65, 75, 85], ("walker2d-medium", "oniql"): [0, 5, 6, 7]}
    runs = [fake_run(tmp_path / f"{d}-{a}-{s}", a, s, float(x), [1, 2], dataset=d)
            for (d, a), xs in scores.items() for s, x in enumerate(xs)]
    runs.append(fake_run(tmp_path / "rnd-only-hopper", "rnd", 0, 50.0, [1, 2]))
    table = report(runs, str(tmp_path / "out"))
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    agg = result["aggregate"]
    assert set(agg["methods"]) == {"gde", "oniql"} and agg["datasets"] == ["hopper-medium", "walker2d-medium"]
    gde = sorted([60, 70, 80, 90, 10, 20, 30, 40])
    assert agg["methods"]["gde"]["iqm"] == pytest.approx(np.mean(gde[2:6])) and agg["methods"]["gde"]["runs"] == 8
    pairs = [np.mean([x > y for x in scores[(d, "gde")] for y in scores[(d, "oniql")]])
             for d in ("hopper-medium", "walker2d-medium")]
    assert agg["probability_of_improvement"]["gde > oniql"]["probability"] == pytest.approx(np.mean(pairs))
    assert "| gde | 8 |" in table and "gde > oniql" in table and (tmp_path / "out" / "aggregate.png").exists()
    assert [t["method"] for t in result["tasks"]][:2] == ["oniql", "rnd"]   # the per-task rows are all kept
