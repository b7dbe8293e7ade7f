"""Sweeps: many fine-tuning runs in predictable directories, resumable (``gde-ref sweep``).

    spec = load_spec("sweeps/table1.toml")   # or load_spec(datasets="hopper-medium", algos="gde,oniql", seeds="0-4")
    jobs = plan(spec)                        # the offline agents, then the fine-tunes, each with its status
    print(format_plan(spec, jobs, workers=2))    # what --dry-run prints, with the estimated CPU time
    sweep_exec.run_sweep(spec)               # runs what is missing (executors: local, ray, slurm)

A SPEC is a small TOML file::

    datasets = ["hopper-medium", "walker2d-medium"]
    algos = ["gde", "oniql"]
    seeds = "0-4"                 # or [0, 2, 5], or "0,2,5"
    backbones = ["iql"]           # optional (default iql)
    preset = "laptop"             # optional (default laptop): the budgets of pretrain and finetune
    pretrain_steps = 100000       # optional (default: the preset's)
    out = "runs/sweep"            # optional here; --out overrides it
    [overrides]                   # optional: a grid over finetune's settings (OVERRIDES)
    kl_weight = [0.03, 0.3, 1.0]

Directories (under OUT): the offline agents at ``pretrained/DATASET-BACKBONE-PRESET-seedS`` (``-stepsN``
appended when ``pretrain_steps`` differs from the preset's), one per (dataset, backbone, seed) and shared
by every algo; the fine-tunes at ``runs/DATASET/BACKBONE/ALGO[__key=value...]/seedS``, the name listing
every override that applies to the algo (those it does not read are dropped for it: kl_weight for oniql,
say, so a grid never repeats a run). A run with summary.json is done, one with checkpoint.npz is resumed.
"""
import itertools
import json
import os

from gde_ref.agents.backbones import BACKBONES
from gde_ref.experiments.rundir import read_config
from gde_ref.finetune.algos import ALGOS, algo_row, runs_on

SPEC_KEYS = ("datasets", "algos", "seeds", "backbones", "preset", "pretrain_steps", "overrides", "out")
PRESET_NAMES = ("quick", "laptop", "paper")
# the settings of ``experiments.finetune.finetune`` a sweep may vary, with their type
OVERRIDES = {"kl_weight": float, "n_step": int, "action_temperature": float, "steps": int, "eval_period": int,
             "eval_steps": int, "report_period": int, "report_episodes": int, "reset_optimizers": bool,
             "evaluation_stages": bool}

# CPU seconds per 1,000 steps (pretraining: gradient steps; fine-tuning: env steps, its evaluations included)
# of one run on one core with one BLAS thread, measured on the project's 2-core machine (AMD EPYC, 2 vCPUs):
# * IQL pretraining: ~8.5 min per 100k steps -> 5.1 s.
# * IQL fine-tuning at the laptop preset, per 50k env steps: gde ~8.5 min -> 10.2 s; naive, oniql, iql, reiql,
#   rnd ~4.5 min -> 5.4 s; offline (env steps and evaluations, no updates) ~1 min -> 1.2 s.
# * TD3+BC: its updates are ~1.4x faster than IQL's (gde-ref bench): pretraining 5.1 / 1.4; a fine-tune
#   costs offline's 1.2 s plus IQL's update share divided by 1.4 (gde 1.2 + 9.0 / 1.4, naive 1.2 + 4.2 / 1.4).
# * CQL: ~15x slower than IQL per update (31 state-action pairs per critic sample): the same arithmetic with
#   x15 (an upper estimate for gde, whose exploration step does not pay the penalty).
# * AWAC: ~1.1x IQL per update (four more critic and two more actor forward passes, no value network): the
#   median ratio of interleaved blocks of 50 float32 updates (batch 256, hopper sizes) was 1.05 and 1.10 in two
#   runs, TD3+BC / IQL 0.74-0.80 in the same runs. The same arithmetic with x1.1 (its ``awac`` algo counts as
#   naive).
# * Cal-QL: CQL's update plus the floor (a max and a mask over the B 3M sampled Q-values of each twin): four
#   interleaved blocks of 5 float32 updates each (batch 256, hopper sizes, M = 10) took 0.093-0.100 s per
#   update for calql and 0.092-0.099 s for cql, i.e. within noise, ~1%; the returns-to-go add ~0.3 s per 1M
#   offline transitions once and ~2 us per online env step. CQL's numbers x1.01 (its ``calql`` algo counts as
#   naive).
SECONDS_PER_1K = {
    ("iql", "pretrain"): 5.1, ("iql", "gde"): 10.2, ("iql", "naive"): 5.4, ("iql", "offline"): 1.2,
    ("td3bc", "pretrain"): 3.6, ("td3bc", "gde"): 7.6, ("td3bc", "naive"): 4.2, ("td3bc", "offline"): 1.2,
    ("cql", "pretrain"): 76.5, ("cql", "gde"): 136.2, ("cql", "naive"): 64.2, ("cql", "offline"): 1.2,
    ("awac", "pretrain"): 5.6, ("awac", "gde"): 11.1, ("awac", "naive"): 5.8, ("awac", "offline"): 1.2,
    ("calql", "pretrain"): 77.3, ("calql", "gde"): 137.5, ("calql", "naive"): 64.8, ("calql", "offline"): 1.2,
}
# A baseline's cost relative to the naive fine-tune of its backbone, measured alone on one day
# (figures/baselines_timing/: each method's laptop run time over oniql's); the rest cost about naive's.
ALGO_COST = {"pex": 1.50, "iql-balanced": 1.65, "bpiql": 1.36, "iql-per": 1.27, "reiql": 1.27, "jsrl": 1.09,
             "qdagger": 0.88, "fromscratch": 0.88, "sac-preload": 1.06, "iql-filter": 0.97}


