"""The ``gde-ref`` command: one entry point with a subcommand per job."""
import argparse
import json
import os
import sys


def _bench(args):
    from gde_ref.bench import format_table, run_bench
    if not args.json:
        print("benchmarking (about a minute)...", file=sys.stderr)
    result = run_bench(seconds=args.seconds, tasks=tuple(args.tasks.split(",")))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def _datasets(args):
    from gde_ref.data.listing import format_datasets, list_datasets
    rows = list_datasets()
    print(json.dumps(rows, indent=2) if args.json else format_datasets(rows))
    return 0


def _make_dataset(args):
    from tqdm import tqdm

    from gde_ref.nn.kernels import blas_threads
    from gde_ref.data.generate import make_datasets, planned_steps
    shared = set()  # SAC runs counted once: several names of one task share them
    total = sum(planned_steps(name, args.size, args.preset, seed=args.seed, sac_counted=shared) for name in args.name)
    bar = tqdm(total=total, unit="step", desc=",".join(args.name), disable=args.json, file=sys.stderr, mininterval=1.0, delay=0.5)
    with bar, blas_threads(1):  # small networks: one BLAS thread is faster on a shared machine
        made = make_datasets(args.name, args.size, args.seed, args.preset, progress=bar.update,
                             policy_out=args.save_policy, log=None if args.json else bar.write, controller=args.controller)
    if args.json:
        infos = [info for _, info in made]
        print(json.dumps(infos[0] if len(infos) == 1 else infos, indent=2))
        return 0
    for did, info in made:
        print(f"{did}: {info['transitions']} transitions, {info['episodes']} episodes, behaviour normalized score "
              f"{info['behaviour_score']:.1f} in {info['seconds']:.0f} s")
        if "warning" in info:
            print(f"WARNING: {did}: {info['warning']}", file=sys.stderr)
    return 0


def _interrupted(err, out, command):
    if os.path.isfile(os.path.join(out, "checkpoint.npz")):
        print(f"gde-ref {command}: interrupted at step {err.env_step}; the checkpoint is in {out}/checkpoint.npz. "
              f"Continue with: gde-ref {command} --out {out} --resume", file=sys.stderr)
    else:   # stopped while pretraining the offline agent, before the run's own first checkpoint
        print(f"gde-ref {command}: interrupted before the run's first checkpoint (the offline agent's pretraining "
              "keeps its own): run the same command again to continue", file=sys.stderr)
    return 130


def _pretrain(args):
    from tqdm import tqdm

    from gde_ref.experiments.pretrain import PRESETS, pretrain
    from gde_ref.experiments.rundir import stop_on_interrupt
    from gde_ref.finetune.loop import RunInterrupted
    from gde_ref.nn.kernels import blas_threads
    preset = PRESETS[args.preset]
    steps = args.steps or preset["steps"]
    bar = tqdm(total=steps, unit="step", desc=f"{args.backbone} {args.dataset}", disable=args.json, file=sys.stderr,
               mininterval=1.0, delay=0.5)
    try:
        with bar, blas_threads(args.blas_threads), stop_on_interrupt() as stop:
            summary = pretrain(args.dataset, args.out, steps, seed=args.seed, backbone=args.backbone,
                               eval_every=min(preset["eval_every"], steps), eval_episodes=preset["eval_episodes"],
                               progress=bar, command=" ".join(["gde-ref"] + sys.argv[1:]), resume=args.resume,
                               force=args.force, stop=stop)
    except RunInterrupted as err:
        return _interrupted(err, args.out, "pretrain")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.dataset}: normalized score {summary['normalized_score']:.1f} (return {summary['return']:.0f}) "
              f"after {summary['steps']} steps; wrote {args.out}/offline.npz and summary.json")
    return 0


def _maze(args):
    from tqdm import tqdm

    from gde_ref.nn.kernels import blas_threads
    from gde_ref.experiments.maze_fig2 import preset, run
    cfg = preset(args.preset)
    log = (lambda *a: None) if args.json else (lambda text: tqdm.write(text, file=sys.stderr))

    def progress(desc, total):
        return tqdm(total=total, desc=desc, disable=args.json, file=sys.stderr, mininterval=1.0, delay=0.5)

    with blas_threads(1):  # 2x64 networks: one BLAS thread is fastest
        results = run(cfg, range(args.seeds), args.out, progress=progress, log=log, workers=args.workers)
    if args.json:
        keep = ("final_return", "goal")
        print(json.dumps({"optimal_return": results["optimal_return"], "right_goal_return": results["right_goal_return"],
                          "methods": {m: {k: d[k] for k in keep} for m, d in results["methods"].items()},
                          "offline": results["offline"], "dataset": results["dataset"]}, indent=2))
    else:
        print(f"figures and results.json in {args.out}")
    return 0


