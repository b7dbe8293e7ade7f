"""``gde-ref finetune``'s command line: its arguments, how settings not given are filled (a resumed run's own,
else ``FINETUNE_DEFAULTS``) and the call to ``experiments.finetune.finetune`` (``gde_ref.cli`` adds the parser)."""
import argparse
import json
import os
import sys

FINETUNE_DEFAULTS = {"algo": "gde", "backbone": "iql", "seed": 0, "preset": "laptop", "kl_weight": 0.3, "n_step": None,
                     "action_temperature": 1.0, "update_during_stages": False, "reset_optimizers": False}


def _fill_finetune_settings(args):
    """Settings not given on the command line: with --resume, the run's own (RUN/config.json), so
    `gde-ref finetune --out RUN --resume` is enough; otherwise FINETUNE_DEFAULTS. A setting given
    explicitly is kept, and ``finetune`` refuses to resume with one that differs from the run's."""
    saved = {}
    config = os.path.join(args.out, "config.json")
    if args.resume and os.path.isfile(config):
        with open(config) as f:
            saved = json.load(f)
    for key in ("dataset", "steps", "eval_period", "eval_steps", "evaluation_stages", "report_period",
                "report_episodes", *FINETUNE_DEFAULTS):
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key, FINETUNE_DEFAULTS.get(key)))
    if args.dataset is None:
        raise ValueError("--dataset is required (e.g. --dataset hopper-medium), except with --resume of a run")


def _finetune(args, on_interrupt):
    from tqdm import tqdm

    from gde_ref.experiments.finetune import PRESETS, finetune
    from gde_ref.experiments.rundir import stop_on_interrupt
    from gde_ref.finetune.loop import RunInterrupted
    from gde_ref.nn.kernels import blas_threads
    given = [k for k in ("kl_weight", "action_temperature", "eval_period", "eval_steps", "update_during_stages",
                         "reset_optimizers") if getattr(args, k) is not None]
    _fill_finetune_settings(args)
    steps = args.steps or PRESETS[args.preset]["steps"]
    bar = tqdm(total=steps, unit="step", desc=f"{args.algo} {args.dataset}", disable=args.json, file=sys.stderr,
               mininterval=1.0, delay=0.5)

    def pretrain_bar(total):   # the offline agent's pretraining, when the run has to make it first
        return tqdm(total=total, unit="step", desc=f"pretraining {args.backbone} on {args.dataset}", disable=args.json,
                    file=sys.stderr, mininterval=1.0, delay=0.5)

    try:
        with bar, blas_threads(args.blas_threads), stop_on_interrupt() as stop:
            summary = finetune(args.dataset, args.algo, args.out, steps=args.steps, seed=args.seed,
                               preset=args.preset, offline_path=args.offline, backbone=args.backbone, resume=args.resume, force=args.force,
                               kl_weight=args.kl_weight, n_step=args.n_step,
                               action_temperature=args.action_temperature, eval_period=args.eval_period,
                               eval_steps=args.eval_steps, evaluation_stages=args.evaluation_stages,
                               update_during_stages=args.update_during_stages,
                               reset_optimizers=args.reset_optimizers, report_period=args.report_period,
                               report_episodes=args.report_episodes, checkpoint_period=args.checkpoint_period,
                               progress=bar, pretrain_progress=pretrain_bar, stop=stop, given=given,
                               command=" ".join(["gde-ref"] + sys.argv[1:]))
    except RunInterrupted as err:
        return on_interrupt(err, args.out, "finetune")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.algo} on {args.dataset}: final normalized score {summary['final_normalized_score']:.1f} (mean of "
              f"the last {summary['final_window']} reporting evaluations; the last one "
              f"{summary['last_normalized_score']:.1f}) after {summary['env_steps']} env steps "
              f"({summary['evaluation_stage_steps']} in evaluation stages), {summary['updates']} updates, "
              f"{summary['teacher_swaps']} teacher swaps; wrote {args.out}/")
    return 0