# ------------------------------------------------------------------------------------------------
# the spec
# ------------------------------------------------------------------------------------------------
def parse_seeds(text):
    """Seeds from ``"0-4"``, ``"0,2,5"``, ``"0-2,7"``, an int or a list of ints; sorted, each once."""
    if isinstance(text, int) and not isinstance(text, bool):
        items = [text]
    elif isinstance(text, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in text):
        items = list(text)
    elif isinstance(text, str):
        items = []
        for part in text.replace(" ", "").split(","):
            low, dash, high = part.partition("-")
            if not (low.isdigit() and (not dash or high.isdigit())) or (dash and int(high) < int(low)):
                raise ValueError(f"seeds: cannot read {text!r}; write them as 0-4 (a range), 0,2,5 (a list) or both")
            items += list(range(int(low), int(high if dash else low) + 1))
    else:
        raise ValueError(f"seeds: cannot read {text!r}; write them as 0-4 (a range), 0,2,5 (a list) or [0, 2, 5]")
    if any(s < 0 for s in items) or len(set(items)) < len(items):
        raise ValueError(f"seeds: {text!r} has a negative or repeated seed; give each seed once, >= 0")
    return sorted(items)


def _names(key, value):
    """A list of names from a list or a comma-separated string, non-empty, each once."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ValueError(f"{key}: expected a list of names (or comma-separated names on the command line), "
                         f"got {value!r}")
    items = [v.strip() for v in items]
    if not items or len(set(items)) < len(items):
        raise ValueError(f"{key}: {value!r} is empty or names something twice; give each once")
    return items


def _override_values(key, values):
    """An override's values as a list of its type (``OVERRIDES``), distinct and in range."""
    kind = OVERRIDES[key]
    values = values if isinstance(values, list) else [values]
    typed = [isinstance(v, bool) if kind is bool else isinstance(v, (int, float) if kind is float else int)
             and not isinstance(v, bool) for v in values]
    if not values or not all(typed) or len(set(values)) < len(values):
        example = "[true, false]" if kind is bool else "[1, 2]" if kind is int else "[0.1, 0.3]"
        raise ValueError(f"overrides.{key}: expected a non-empty list of distinct {kind.__name__}s, e.g. "
                         f"{key} = {example}, got {values!r}")
    low, text = {"kl_weight": (0, ">= 0"), "action_temperature": (1e-12, "> 0")}.get(key, (1, ">= 1"))
    if kind is not bool and any(v < low for v in values):
        raise ValueError(f"overrides.{key}: {values!r} has a value out of range ({key} must be {text})")
    return [kind(v) for v in values]


def read_toml(path):
    """The TOML file at ``path`` as a dict (tomllib; tomli on Python 3.10)."""
    try:
        import tomllib
    except ImportError:   # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ValueError("reading a TOML sweep spec needs Python >= 3.11 (or pip install tomli); or give the "
                             "sweep as flags (--datasets, --algos, --seeds)") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no sweep spec at {path}: check the path, or give the sweep as flags (--datasets, "
                                "--algos, --seeds)")
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"sweep spec {path} is not valid TOML ({err}): fix the file") from None


