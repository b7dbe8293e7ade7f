"""Move the 5-seed hopper-medium runs of figures/hopper_medium_protocol_v2/ into the table1-medium sweep.

Those runs were made by the same code path and settings the sweep uses (laptop preset, the corrected
protocol, seed S fine-tunes the IQL offline agent of seed S; the redesign since was checked bit for bit),
so the sweep need not run them again. This copies each run directory into the sweep's layout and records
where it came from; a fine-tune's ``offline_agent`` is pointed at the copied agent (the same bytes) and
the old path kept as ``adopted_from``. Idempotent: a directory already in place is left alone.

    python figures/table1_medium/adopt_hopper.py /work/runs /work/sweeps/table1-medium
"""
import filecmp
import json
import os
import shutil
import sys

ALGOS = ("offline", "iql", "oniql", "reiql", "rnd", "gde")


def adopt(src, out, seeds=range(5)):
    for seed in seeds:
        old_agent = os.path.join(src, "pretrained", f"hopper-medium-laptop-seed{seed}")
        agent = os.path.join(out, "pretrained", f"hopper-medium-iql-laptop-seed{seed}")
        if not os.path.isdir(agent):
            shutil.copytree(old_agent, agent)
            with open(os.path.join(agent, "summary.json")) as f:
                summary = json.load(f)
            config = {"dataset": "hopper-medium", "backbone": "iql", "seed": seed, "steps": summary["steps"],
                      "preset": "laptop", "adopted_from": old_agent}
            with open(os.path.join(agent, "config.json"), "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
        assert filecmp.cmp(os.path.join(old_agent, "offline.npz"), os.path.join(agent, "offline.npz"), shallow=False)
        for algo in ALGOS:
            old_run = os.path.join(src, "ft", f"{algo}-s{seed}")
            run = os.path.join(out, "runs", "hopper-medium", "iql", algo, f"seed{seed}")
            if os.path.isdir(run):
                continue
            shutil.copytree(old_run, run)
            path = os.path.join(run, "config.json")
            with open(path) as f:
                config = json.load(f)
            assert config["offline_agent"] == os.path.join(old_agent, "offline.npz"), config["offline_agent"]
            assert (config["algo"], config["seed"], config["preset"]) == (algo, seed, "laptop")
            config.update(offline_agent=os.path.join(agent, "offline.npz"), adopted_from=old_run,
                          backbone=config.get("backbone", "iql"))
            with open(path, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    adopt(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
