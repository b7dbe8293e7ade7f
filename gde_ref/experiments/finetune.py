"""Online fine-tuning of an offline agent (a backbone: IQL, TD3+BC) on a MuJoCo task (paper Algorithm 1, Tables 1
and 3): ``gde-ref finetune``.

    claim RUN (rundir.claim: one run per directory, a lock, config.json with the settings and provenance)
    agent = load_offline(DIR/offline.npz)   or pretrain (cached in OUT/../pretrained/DATASET[-BACKBONE]-PRESET-seedS)
    learner = make_learner(algo, agent, ...);  buffer = make_buffer(algo, ...)   # finetune.algos' table
    run_online(env, eval_env, learner, buffer, LoopConfig, report_env=...)   # the shared loop (its protocol)
    RUN/log.csv row by row, RUN/curve.png at each reporting evaluation, RUN/summary.json at the end

Resume: every ``checkpoint_period`` env steps (and at the end, or at Ctrl-C) RUN/checkpoint.npz is written
atomically with everything the run depends on (``finetune_state.save_checkpoint``), so ``resume=True``
continues from it and ends bit-identical to a run that was never interrupted.
"""
import csv
import dataclasses
import io
import os
import time

import numpy as np

from gde_ref import plots
from gde_ref.agents.backbones import backbone_config, make_backbone
from gde_ref.experiments import rundir
from gde_ref.checkpoint import write_json, write_text
from gde_ref.config import GDEConfig
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import is_sparse, make_env, normalized_score, parse_dataset_name
from gde_ref.experiments import pretrain as pretrain_recipe
from gde_ref.experiments import sparse as sparse_settings
from gde_ref.experiments.finetune_state import load_learner, read_checkpoint, save_checkpoint, set_env_state
from gde_ref.finetune.loop import LoopConfig, LoopState, RunInterrupted, final_score, report_rows, run_online
from gde_ref.finetune.algos import STAGE_ALGOS, algo_row, make_buffer, make_learner

# Budgets in env steps (the protocol: ``finetune.loop``). F as the paper's locomotion setting (B.3: F = 2500).
# L is not given for locomotion (Table 7's L = 5000 goes with antmaze's F = 2.5e4, 20% of each period): we
# keep that share, L = F / 5 = 500, so GDE spends 20% of its budget in evaluation stages at every preset
# (quick: 50 / 200 = 25%). The reporting evaluation (not counted) runs every ``report_period`` steps,
# ``report_episodes`` complete episodes; the final score is the mean of the last ``final_window`` (B.1).
PRESETS = {
    "quick": {"steps": 600, "eval_period": 200, "eval_steps": 50, "checkpoint_period": 200,
              "report_period": 200, "report_episodes": 2, "buffer_size": 10_000},
    "laptop": {"steps": 50_000, "eval_period": 2_500, "eval_steps": 500, "checkpoint_period": 5_000,
               "report_period": 2_500, "report_episodes": 5, "buffer_size": 250_000},
    "paper": {"steps": 250_000, "eval_period": 2_500, "eval_steps": 500, "checkpoint_period": 10_000,
              "report_period": 5_000, "report_episodes": 10, "buffer_size": 250_000},
}
FINAL_WINDOW = 10   # locomotion: the reported score is the mean of the last 10 reporting evaluations (B.1)
# Sparse-reward tasks (the goal-conditioned PointMaze ones) take experiments.sparse's settings: F, L and report
# episodes (sparse.FINETUNE_PRESETS over these), n-step 3 for GDE, rewards r - 1, the final score the last
# evaluation's. The maze2d PointMaze tasks take these (locomotion) settings, with unscaled 0/1 rewards.
# log.csv: one row per evaluation, written as it happens. kind: "report" (the reporting evaluation: eval_return
# is the mean over ``episodes`` complete episodes, eval_return_std their std) or "stage" (GDE's evaluation
# stage: eval_return is its score, teacher_* the decision after it). env_step / exploration_steps / updates:
# the budget used when the row was made (all env steps / those outside stages / learner updates). kl_weight
# (rho), q_mean and the losses are those of the last update before the row.
LOG_COLUMNS = ("kind", "env_step", "exploration_steps", "updates", "eval_return", "normalized_score",
               "eval_return_std", "episodes", "teacher_score", "teacher_swapped", "kl_weight", "q_mean",
               "critic_loss", "actor_loss", "explore_loss")