def load_spec(path=None, **flags):
    """The resolved sweep spec: ``path``'s TOML (if given), then every flag that is not None over it (datasets,
    algos, seeds, backbones, preset, pretrain_steps, out; comma-separated strings or lists). Bad specs raise
    one ValueError naming the problem and the fix. Datasets are checked by ``plan``."""
    raw = read_toml(path) if path is not None else {}
    where = f"sweep spec {path}" if path is not None else "sweep"
    unknown = sorted(set(raw) - set(SPEC_KEYS)) + sorted(set(flags) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; a spec has {', '.join(SPEC_KEYS)}")
    raw.update({k: v for k, v in flags.items() if v is not None})
    try:
        return _resolve(raw)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _resolve(raw):
    missing = [k for k in ("datasets", "algos", "seeds") if k not in raw]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: give them (e.g. --datasets hopper-medium --algos gde,oniql "
                         "--seeds 0-4, or datasets = [...] in the TOML)")
    from gde_ref.envs.make import parse_dataset_name
    datasets = _names("datasets", raw["datasets"])
    for name in datasets:
        parse_dataset_name(name)
    algos, backbones = _names("algos", raw["algos"]), _names("backbones", raw.get("backbones", ["iql"]))
    for name in algos:
        algo_row(name)
    bad = [b for b in backbones if b not in BACKBONES]
    if bad:
        raise ValueError(f"unknown backbone(s) {', '.join(bad)}; valid backbones: {', '.join(BACKBONES)}")
    for algo in algos:     # a pair the algo is not defined on is skipped; an algo on none of them is refused
        if not any(runs_on(algo, b) for b in backbones):
            algo_row(algo, backbones[0])
    preset = raw.get("preset", "laptop")
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESET_NAMES)}")
    pretrain_steps = raw.get("pretrain_steps")
    if pretrain_steps is not None and (not isinstance(pretrain_steps, int) or isinstance(pretrain_steps, bool)
                                       or pretrain_steps < 1):
        raise ValueError(f"pretrain_steps must be an integer >= 1, got {pretrain_steps!r}")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a table ([overrides] with key = [values]), got {overrides!r}")
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown override(s) {', '.join(unknown)}; a sweep can vary {', '.join(OVERRIDES)}")
    overrides = {k: _override_values(k, v) for k, v in sorted(overrides.items())}
    if "iql" in algos and any(n != 1 for n in overrides.get("n_step", [1])):
        raise ValueError("algo iql keeps one-step offline transitions in its buffer: drop n_step values other "
                         "than 1, or the algo iql")
    out = raw.get("out")
    if out is not None and (not isinstance(out, str) or not out):
        raise ValueError(f"out must be a directory name, got {out!r}")
    return {"datasets": datasets, "algos": algos, "seeds": parse_seeds(raw["seeds"]), "backbones": backbones,
            "preset": preset, "pretrain_steps": pretrain_steps, "overrides": overrides, "out": out}


# ------------------------------------------------------------------------------------------------
# the plan
# ------------------------------------------------------------------------------------------------
def applies(algo, key, stages):
    """Whether override ``key`` changes what ``algo`` computes (``stages``: whether its run has GDE's evaluation
    stages); the others are dropped for it, as ``finetune.check_settings`` would refuse or ignore them."""
    row = algo_row(algo)
    if key in ("kl_weight", "action_temperature"):
        return key in row.reads
    if key == "evaluation_stages":
        return not row.stages      # stage algos always run their stages
    if key in ("eval_period", "eval_steps"):
        return stages
    return key != "reset_optimizers" or algo != "offline"


def variants(algo, overrides):
    """[(name, {key: value})]: the grid of ``overrides`` that applies to ``algo``, each setting once."""
    out = {}
    for combo in itertools.product(*([(k, v) for v in vals] for k, vals in overrides.items())):
        chosen = dict(combo)
        stages = algo_row(algo).stages or chosen.get("evaluation_stages", False)
        used = {k: v for k, v in chosen.items() if applies(algo, k, stages)}
        out.setdefault(algo + "".join(f"__{k}={_fmt(v)}" for k, v in used.items()), used)
    return list(out.items())


