"""Results tables and learning-curve figures from fine-tuning run directories: ``gde-ref report``.

    gde-ref report runs/ft-halfcheetah-* --out figures/finetune_halfcheetah_medium

Each run directory is what ``gde-ref finetune`` writes (``summary.json``, ``log.csv``). Runs are grouped
by (dataset, algo, n_step, action temperature, evaluation protocol); a group's score is computed from its
seeds' ``final_normalized_score`` (the mean of each run's last 10 reporting evaluations, B.1): the mean,
the sample standard deviation (ddof 1) and a 95% bootstrap confidence interval of the mean
(``scipy.stats.bootstrap``, percentile method, 10,000 resamples, seeded). Writes ``results.md`` (the
table), ``results.json`` (every seed's number and the statistics) and ``curves.png`` (the reporting
evaluations' normalized score vs environment steps, or vs exploration steps with ``x="exploration_steps"``,
mean and std over seeds, one panel per dataset) into ``out``.

A baseline run with GDE's evaluation stages (``--evaluation-stages``, an equal-data comparison) gets its
own row, labelled ", stages". Runs made before the reporting evaluation existed (log.csv without a
``kind`` column) are refused: re-run them, as is a group whose runs differ in any setting but the seed
(``GROUP_SETTINGS``: a mixed group would average different experiments).

Across datasets (``experiments.stats``): for the methods run on every dataset of the report, the IQM of all
(dataset, seed) scores with a stratified bootstrap CI, performance profiles, and the probability of
improvement of GDE over each other method of its backbone; ``results.md``'s second table, ``aggregate.png``
and ``results.json``'s "aggregate".
"""
import csv
import json
import os
from collections import defaultdict

import numpy as np
from scipy import stats

from gde_ref import plots
from gde_ref.checkpoint import write_json, write_text
from gde_ref.experiments import stats as across
from gde_ref.finetune.algos import ALGOS as ALGO_ORDER
from gde_ref.finetune.algos import STAGE_ALGOS

X_AXES = ("env_step", "exploration_steps")
# the settings runs must share to be one group (besides dataset and label): everything but the seed
GROUP_SETTINGS = ("backbone", "preset", "steps", "eval_period", "eval_steps", "evaluation_stages",
                  "update_during_stages", "reset_optimizers", "report_period", "report_episodes", "kl_weight",
                  "n_step", "action_temperature", "buffer_size")
GROUP_DEFAULTS = {"backbone": "iql"}   # runs made before a setting existed had its default
CONFIDENCE = 0.95


def _number(text):
    return text if text in ("report", "stage") else float(text)


def read_run(path):
    """(config, summary, report rows) of one finished run directory; a clear error if it is not one."""
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
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if rows and "kind" not in rows[0]:
        raise ValueError(f"{path} was made before the reporting evaluation existed (its log.csv has no 'kind' "
                         "column): its score is not the paper's; re-run it with this version")
    return config, summary, [row for row in rows if row["kind"] == "report"]


def group_runs(paths):
    """{(dataset, label): [(seed, summary, rows), ...]} with label the algo, plus ", n=K" for n-step K > 1 and
    ", t=T" for an action temperature T != 1 (Fig. 2d)."""
    groups, settings = defaultdict(list), {}
    for path in paths:
        config, summary, rows = read_run(path)
        backbone = config.get("backbone", "iql")
        label = ("" if backbone == "iql" else f"{backbone}:") + config["algo"]
        label += f", n={config['n_step']}" if config.get("n_step", 1) > 1 else ""
        label += f", t={config['action_temperature']:g}" if config.get("action_temperature", 1.0) != 1.0 else ""
        label += ", stages" if config.get("evaluation_stages") and config["algo"] not in STAGE_ALGOS else ""
        groups[(config["dataset"], label)].append((config["seed"], summary, rows))
        _check_same_settings(settings, (config["dataset"], label), config, path)
    for runs in groups.values():
        runs.sort(key=lambda run: run[0])
        seeds = [run[0] for run in runs]
        if len(set(seeds)) < len(seeds):
            raise ValueError(f"two runs of {runs[0][1]['algo']} on {runs[0][1]['dataset']} share a seed "
                             f"({seeds}): pass each run once")
    return dict(groups)