SETTINGS_CHECKED_ON_RESUME = ("dataset", "backbone", "algo", "seed", "steps", "eval_period", "eval_steps", "kl_weight",
                              "n_step", "action_temperature", "evaluation_stages", "update_during_stages",
                              "reset_optimizers", "report_period", "report_episodes")


# ------------------------------------------------------------------------------------------------
# the recipe
# ------------------------------------------------------------------------------------------------
def offline_agent(dataset, task, seed, preset, offline_path, out, backbone_settings=None, pretrain_steps=None,
                  cache_dir=None, progress=None, stop=None, backbone="iql"):
    """(agent, normalizer, meta, path): ``offline_path``'s agent, else a cached pretrained one, pretraining it
    first (``progress(total)``: makes its tqdm-like bar; ``stop``: as ``pretrain``'s) if the cache (``cache_dir`` or OUT/../pretrained/DATASET-PRESET-seedS)
    has none with these settings and this data. A cached agent trained on other data (the dataset was remade)
    is refused, as is ``offline_path``'s when the dataset is here and its fingerprint differs, or when it is
    another backbone's agent. ``backbone_settings``: the backbone's config (defaults if None)."""
    if offline_path is not None:
        agent, normalizer, meta = pretrain_recipe.load_offline(offline_path, task, backbone)
        pretrain_recipe.check_data_fingerprint(meta, dataset, os.fspath(offline_path), required=False)
        return agent, normalizer, meta, os.fspath(offline_path)
    budget = pretrain_recipe.PRESETS[preset]
    steps = pretrain_steps or budget["steps"]
    config = backbone_settings or sparse_settings.default_backbone_config(backbone, is_sparse(task))
    name = dataset if backbone == "iql" else f"{dataset}-{backbone}"
    cache = cache_dir or os.path.join(os.path.dirname(os.path.abspath(out)), "pretrained", f"{name}-{preset}-seed{seed}")
    path = os.path.join(cache, "offline.npz")
    if os.path.isfile(path):
        agent, normalizer, meta = pretrain_recipe.load_offline(path, task, backbone)
        if (meta.get("dataset"), meta.get("seed"), meta.get("steps"), agent.config) == (dataset, seed, steps, config):
            pretrain_recipe.check_data_fingerprint(meta, dataset, path, required=True)
            return agent, normalizer, meta, path
    bar = progress(steps) if progress is not None else None
    try:
        pretrain_recipe.pretrain(dataset, cache, steps, seed=seed, eval_every=min(budget["eval_every"], steps),
                                 eval_episodes=budget["eval_episodes"], config=config, progress=bar, stop=stop, backbone=backbone,
                                 resume=not os.path.isfile(path) and os.path.isfile(os.path.join(cache, "checkpoint.npz")),
                                 force=os.path.isfile(path))
    finally:
        if bar is not None:
            bar.close()
    return (*pretrain_recipe.load_offline(path, task), path)


def _log_row(task, row):
    full = {"normalized_score": float(normalized_score(task, row["eval_return"])), **row}
    return {k: full.get(k, "" if k == "kind" else float("nan")) for k in LOG_COLUMNS}