def _fmt(value):
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _status(folder, done_file, score_key, expected):
    """(status, score, conflict) of the run in ``folder``: done (``done_file`` and summary.json), resume
    (checkpoint.npz), todo; ``conflict``: a message when its config.json holds other ``expected`` settings
    (``offline_agent`` is compared only once the run has recorded it)."""
    saved, summary = read_config(folder), os.path.join(folder, "summary.json")
    if saved is not None:
        differ = [k for k, v in expected.items() if saved.get(k, v if k == "offline_agent" else None) != v]
        if differ:
            return "conflict", None, (f"{folder} holds another run ("
                                      f"{', '.join(f'{k}={saved.get(k)!r}' for k in differ)}, not "
                                      f"{', '.join(f'{k}={expected[k]!r}' for k in differ)})")
    if os.path.isfile(summary) and os.path.isfile(os.path.join(folder, done_file)):
        with open(summary) as f:
            return "done", json.load(f).get(score_key), None
    return ("resume" if os.path.isfile(os.path.join(folder, "checkpoint.npz")) else "todo"), None, None


def check_datasets(datasets, preset):
    """Each dataset must be here (``load_dataset``); a sweep never makes one."""
    from gde_ref.data.datasets import load_dataset
    for name in datasets:
        try:
            load_dataset(name)
        except FileNotFoundError:
            base, made_by = (name[:-len("-quick")], "quick") if name.endswith("-quick") else (name, preset)
            raise FileNotFoundError(f"dataset {name} is not here ($MINARI_DATASETS_PATH): make it first with "
                                    f"`gde-ref make-dataset {base} --preset {made_by}` (a sweep does not make "
                                    "datasets)") from None


def plan(spec, out=None, check_data=True):
    """The jobs of ``spec`` in the order they run: for each seed, its offline agents (one per dataset and
    backbone), then its fine-tunes. Each job is a dict (kind, name, dir, its settings, status, score); a
    fine-tune's ``needs`` names its agent's job. Raises a ValueError if a directory holds another run."""
    from gde_ref.experiments.finetune import PRESETS as FINETUNE_PRESETS
    from gde_ref.experiments.pretrain import PRESETS as PRETRAIN_PRESETS
    out = out or spec.get("out")
    if not out:
        raise ValueError("no output directory: pass --out DIR (or out = \"DIR\" in the spec)")
    out = os.path.abspath(out)
    if check_data:
        check_datasets(spec["datasets"], spec["preset"])
    preset = spec["preset"]
    budget = PRETRAIN_PRESETS[preset]
    pre_steps = spec.get("pretrain_steps") or budget["steps"]
    suffix = f"-steps{pre_steps}" if pre_steps != budget["steps"] else ""
    jobs, conflicts = [], []
    for seed in spec["seeds"]:
        tunes = []
        for dataset, backbone in itertools.product(spec["datasets"], spec["backbones"]):
            algos = [a for a in spec["algos"] if runs_on(a, backbone)]
            if not algos:
                continue
            name = f"{dataset}-{backbone}-{preset}-seed{seed}{suffix}"
            agent = os.path.join(out, "pretrained", name)
            status, score, conflict = _status(agent, "offline.npz", "normalized_score",
                                              {"dataset": dataset, "backbone": backbone, "seed": seed,
                                               "steps": pre_steps})
            jobs.append({"kind": "pretrain", "name": name, "dir": agent, "dataset": dataset, "backbone": backbone,
                         "seed": seed, "preset": preset, "steps": pre_steps, "status": status, "score": score,
                         "eval_every": min(budget["eval_every"], pre_steps), "eval_episodes": budget["eval_episodes"]})
            conflicts += [conflict] if conflict else []
            for algo in algos:
                for variant, settings in variants(algo, spec["overrides"]):
                    folder = os.path.join(out, "runs", dataset, backbone, variant, f"seed{seed}")
                    offline = os.path.join(agent, "offline.npz")
                    expected = {"dataset": dataset, "backbone": backbone, "algo": algo, "seed": seed,
                                "preset": preset, "offline_agent": offline, **settings}
                    status, score, conflict = _status(folder, "summary.json", "final_normalized_score", expected)
                    conflicts += [conflict] if conflict else []
                    tunes.append({"kind": "finetune", "name": f"{dataset}/{backbone}/{variant}/seed{seed}",
                                  "dir": folder, "dataset": dataset, "backbone": backbone, "algo": algo,
                                  "seed": seed, "preset": preset, "overrides": settings, "offline": offline,
                                  "needs": name, "steps": settings.get("steps", FINETUNE_PRESETS[preset]["steps"]),
                                  "status": status, "score": score})
        jobs += tunes
    if conflicts:
        more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise ValueError(f"{'; '.join(conflicts[:3])}{more}: choose another --out, or delete those directories")
    return jobs