def _evaluate(args):
    from gde_ref.experiments.evaluate import default_seeds, evaluate, load_policy
    from gde_ref.nn.kernels import blas_threads
    policy = load_policy(args.run_dir, args.policy)
    seed, episodes = default_seeds(args.run_dir)
    with blas_threads(1):
        result = evaluate(policy, args.episodes or episodes, seed if args.seed is None else args.seed, args.video)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{policy.which} policy of {args.run_dir} on {policy.task}: normalized score {result['normalized_score']:.1f}"
              f" (mean return {result['mean_return']:.1f} over {result['episodes']} episodes, env seeds "
              f"{result['seed']}..{result['seed'] + result['episodes'] - 1})"
              + (f"; video in {args.video}" if args.video else ""))
    return 0


def _report(args):
    from gde_ref.experiments.report import report
    table = report(args.runs, args.out, x=args.x)
    if args.json:
        with open(os.path.join(args.out, "results.json")) as f:
            table = f.read()
    print(table, end="")
    return 0


def _sweep(args):
    from gde_ref.experiments.sweep import format_plan, load_spec, plan
    from gde_ref.experiments.sweep_exec import run_sweep
    spec = load_spec(args.spec, datasets=args.datasets, algos=args.algos, seeds=args.seeds, backbones=args.backbones,
                     preset=args.preset, pretrain_steps=args.pretrain_steps, out=args.out)
    if args.dry_run:   # a plan is printable anywhere, e.g. for a cluster, without the datasets here
        print(format_plan(spec, plan(spec, check_data=False), args.workers), end="")
        return 0
    result = run_sweep(spec, executor=args.executor, workers=args.workers, address=args.address, command=" ".join(
        ["gde-ref"] + sys.argv[1:]), slurm={"partition": args.partition, "time_min": args.time_min,
                                           "cpus_per_task": args.cpus_per_task})
    return 130 if result["stopped"] else 1 if result["failed"] else 0


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (what is wrong, and where the help is), like every other error here."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    from gde_ref import __version__
    from gde_ref.agents.backbones import BACKBONES
    from gde_ref.experiments.ant_controller import add_parser as add_ant_controller
    from gde_ref.experiments.finetune_cli import add_parser as add_finetune
    from gde_ref.experiments.sweep import add_arguments as sweep_arguments
    parser = OneLineParser(prog="gde-ref", description="Guided Decoupled Exploration (GDE), "
                                     "reference implementation in NumPy and Numba.")
    parser.add_argument("--version", action="version", version=f"gde-ref {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench = sub.add_parser("bench", help="measure update-step throughput and action latency on this machine")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    bench.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement (default 2)")
    bench.add_argument("--tasks", default="hopper,halfcheetah", help="comma-separated: hopper, halfcheetah")
    bench.set_defaults(run=_bench)
    datasets = sub.add_parser("datasets", help="list the local offline datasets (Minari): transitions, episodes, behaviour score")
    datasets.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    datasets.set_defaults(run=_datasets)
    make = sub.add_parser("make-dataset", help="generate a D4RL-protocol dataset (SAC behaviour policies; mazes: "
                          "noisy waypoint controllers) and save it as a local Minari dataset")
    make.add_argument("name", metavar="NAME", nargs="+", help="{hopper,halfcheetah,walker2d}-{random,medium,medium-replay,"
                      "expert,medium-expert}, pointmaze-{umaze,medium,large}[-goals] (D4RL maze2d protocol; -goals: "
                      "goal-conditioned) or antmaze-{umaze,umaze-diverse,medium-play,medium-diverse}; names of one task "
                      "share SAC runs (hopper-medium hopper-medium-replay: one SAC); --json then prints a list")
    make.add_argument("--size", type=int, default=None, help="transitions per behaviour policy (default: the preset's)")
    make.add_argument("--preset", default="laptop", choices=("quick", "laptop", "paper"), help="budgets: quick (CI, "
                      "seconds), laptop (default), paper (1M transitions)")
    make.add_argument("--controller", metavar="FILE.npz", default=None, help="antmaze-*: the ant controller (default: "
                      "the shipped one; see train-ant-controller)")
    make.add_argument("--seed", type=int, default=0, help="seed of SAC and of the rollouts (default 0)")
    make.add_argument("--save-policy", metavar="DIR", default=None,
                      help="also save the behaviour policies trained here as DIR/{task}-{kind}.npz")
    make.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    make.set_defaults(run=_make_dataset)
    maze = sub.add_parser("maze", help="the toy maze of the paper's Fig. 2: DQN+RND data, offline CQL, fine-tuning "
                          "with alpha in {3, 1, 0}, a softmax-exploration control and GDE; figures and results.json")
    maze.add_argument("--seeds", type=int, default=5, help="fine-tuning seeds (default 5)")
    maze.add_argument("--out", default="runs/maze", metavar="DIR", help="output directory (default runs/maze)")
    maze.add_argument("--preset", default="default", choices=("default", "quick"), help="budgets (quick: CI)")
    maze.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                      help="processes for the fine-tuning runs (default: 2, or 1 on a 1-CPU machine)")
    maze.add_argument("--json", action="store_true", help="print the results as JSON (no progress bar)")
    maze.set_defaults(run=_maze)
    pre = sub.add_parser("pretrain", help="train a backbone (--backbone) offline on a dataset (writes "
                         "DIR/offline.npz, summary.json)")
    pre.add_argument("--backbone", default="iql", choices=tuple(BACKBONES), help="the offline RL algorithm (default iql)")
    pre.add_argument("--dataset", required=True, help="a dataset name (hopper-medium) or any local Minari id")
    pre.add_argument("--steps", type=int, default=None, help="gradient steps (default: the preset's)")
    pre.add_argument("--preset", default="laptop", choices=("quick", "laptop", "paper"),
                     help="budgets: quick 2k steps, laptop 100k (default), paper 1M")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--out", required=True, metavar="DIR", help="run directory")
    pre.add_argument("--blas-threads", type=int, default=1,
                     help="BLAS threads (default 1: 2x256 networks gain little from more, and a process that "
                     "takes every core slows down badly beside any other; raise it on an idle machine)")
    pre.add_argument("--resume", action="store_true", help="continue DIR from its last checkpoint")
    pre.add_argument("--force", action="store_true", help="delete the run in DIR and start over")
    pre.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    pre.set_defaults(run=_pretrain)
    add_finetune(sub, _interrupted)
    ev = sub.add_parser("evaluate", help="evaluate (and record) a trained policy: a fine-tuning run's exploitation "
                        "policy by default, or a pretraining run's offline agent")
    ev.add_argument("run_dir", metavar="RUN", help="a run directory (gde-ref finetune or pretrain) or an offline.npz")
    ev.add_argument("--policy", default="exploit", choices=("exploit", "explore", "teacher"),
                    help="which of GDE's policies (default: exploit, the one every score here is of)")
    ev.add_argument("--episodes", type=int, default=None,
                    help="complete episodes (default: the run's reporting evaluation's, or 10)")
    ev.add_argument("--seed", type=int, default=None, help="env seed of the first episode (default: that of the "
                    "run's last reporting evaluation, which it then reproduces; 0 for an offline agent)")
    ev.add_argument("--video", metavar="FILE.mp4", default=None, help="also record the episodes (imageio)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    ev.set_defaults(run=_evaluate)
    rep = sub.add_parser("report", help="results table (mean ± sample std and a 95%% bootstrap CI over seeds) and "
                         "learning curves from finished "
                         "fine-tuning runs (writes OUT/results.md, results.json, curves.png)")
    rep.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by gde-ref finetune")
    rep.add_argument("--out", required=True, metavar="OUT", help="where to write the table and figure")
    rep.add_argument("--x", default="env_step", choices=("env_step", "exploration_steps"),
                     help="the curves' axis: every env step (default) or exploration steps only (GDE's budget "
                     "without its evaluation stages)")
    rep.add_argument("--json", action="store_true", help="print results.json (per dataset and across them)")
    rep.set_defaults(run=_report)
    swp = sub.add_parser("sweep", help="datasets x algos x seeds (x backbones, x a grid of settings): the offline agents, "
                         "then the fine-tunes, in predictable directories; run again, it does only what is missing")
    sweep_arguments(swp)
    swp.set_defaults(run=_sweep)
    add_ant_controller(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:   # --help (0) or a usage error (2, one line already printed)
        return done.code
    if args.command == "bench":
        from gde_ref.bench import TASK_DIMS
        unknown = [t for t in args.tasks.split(",") if t not in TASK_DIMS]
        if unknown:
            parser.error(f"unknown task(s) {unknown} for --tasks; choose from {sorted(TASK_DIMS)}")
        if args.seconds <= 0:
            parser.error("--seconds must be > 0")
    if args.command == "make-dataset":
        from gde_ref.envs.make import parse_dataset_name
        try:
            for name in args.name:
                parse_dataset_name(name)
        except ValueError as e:
            parser.error(str(e))
        if len(set(args.name)) < len(args.name):
            parser.error(f"a dataset name is given twice: {args.name}")
        if args.size is not None and args.size < 1:
            parser.error("--size must be >= 1")
    if args.command == "maze" and (args.seeds < 1 or args.workers < 1):
        parser.error("--seeds and --workers must be >= 1")
    if args.command == "pretrain" and ((args.steps is not None and args.steps < 1) or args.blas_threads < 1):
        parser.error("--steps and --blas-threads must be >= 1")
    if args.command == "finetune":
        from gde_ref.experiments.finetune_cli import check_args as check_finetune_args
        check_finetune_args(parser, args)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:  # bad input: one clear line, no traceback
        print(f"gde-ref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # a second Ctrl-C, or one outside a checkpointed loop
        print(f"gde-ref {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:     # a read-only or full disk, a file that cannot be read: the OS's reason and the fix
        where = f" ({err.filename})" if err.filename else ""
        print(f"gde-ref {args.command}: error: {err.strerror or err}{where}: free some space, fix the permissions, "
              "or choose another --out", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