def _check_same_settings(seen, key, config, path):
    """Refuse a run whose settings differ from the first run of its group, naming what differs."""
    mine = {k: config.get(k, GROUP_DEFAULTS.get(k)) for k in GROUP_SETTINGS}
    first = seen.setdefault(key, (mine, path))
    differ = [k for k in GROUP_SETTINGS if first[0][k] != mine[k]]
    if differ:
        what = ", ".join(f"{k} ({first[0][k]} in {first[1]}, {mine[k]} in {path})" for k in differ)
        raise ValueError(f"runs of {key[1]} on {key[0]} differ in {what}: report them separately")


def _order(label):
    backbone, _, algo = label.split(",")[0].rpartition(":")
    return (backbone, ALGO_ORDER.index(algo) if algo in ALGO_ORDER else len(ALGO_ORDER), label)


def seed_statistics(scores, confidence=CONFIDENCE, seed=0):
    """{"mean", "std" (sample, ddof 1), "ci_low", "ci_high"} of per-seed scores: the CI is a bootstrap
    confidence interval of the mean (``scipy.stats.bootstrap``, percentile, 10,000 resamples, seeded).
    One seed: std and CI are NaN; seeds that all agree: the CI is that value."""
    x = np.asarray(scores, float)
    out = {"mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else float("nan")}
    if len(x) < 2:
        low = high = float("nan")
    elif np.all(x == x[0]):
        low = high = float(x[0])
    else:
        ci = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=10_000, method="percentile",
                             rng=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    return {**out, "ci_low": low, "ci_high": high}


def _scores(runs):
    return [s["final_normalized_score"] for _, s, _ in runs]


def results_table(groups):
    """Markdown: one row per (dataset, method) with each seed's final score, mean ± sample std, the 95%
    bootstrap CI of the mean, and GDE's teacher swaps."""
    lines = ["| dataset | method | seeds | final normalized score per seed | mean ± std | 95% CI | teacher swaps |",
             "|---|---|---|---|---|---|---|"]
    for dataset, label in sorted(groups, key=lambda key: (key[0], _order(key[1]))):
        runs = groups[(dataset, label)]
        scores = _scores(runs)
        st = seed_statistics(scores)
        swaps = [s["teacher_swaps"] for _, s, _ in runs]
        lines.append(f"| {dataset} | {label} | {', '.join(str(seed) for seed, _, _ in runs)} | "
                     f"{', '.join(f'{x:.1f}' for x in scores)} | **{st['mean']:.1f} ± {st['std']:.1f}** | "
                     f"[{st['ci_low']:.1f}, {st['ci_high']:.1f}] | "
                     f"{', '.join(map(str, swaps)) if label.split(',')[0].rpartition(':')[2] in STAGE_ALGOS else '-'} |")
    return "\n".join(lines) + "\n"


def curves_figure(groups, x="env_step"):
    """Normalized score of the reporting evaluations vs ``x`` (env steps, or exploration steps: GDE's budget
    without its evaluation stages), mean and std over seeds, one panel per dataset."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose from {', '.join(X_AXES)}")
    datasets = sorted({dataset for dataset, _ in groups})
    figures = []
    for dataset in datasets:
        curves = {}
        for (d, label) in sorted((k for k in groups if k[0] == dataset), key=lambda k: _order(k[1])):
            runs = groups[(d, label)]
            length = min(len(rows) for _, _, rows in runs)
            steps = [row[x] for row in runs[0][2][:length]]
            curves[label] = (steps, [[row["normalized_score"] for row in rows[:length]] for _, _, rows in runs])
        figures.append(plots.learning_curves(curves, xlabel=x.replace("_", " ").replace("env step", "environment steps"),
                                             ylabel="normalized score", title=f"fine-tuning on {dataset}"))
    return figures


def aggregate(groups):
    """Across datasets, for each method run on every dataset: the IQM with its stratified bootstrap CI, the
    performance profile, and GDE's probability of improvement over each other method of its backbone."""
    datasets = sorted({d for d, _ in groups})
    labels = sorted({label for _, label in groups if all((d, label) in groups for d in datasets)}, key=_order)
    by_task = {label: [_scores(groups[(d, label)]) for d in datasets] for label in labels}
    top = max(max(max(s) for s in scores) for scores in by_task.values()) if by_task else 100.0
    taus = np.linspace(0.0, max(100.0, np.ceil(top / 10) * 10), 101)
    out = {"datasets": datasets, "confidence": CONFIDENCE, "methods": {}, "probability_of_improvement": {},
           "profile_taus": taus.tolist()}
    for label in labels:
        out["methods"][label] = {**across.iqm_with_ci(by_task[label]),
                                 "profile": across.performance_profile(by_task[label], taus)}
    for label in labels:
        backbone, _, algo = label.split(",")[0].rpartition(":")
        if algo != "gde" or "," in label:
            continue
        for other in labels:
            if other != label and other.split(",")[0].rpartition(":")[0] == backbone:
                out["probability_of_improvement"][f"{label} > {other}"] = across.probability_of_improvement(
                    by_task[label], by_task[other])
    return out


def aggregate_table(agg):
    """Markdown: the IQM across datasets with its CI, then GDE's probabilities of improvement."""
    lines = [f"IQM over every (dataset, seed) of {', '.join(agg['datasets'])}, stratified bootstrap "
             f"{agg['confidence']:.0%} CI:", "", "| method | runs | IQM | CI |", "|---|---|---|---|"]
    lines += [f"| {label} | {m['runs']} | {m['iqm']:.1f} | [{m['ci_low']:.1f}, {m['ci_high']:.1f}] |"
              for label, m in agg["methods"].items()]
    if agg["probability_of_improvement"]:
        lines += ["", "| probability of improvement | P(X > Y) | CI |", "|---|---|---|"]
        lines += [f"| {pair} | {p['probability']:.2f} | [{p['ci_low']:.2f}, {p['ci_high']:.2f}] |"
                  for pair, p in agg["probability_of_improvement"].items()]
    return "\n".join(lines) + "\n"


def report(paths, out, x="env_step"):
    """Write results.md, results.json and curves.png (curves-DATASET.png for several datasets) into ``out``;
    ``x``: the curves' axis, "env_step" or "exploration_steps"."""
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}; choose from {', '.join(X_AXES)}")
    if not paths:
        raise ValueError("no run directories given: pass the RUN directories written by gde-ref finetune")
    groups = group_runs(paths)
    os.makedirs(out, exist_ok=True)
    agg = aggregate(groups)
    table = results_table(groups) + ("\n" + aggregate_table(agg) if agg["methods"] else "")
    write_text(os.path.join(out, "results.md"), table)
    if agg["methods"]:
        fig = plots.aggregate_figure({k: (m["iqm"], m["ci_low"], m["ci_high"]) for k, m in agg["methods"].items()},
                                     {k: m["profile"] for k, m in agg["methods"].items()}, agg["profile_taus"],
                                     title=f"across {', '.join(agg['datasets'])}")
        plots.save(fig, os.path.join(out, "aggregate.png"))
    write_json(os.path.join(out, "results.json"), {"aggregate": agg, "tasks": [
        {"dataset": dataset, "method": label, "seeds": [seed for seed, _, _ in runs],
         "final_normalized_score": _scores(runs), **seed_statistics(_scores(runs)), "confidence": CONFIDENCE,
         "last_normalized_score": [s["last_normalized_score"] for _, s, _ in runs],
         "teacher_swaps": [s["teacher_swaps"] for _, s, _ in runs], "env_steps": [s["env_steps"] for _, s, _ in runs]}
        for (dataset, label), runs in sorted(groups.items(), key=lambda item: (item[0][0], _order(item[0][1])))]})
    figures = curves_figure(groups, x)
    datasets = sorted({dataset for dataset, _ in groups})
    for dataset, fig in zip(datasets, figures):
        plots.save(fig, os.path.join(out, "curves.png" if len(datasets) == 1 else f"curves-{dataset}.png"))
    return table