class RunLog:
    """RUN/log.csv written row by row as the run goes, and RUN/curve.png redrawn at each reporting evaluation.
    ``rows``: the rows already made (a resumed run's, from its checkpoint): the file is rewritten with them,
    atomically, so rows logged after that checkpoint by the interrupted process are dropped."""

    def __init__(self, out, task, title, rows=()):
        self.path, self.task, self.title = os.path.join(out, "log.csv"), task, title
        self.curve_path = os.path.join(out, "curve.png")
        self.reports = [_log_row(task, r) for r in rows if r["kind"] == "report"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(_log_row(task, r) for r in rows)
        write_text(self.path, buf.getvalue())

    def __call__(self, row):
        full = _log_row(self.task, row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(full)
        if full["kind"] == "report":
            self.reports.append(full)
            self.draw()

    def draw(self):
        steps = [r["env_step"] for r in self.reports]
        fig = plots.learning_curves({"reporting evaluation": (steps, [[r["normalized_score"] for r in self.reports]])},
                                    ylabel="normalized score", title=self.title)
        plots.save(fig, self.curve_path)


def check_settings(algo, settings, given=()):
    """Refuse settings that would do nothing or a budget that cannot train: ``given`` names the settings the
    user set explicitly (a default is never refused). What each algorithm reads is its row of ``finetune.algos``."""
    row = algo_row(algo, settings.get("backbone"))
    stages = settings["evaluation_stages"]
    if row.stages and not stages:
        raise ValueError(f"{algo} needs its evaluation stages (the teacher is chosen by them): drop "
                         "--no-evaluation-stages")
    unused = {"kl_weight": "kl_weight" not in row.reads,
              "action_temperature": "action_temperature" not in row.reads and settings["action_temperature"] != 1.0,
              "eval_period": not stages, "eval_steps": not stages, "update_during_stages": not stages,
              "reset_optimizers": algo in ("offline", "fromscratch", "sac-preload")}   # no offline Adam state used
    refused = [k for k in given if unused.get(k)]
    if refused:
        why = "it has no evaluation stages" if set(refused) <= {"eval_period", "eval_steps", "update_during_stages"} \
            else "it does not read them"
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in refused)} would do nothing for {algo} "
                         f"({why}): drop {'it' if len(refused) == 1 else 'them'}")
    if "action_temperature" not in row.reads and settings["action_temperature"] != 1.0:
        raise ValueError(f"action_temperature applies to the naive variants (Fig. 2d), not to {algo!r}")
    first_stage = min(settings["eval_steps"], settings["steps"]) if stages else 0
    if settings["steps"] - first_stage < 1:
        raise ValueError(f"a budget of {settings['steps']} env steps leaves no exploration step (and no update) "
                         f"after the first evaluation stage of L = {settings['eval_steps']}: raise --steps above L")
    if settings["checkpoint_period"] < 1:
        raise ValueError(f"checkpoint_period must be >= 1, got {settings['checkpoint_period']}")


