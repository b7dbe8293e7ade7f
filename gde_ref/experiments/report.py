"""Results tables and learning-curve figures from fine-tuning run directories: ``gde-ref report``.

    gde-ref report runs/ft-halfcheetah-* --out figures/finetune_halfcheetah_medium

Each run directory is what ``gde-ref finetune`` writes (``summary.json``, ``log.csv``). Runs are grouped
by (dataset, algo, n_step); a group's final score is the mean and population std over its seeds of
``final_normalized_score`` (the reporting-only evaluation after the budget). Writes ``results.md`` (the
table), ``results.json`` (every seed's number) and ``curves.png`` (normalized score vs environment
steps, mean and std over seeds, one panel per dataset) into ``out``.
"""
import csv
import json
import os
from collections import defaultdict

import numpy as np

from gde_ref import plots
from gde_ref.checkpoint import write_json, write_text

ALGO_ORDER = ("offline", "iql", "oniql", "reiql", "rnd", "gde", "gde-no-exploit", "gde-no-explore", "gde-no-teacher")


def read_run(path):
    """(config, summary, rows) of one finished run directory; a clear error if it is not one."""
    files = {name: os.path.join(path, name) for name in ("config.json", "summary.json", "log.csv")}
    missing = [name for name, f in files.items() if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"{path} is not a finished fine-tuning run (missing {', '.join(missing)}): "
                                "pass directories written by gde-ref finetune")
    with open(files["config.json"]) as f:
        config = json.load(f)
    with open(files["summary.json"]) as f:
        summary = json.load(f)
    with open(files["log.csv"]) as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return config, summary, rows


def group_runs(paths):
    """{(dataset, label): [(seed, summary, rows), ...]} with label the algo, plus ", n=K" for n-step K > 1 and
    ", t=T" for an action temperature T != 1 (Fig. 2d)."""
    groups = defaultdict(list)
    for path in paths:
        config, summary, rows = read_run(path)
        label = config["algo"] + (f", n={config['n_step']}" if config.get("n_step", 1) > 1 else "")
        label += f", t={config['action_temperature']:g}" if config.get("action_temperature", 1.0) != 1.0 else ""
        groups[(config["dataset"], label)].append((config["seed"], summary, rows))
    for runs in groups.values():
        runs.sort(key=lambda run: run[0])
        seeds = [run[0] for run in runs]
        if len(set(seeds)) < len(seeds):
            raise ValueError(f"two runs of {runs[0][1]['algo']} on {runs[0][1]['dataset']} share a seed "
                             f"({seeds}): pass each run once")
    return dict(groups)


def _order(label):
    algo = label.split(",")[0]
    return (ALGO_ORDER.index(algo) if algo in ALGO_ORDER else len(ALGO_ORDER), label)


def results_table(groups):
    """Markdown: one row per (dataset, algo) with each seed's final score, mean ± std and teacher swaps."""
    lines = ["| dataset | method | seeds | final normalized score per seed | mean ± std | teacher swaps |",
             "|---|---|---|---|---|---|"]
    for dataset, label in sorted(groups, key=lambda key: (key[0], _order(key[1]))):
        runs = groups[(dataset, label)]
        scores = np.array([s["final_normalized_score"] for _, s, _ in runs])
        swaps = [s["teacher_swaps"] for _, s, _ in runs]
        lines.append(f"| {dataset} | {label} | {', '.join(str(seed) for seed, _, _ in runs)} | "
                     f"{', '.join(f'{x:.1f}' for x in scores)} | **{scores.mean():.1f} ± {scores.std():.1f}** | "
                     f"{', '.join(map(str, swaps)) if label.startswith('gde') else '-'} |")
    return "\n".join(lines) + "\n"


def curves_figure(groups):
    """Normalized score of the evaluation stages vs env steps, mean and std over seeds, one panel per dataset."""
    datasets = sorted({dataset for dataset, _ in groups})
    figures = []
    for dataset in datasets:
        curves = {}
        for (d, label) in sorted((k for k in groups if k[0] == dataset), key=lambda k: _order(k[1])):
            runs = groups[(d, label)]
            length = min(len(rows) for _, _, rows in runs)
            steps = [row["env_step"] for row in runs[0][2][:length]]
            curves[label] = (steps, [[row["normalized_score"] for row in rows[:length]] for _, _, rows in runs])
        figures.append(plots.learning_curves(curves, ylabel="normalized score", title=f"fine-tuning on {dataset}"))
    return figures


def report(paths, out):
    """Write results.md, results.json and curves.png (curves-DATASET.png for several datasets) into ``out``."""
    if not paths:
        raise ValueError("no run directories given: pass the RUN directories written by gde-ref finetune")
    groups = group_runs(paths)
    os.makedirs(out, exist_ok=True)
    table = results_table(groups)
    write_text(os.path.join(out, "results.md"), table)
    write_json(os.path.join(out, "results.json"), [
        {"dataset": dataset, "method": label, "seeds": [seed for seed, _, _ in runs],
         "final_normalized_score": [s["final_normalized_score"] for _, s, _ in runs],
         "teacher_swaps": [s["teacher_swaps"] for _, s, _ in runs], "env_steps": [s["env_steps"] for _, s, _ in runs]}
        for (dataset, label), runs in sorted(groups.items(), key=lambda item: (item[0][0], _order(item[0][1])))])
    figures = curves_figure(groups)
    datasets = sorted({dataset for dataset, _ in groups})
    for dataset, fig in zip(datasets, figures):
        plots.save(fig, os.path.join(out, "curves.png" if len(datasets) == 1 else f"curves-{dataset}.png"))
    return table
