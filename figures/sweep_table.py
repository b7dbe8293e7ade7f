"""The README's table of a sweep: one row per method, one column per dataset, mean +- sample std over seeds
(with the number of seeds), and the paper's figure beside it where the paper has one.

    python figures/sweep_table.py FIG_DIR/results.json > FIG_DIR/table.md     (figures/collect_sweep.sh runs it)

The paper's figures (Tables 1 and 2: -v2 locomotion, 1M offline + 250k online steps, 5 seeds) are for the
reader's orientation only: ours are laptop-scale runs on our own datasets (see the README).
"""
import json
import sys

PAPER = {   # (method, dataset) -> the paper's Table 2 (offline, fromscratch, awac, iql, off2on, jsrl, qdagger, pex,
            # gde) and Table 1 (oniql, reiql, rnd, bpiql) figure
    ("offline", "halfcheetah-medium"): "47.2", ("offline", "hopper-medium"): "74.7",
    ("offline", "walker2d-medium"): "80.2", ("offline", "hopper-random"): "7.1",
    ("iql", "halfcheetah-medium"): "48.6", ("iql", "hopper-medium"): "71.7", ("iql", "walker2d-medium"): "79.3",
    ("iql", "hopper-random"): "12.3",
    ("oniql", "halfcheetah-medium"): "54.4", ("oniql", "hopper-medium"): "101.6", ("oniql", "walker2d-medium"): "82.1",
    ("oniql", "hopper-random"): "11.9",
    ("reiql", "halfcheetah-medium"): "81.6", ("reiql", "hopper-medium"): "79.7", ("reiql", "walker2d-medium"): "101.4",
    ("reiql", "hopper-random"): "57.4",
    ("rnd", "halfcheetah-medium"): "52.4", ("rnd", "hopper-medium"): "101.3", ("rnd", "walker2d-medium"): "83.9",
    ("rnd", "hopper-random"): "12.7",
    ("bpiql", "halfcheetah-medium"): "51.1", ("bpiql", "hopper-medium"): "58.2", ("bpiql", "walker2d-medium"): "71.2",
    ("bpiql", "hopper-random"): "11.4",
    ("fromscratch", "hopper-medium"): "82.7", ("fromscratch", "hopper-random"): "82.7",
    ("awac", "hopper-medium"): "59.3", ("awac", "hopper-random"): "36.6",
    ("iql-balanced", "hopper-medium"): "59.8 (Off2OnRL)", ("iql-balanced", "hopper-random"): "40.4 (Off2OnRL)",
    ("jsrl", "hopper-medium"): "41.9", ("jsrl", "hopper-random"): "16.0",
    ("qdagger", "hopper-medium"): "102.5", ("qdagger", "hopper-random"): "26.7",
    ("pex", "hopper-medium"): "98.1", ("pex", "hopper-random"): "18.9",
    ("gde", "halfcheetah-medium"): "75.7", ("gde", "hopper-medium"): "101.9", ("gde", "walker2d-medium"): "101.7",
    ("gde", "hopper-random"): "92.6",
}


def table(results):
    rows = results["tasks"]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["dataset"]): r for r in rows}
    lines = ["| method | " + " | ".join(f"{d} (paper)" for d in datasets) + " |",
             "|---|" + "---|" * len(datasets)]
    for m in methods:
        parts = []
        for d in datasets:
            r = cell.get((m, d))
            if r is None:
                ours = "-"
            elif len(r["seeds"]) == 1:
                ours = f"{r['mean']:.1f} (1)"
            else:
                ours = f"{r['mean']:.1f} ± {r['std']:.1f} ({len(r['seeds'])})"
            parts.append(f"{ours} ({PAPER.get((m, d), '-')})")
        lines.append(f"| {m} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(table(json.load(f)))