# ------------------------------------------------------------------------------------------------
# the estimate and the printed plan
# ------------------------------------------------------------------------------------------------
def job_seconds(job):
    """Estimated CPU seconds of ``job`` from ``SECONDS_PER_1K`` (IQL's numbers for a backbone not in it) and the
    algo's ``ALGO_COST``."""
    kind = "pretrain" if job["kind"] == "pretrain" else (
        "offline" if job["algo"] == "offline" else "gde" if job["algo"].startswith("gde") else "naive")
    rate = SECONDS_PER_1K.get((job["backbone"], kind), SECONDS_PER_1K[("iql", kind)])
    return rate * ALGO_COST.get(job.get("algo"), 1.0) * job["steps"] / 1000


def format_seconds(seconds):
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 2 * 3600 else f"{seconds / 3600:.1f} h"


def format_plan(spec, jobs, workers=None):
    """The plan as --dry-run prints it: one line per job (status, kind, name, estimated CPU time) in the order
    they run, then the totals and the estimated CPU time of what is left (resumed runs counted in full)."""
    workers = workers or default_workers()
    n = {k: len(spec[k]) for k in ("datasets", "algos", "seeds", "backbones")}
    grid = "".join(f" x {len(v)} {k}" for k, v in spec["overrides"].items() if len(v) > 1)
    fixed = ", ".join(f"{k}={_fmt(v[0])}" for k, v in spec["overrides"].items() if len(v) == 1)
    lines = [f"sweep: {n['datasets']} dataset(s) x {n['backbones']} backbone(s) x {n['algos']} algo(s) x "
             f"{n['seeds']} seed(s){grid}, preset {spec['preset']}{', ' + fixed if fixed else ''}: "
             f"{sum(j['kind'] == 'pretrain' for j in jobs)} offline agents, "
             f"{sum(j['kind'] == 'finetune' for j in jobs)} fine-tunes"]
    width = max([len(j["name"]) for j in jobs] + [4])
    for j in jobs:
        cost = "-" if j["status"] == "done" else format_seconds(job_seconds(j))
        score = f"score {j['score']:.1f}" if j["status"] == "done" and j.get("score") is not None else ""
        lines.append(f"  {j['status']:<7} {j['kind']:<9} {j['name']:<{width}}  {cost:>7}  {score}".rstrip())
    left = [j for j in jobs if j["status"] != "done"]
    total = sum(job_seconds(j) for j in left)
    lines.append(f"to do: {len(left)} of {len(jobs)} jobs ({sum(j['status'] == 'resume' for j in left)} to resume); "
                 f"estimated CPU time {format_seconds(total)}, about {format_seconds(total / workers)} on "
                 f"{workers} worker(s)" if left else f"nothing to do: all {len(jobs)} jobs are done")
    return "\n".join(lines) + "\n"


def default_workers():
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def add_arguments(parser):
    """The ``gde-ref sweep`` options (kept here: cli.py stays under the module size limit)."""
    parser.add_argument("spec", nargs="?", metavar="SPEC.toml", help="the sweep spec (see gde_ref.experiments.sweep); "
                        "flags given override its values")
    parser.add_argument("--datasets", help="comma-separated dataset names, e.g. hopper-medium,walker2d-medium")
    parser.add_argument("--algos", help=f"comma-separated, from {', '.join(ALGOS)}")
    parser.add_argument("--seeds", help="0-4 (a range) or 0,2,5 (a list)")
    parser.add_argument("--backbones", help=f"comma-separated, from {', '.join(BACKBONES)} (default iql)")
    parser.add_argument("--preset", choices=PRESET_NAMES, help="budgets of pretrain and finetune (default laptop)")
    parser.add_argument("--pretrain-steps", type=int, help="the offline agents' steps (default: the preset's)")
    parser.add_argument("--out", metavar="DIR", help="the sweep's directory (DIR/pretrained, DIR/runs, DIR/sweep.json)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its estimated CPU time; run nothing")
    parser.add_argument("--executor", default="local", choices=("local", "ray", "slurm"),
                        help="local: a process pool (default); ray, slurm: pip install 'gde_ref[ray]' or '[slurm]'")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: the cores)")
    parser.add_argument("--address", default=None, help="ray: the cluster's address (default: start a local one)")
    parser.add_argument("--partition", default=None, help="slurm: the partition")
    parser.add_argument("--time-min", type=int, default=240, help="slurm: minutes per job (default 240)")
    parser.add_argument("--cpus-per-task", type=int, default=1, help="slurm: CPUs per job (default 1)")