def finetune(dataset, algo, out, steps=None, seed=0, preset="laptop", offline_path=None, resume=False, force=False,
             kl_weight=0.3, n_step=None, action_temperature=1.0, eval_period=None, eval_steps=None,
             evaluation_stages=None, update_during_stages=False, reset_optimizers=False, report_period=None,
             report_episodes=None, checkpoint_period=None, buffer_size=None, backbone="iql", backbone_settings=None,
             pretrain_steps=None, cache_dir=None, progress=None, pretrain_progress=None, command=None,
             interrupt_at=None, stop=None, given=()):
    """Fine-tune an offline ``backbone`` agent (a name of ``agents.backbones.BACKBONES``) with ``algo`` (a row of
    ``finetune.algos``) on ``dataset``'s task; returns the summary.

    steps (T), eval_period (F), eval_steps (L), report_period, report_episodes, checkpoint_period, buffer_size:
    default to ``PRESETS[preset]``. evaluation_stages: run GDE's evaluation stage (default: only for GDE and
    its ablations, ``STAGE_ALGOS``; True gives a baseline the same stages, an equal-data comparison);
    update_during_stages: also update during stage steps (default no: the scored policy is the one the
    teacher becomes). reset_optimizers: start every Adam state afresh instead of continuing the offline
    agent's (the default, as IQL's own fine-tuning continues one learner across both phases).
    kl_weight: rho_0; n_step: n of the buffer's returns (default 1; 3 for GDE on a sparse-reward task);
    action_temperature: Fig. 2d's t. A sparse-reward task (``pointmaze-*-goals``) takes ``experiments.sparse``'s.
    backbone_settings (the backbone's config), pretrain_steps, cache_dir: for pretraining when ``offline_path``
    is None; an ``offline_path`` agent of another backbone is refused.
    resume: continue the run in ``out`` (the settings must be the run's); force: delete it and start over.
    stop(): asked between steps; True stops the run at that safe point with a checkpoint (``RunInterrupted``).
    given: the names of the settings set explicitly (the CLI's), to refuse those that would do nothing.
    interrupt_at: tests only, raise ``RunInterrupted`` after the first checkpoint at or after that step.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    backbone_config(backbone)     # an unknown backbone, then an unknown algo (or one not on it): one clear error
    algo_row(algo, backbone)
    task, _ = parse_dataset_name(dataset)
    sparse = is_sparse(task)
    p = {**PRESETS[preset], **(sparse_settings.FINETUNE_PRESETS[preset] if sparse else {})}
    n_step = sparse_settings.default_n_step(algo, sparse, STAGE_ALGOS) if n_step is None else n_step
    settings = {"dataset": dataset, "task": task, "backbone": backbone, "algo": algo, "seed": seed, "preset": preset,
                "steps": steps or p["steps"], "eval_period": eval_period or p["eval_period"],
                "eval_steps": eval_steps or p["eval_steps"],
                "evaluation_stages": algo in STAGE_ALGOS if evaluation_stages is None else bool(evaluation_stages),
                "update_during_stages": bool(update_during_stages), "reset_optimizers": bool(reset_optimizers),
                "report_period": report_period or p["report_period"],
                "report_episodes": report_episodes or p["report_episodes"],
                "final_window": sparse_settings.FINAL_WINDOW if sparse else FINAL_WINDOW,
                "reward_shift": sparse_settings.reward_shift(sparse),
                "kl_weight": kl_weight, "n_step": n_step, "action_temperature": action_temperature,
                "checkpoint_period": checkpoint_period or p["checkpoint_period"],
                "buffer_size": buffer_size or p["buffer_size"]}
    with rundir.run_directory(out, "finetune", settings, SETTINGS_CHECKED_ON_RESUME, resume, force, command) as saved:
        check_settings(algo, settings, given)   # after the claim: a resumed run's own settings are compared first
        loop_config = LoopConfig(settings["steps"], settings["eval_period"], settings["eval_steps"],
                                 evaluation_stages=settings["evaluation_stages"],
                                 update_during_stages=settings["update_during_stages"],
                                 report_period=settings["report_period"], report_episodes=settings["report_episodes"],
                                 reward_shift=settings["reward_shift"])
        gde_config = GDEConfig(kl_weight=kl_weight, n_step=n_step, buffer_size=settings["buffer_size"])
        return _finetune(out, task, algo, settings, saved, loop_config, gde_config, offline_path, backbone_settings,
                         pretrain_steps, cache_dir, progress, pretrain_progress, interrupt_at, stop)


def _finetune(out, task, algo, settings, saved, loop_config, gde_config, offline_path, backbone_settings, pretrain_steps,
              cache_dir, progress, pretrain_progress, interrupt_at, stop):
    dataset, seed = settings["dataset"], settings["seed"]
    ckpt_path = os.path.join(out, "checkpoint.npz")
    if saved is not None:   # resume
        settings = saved
        gde_config = dataclasses.replace(gde_config, buffer_size=saved["buffer_size"])
        arrays, meta = read_checkpoint(ckpt_path, task)
        agent = make_backbone(meta["backbone"], meta["obs_dim"], meta["act_dim"],
                              backbone_config(meta["backbone"], meta["backbone_config"]))
        normalizer = ObsNormalizer(arrays["setup/obs_mean"], arrays["setup/obs_std"])
        reward_scale = meta["reward_scale"]
    else:
        agent, normalizer, offline_meta, source = offline_agent(dataset, task, seed, settings["preset"], offline_path,
                                                                out, backbone_settings, pretrain_steps, cache_dir,
                                                                pretrain_progress, stop, settings["backbone"])
        if settings["reset_optimizers"] or not offline_meta.get("adam_states"):
            for adam in agent.adam.values():
                adam.m[:], adam.v[:], adam.t[:] = 0, 0, 0
        reward_scale = float(offline_meta["reward_scale"])
        settings = {**rundir.read_config(out), "offline_agent": os.path.abspath(source),
                    "offline_normalized_score": offline_meta.get("normalized_score"),
                    "offline_data_fingerprint": offline_meta.get("data_fingerprint"),
                    "optimizers": "reset" if settings["reset_optimizers"] else (
                        "continued from the offline agent" if offline_meta.get("adam_states")
                        else "fresh: the offline agent has no saved Adam states"),
                    "stage_share": loop_config.stage_share, "backbone_config": dataclasses.asdict(agent.config)}
        write_json(os.path.join(out, "config.json"), settings)
    offline = None
    if algo_row(algo).offline_data:
        from gde_ref.data.datasets import load_dataset
        offline = sparse_settings.shifted(load_dataset(dataset), settings.get("reward_shift", 0.0))
    buffer = make_buffer(algo, agent.obs_dim, agent.act_dim, gde_config, agent.config.discount, offline, agent)
    learner = make_learner(algo, agent, normalizer, reward_scale, gde_config, settings["action_temperature"], seed=seed,
                           offline=offline, buffer=buffer)
    env, eval_env, report_env = make_env(task), make_env(task), make_env(task)
    if saved is not None:
        buffer.load_state_dict({k[len("buffer/"):]: v for k, v in arrays.items() if k.startswith("buffer/")})
        load_learner(learner, arrays, meta["learner"])
        for name, e, s in (("env", env, seed), ("eval_env", eval_env, seed + 1)):
            set_env_state(e, arrays[f"{name}/mj_state"], meta["envs"][name], s)
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        state = LoopState(obs=arrays["loop/obs"], **meta["loop"])
        if progress is not None:
            progress.update(state.env_step)
    else:
        rng, state = np.random.default_rng(seed), None
        eval_env.reset(seed=seed + 1)   # seeded even if no stage ever uses it: a checkpoint saves its state
    setup = {"agent": agent, "normalizer": normalizer, "reward_scale": reward_scale,
             "backbone_config": dataclasses.asdict(agent.config)}
    log = RunLog(out, task, f"{algo} on {dataset} (seed {seed})", [] if state is None else state.rows)

    def on_checkpoint(s):
        save_checkpoint(ckpt_path, task, s, learner, buffer, rng, env, eval_env, setup)
        if interrupt_at is not None and s.env_step >= interrupt_at:
            raise RunInterrupted(f"interrupted after the checkpoint at env step {s.env_step}", s.env_step)

    def on_log(row):
        log(row)
        if progress is not None and row["kind"] == "report":
            progress.set_postfix(normalized_score=f"{normalized_score(task, row['eval_return']):.1f}")

    t0 = time.perf_counter()
    start = 0 if state is None else state.env_step
    rows = run_online(env, eval_env, learner, buffer, loop_config, rng, seed=seed, on_log=on_log,
                      progress=progress, state=state, on_checkpoint=on_checkpoint,
                      checkpoint_period=settings["checkpoint_period"], report_env=report_env, stop=stop)
    seconds = time.perf_counter() - t0
    reports = report_rows(rows)
    summary = {"algo": algo, "dataset": dataset, "seed": seed,
               "final_normalized_score": float(normalized_score(task, final_score(rows, settings["final_window"]))),
               "final_window": settings["final_window"],
               "last_normalized_score": float(normalized_score(task, reports[-1]["eval_return"])),
               "env_steps": settings["steps"], "exploration_steps": reports[-1]["exploration_steps"],
               "evaluation_stage_steps": settings["steps"] - reports[-1]["exploration_steps"],
               "updates": reports[-1]["updates"], "evaluation_stages": settings["evaluation_stages"],
               "stages": sum(r["kind"] == "stage" for r in rows), "reports": len(reports),
               "report_episodes": settings["report_episodes"],
               "teacher_swaps": int(getattr(learner, "swaps", 0)),
               "env_steps_per_second": round((settings["steps"] - start) / max(seconds, 1e-9), 1)}
    write_json(os.path.join(out, "summary.json"), summary)
    return summary