def add_parser(sub, on_interrupt):
    """The ``finetune`` subcommand; ``on_interrupt(err, out, command)``: the CLI's message after a stop (its code)."""
    from gde_ref.agents.backbones import BACKBONES
    from gde_ref.finetune.algos import ALGOS
    fin = sub.add_parser("finetune", help="fine-tune an offline agent online with GDE or a Table 1 variant "
                         "(writes RUN/config.json, log.csv, summary.json, curve.png, checkpoint.npz)")
    fin.add_argument("--backbone", default=None, choices=tuple(BACKBONES),
                     help="the offline agent's algorithm (default iql; --from's agent must be one)")
    fin.add_argument("--dataset", default=None, help="a dataset name, e.g. hopper-medium (with --resume: the run's)")
    fin.add_argument("--algo", default=None, choices=ALGOS, metavar="ALGO",
                     help=f"gde (default), or one of {', '.join(ALGOS)}; each on the backbones its row of "
                     "finetune/algos.py names (awac: the awac backbone, calql: calql, the IQL variants and baselines: "
                     "iql; naive, rnd, gde and its ablations: any)")
    fin.add_argument("--steps", type=int, default=None, help="online env steps, evaluation stages included "
                     "(default: the preset's)")
    fin.add_argument("--preset", default=None, choices=("quick", "laptop", "paper"),
                     help="budgets: quick (CI, 600 steps), laptop 50k steps (default), paper 250k")
    fin.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    fin.add_argument("--from", dest="offline", metavar="DIR/offline.npz", default=None,
                     help="the offline agent (default: pretrain one, or reuse it from OUT/../pretrained/)")
    fin.add_argument("--out", required=True, metavar="RUN", help="run directory")
    fin.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint; settings not "
                     "given are the run's own (config.json)")
    fin.add_argument("--kl-weight", type=float, default=None, metavar="RHO", help="rho_0 of Eq. 5 (default 0.3); qdagger: its "
                     "distillation weight")
    fin.add_argument("--n-step", type=int, default=None, help="n-step returns (default 1; 3 for gde on *-goals mazes)")
    fin.add_argument("--action-temperature", type=float, default=None, help="Fig. 2d's t (IQL variants, default 1)")
    fin.add_argument("--eval-period", type=int, default=None, help="F (default: the preset's)")
    fin.add_argument("--eval-steps", type=int, default=None, help="L (default: the preset's)")
    fin.add_argument("--evaluation-stages", action=argparse.BooleanOptionalAction, default=None,
                     help="run GDE's evaluation stage (L steps of the exploitation policy every F, stored and "
                     "counted in the budget); default: on for gde and its ablations only. --evaluation-stages "
                     "gives a baseline the same stages (an equal-data comparison)")
    fin.add_argument("--update-during-stages", action=argparse.BooleanOptionalAction, default=None,
                     help="also update the learner during stage steps (default no: the policy a stage scores is "
                     "the one the teacher becomes)")
    fin.add_argument("--reset-optimizers", action=argparse.BooleanOptionalAction, default=None,
                     help="start every Adam state afresh (default: continue the offline agent's)")
    fin.add_argument("--report-period", type=int, default=None,
                     help="env steps between reporting evaluations (default: the preset's; not counted)")
    fin.add_argument("--report-episodes", type=int, default=None,
                     help="complete episodes per reporting evaluation (default: the preset's)")
    fin.add_argument("--checkpoint-period", type=int, default=None, help="env steps between checkpoints")
    fin.add_argument("--force", action="store_true", help="delete the run in RUN and start over")
    fin.add_argument("--blas-threads", type=int, default=1,
                     help="BLAS threads (default 1: one update per env step on small batches; see the README)")
    fin.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    fin.set_defaults(run=lambda args: _finetune(args, on_interrupt))


def check_args(parser, args):
    """Counts that must be >= 1 (a usage error, one line)."""
    bad = [f"--{k.replace('_', '-')}" for k in ("steps", "eval_period", "eval_steps", "checkpoint_period",
                                                 "report_period", "report_episodes")
           if getattr(args, k) is not None and getattr(args, k) < 1]
    bad += ["--n-step"] if args.n_step is not None and args.n_step < 1 else []
    if bad:
        parser.error(f"{', '.join(bad)} must be >= 1")
