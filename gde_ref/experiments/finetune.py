"""Online fine-tuning of an offline IQL agent on a MuJoCo task (paper Algorithm 1, Table 1): ``gde-ref finetune``.

    agent = load_offline(DIR/offline.npz)   or pretrain (cached in OUT/../pretrained/DATASET-PRESET-seedS)
    learner = make_learner(algo, agent, ...);  buffer = make_buffer(algo, ...)
    run_online(env, eval_env, learner, buffer, F, L, budget)    # the shared loop, checkpointed
    final evaluation of the exploitation policy (reporting only, outside the budget)
    write RUN/config.json, RUN/log.csv, RUN/summary.json, RUN/curve.png

Resume: every ``checkpoint_period`` env steps (and at the end) RUN/checkpoint.npz is written atomically with
everything the run depends on (``save_checkpoint``), so ``resume=True`` continues from it and ends
bit-identical to a run that was never interrupted.
"""
import csv
import dataclasses
import io
import json
import os
import time

import numpy as np

from gde_ref import plots
from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz, save_npz, write_json, write_text
from gde_ref.config import GDEConfig, IQLConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import make_env, normalized_score, parse_dataset_name
from gde_ref.experiments import pretrain as pretrain_recipe
from gde_ref.finetune.gde import GDEFinetuner
from gde_ref.finetune.loop import LoopConfig, LoopState, final_score, report_rows, run_online
from gde_ref.finetune.variants import ALGOS, OFFLINE_DATA_ALGOS, STAGE_ALGOS, RNDFinetuner, make_buffer, make_learner

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
# log.csv: one row per evaluation, written as it happens. kind: "report" (the reporting evaluation: eval_return
# is the mean over ``episodes`` complete episodes, eval_return_std their std) or "stage" (GDE's evaluation
# stage: eval_return is its score, teacher_* the decision after it). env_step / exploration_steps / updates:
# the budget used when the row was made (all env steps / those outside stages / learner updates). kl_weight
# (rho), q_mean and the losses are those of the last update before the row.
LOG_COLUMNS = ("kind", "env_step", "exploration_steps", "updates", "eval_return", "normalized_score",
               "eval_return_std", "episodes", "teacher_score", "teacher_swapped", "kl_weight", "q_mean",
               "critic_loss", "actor_loss", "explore_loss")
CHECKPOINT_FORMAT = "gde_ref/finetune-checkpoint-v2"
SETTINGS_CHECKED_ON_RESUME = ("dataset", "algo", "seed", "steps", "eval_period", "eval_steps", "kl_weight",
                              "n_step", "action_temperature", "evaluation_stages", "update_during_stages",
                              "reset_optimizers", "report_period", "report_episodes")
LOOP_STATE_FIELDS = ("env_step", "stage_steps", "updates", "next_stage", "n_stages", "next_report", "n_reports",
                     "next_checkpoint", "stats", "rows")


class RunInterrupted(RuntimeError):
    """Raised by ``finetune(..., interrupt_at=n)`` right after the first checkpoint at or after step n (tests)."""


# ------------------------------------------------------------------------------------------------
# state of the learner and of the envs, as arrays (loaded in place: compiled bundles stay valid)
# ------------------------------------------------------------------------------------------------
def _adam_arrays(prefix, adam):
    return {f"{prefix}/m": adam.m, f"{prefix}/v": adam.v, f"{prefix}/t": adam.t}


def learner_arrays(learner):
    """name -> the learner's own arrays: every network, its Adam m, v, t, the targets, GDE's exploration
    policy and teacher, RND's networks. Returned by reference, so loading writes into them in place."""
    agent = learner.learner.backbone if isinstance(learner, GDEFinetuner) else learner.agent
    out = {f"agent/{k}": v for k, v in agent.state_arrays().items()}
    for name, adam in agent.adam.items():
        out.update(_adam_arrays(f"adam/{name}", adam))
    if isinstance(learner, GDEFinetuner):
        g = learner.learner
        out.update({"gde/explore": g.explore.params, "gde/teacher": g.teacher_params,
                    **_adam_arrays("adam/explore", g.explore_adam)})
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        out.update({"rnd/predictor": r.predictor.params, "rnd/target": r.target.params,
                    "rnd/obs_mean": r.obs_mean, "rnd/obs_var": r.obs_var, **_adam_arrays("adam/rnd", r.adam)})
    return out


def learner_scalars(learner):
    """The learner's non-array state: teacher score, swap count, current rho, RND's running statistics."""
    out = {}
    if isinstance(learner, GDEFinetuner):
        out.update(teacher_score=learner.teacher_score, swaps=learner.swaps, kl_weight=learner.kl_weight)
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        out.update(rnd_obs_count=r.obs_count, rnd_bonus_var=r.bonus_var, rnd_bonus_count=r.bonus_count)
    return out


def load_learner(learner, arrays, scalars):
    for name, target in learner_arrays(learner).items():
        saved = arrays.get(f"learner/{name}")
        if saved is None or saved.shape != target.shape:
            raise ValueError(f"checkpoint's learner/{name} is {None if saved is None else saved.shape}, this "
                             f"learner needs {target.shape}: it was saved by another algorithm or network size")
        target[...] = saved
    if isinstance(learner, GDEFinetuner):
        learner.teacher_score, learner.swaps = scalars["teacher_score"], scalars["swaps"]
        learner.kl_weight = scalars["kl_weight"]
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        r.obs_count, r.bonus_var, r.bonus_count = (scalars["rnd_obs_count"], scalars["rnd_bonus_var"],
                                                   scalars["rnd_bonus_count"])


def _time_limit(env):
    import gymnasium as gym
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def env_state(env):
    """(MuJoCo integration state (mj_getState, mjSTATE_INTEGRATION), {np_random state, elapsed steps})."""
    import mujoco
    u, kind = env.unwrapped, mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(u.model, kind))
    mujoco.mj_getState(u.model, u.data, state, kind)
    return state, {"np_random": u.np_random.bit_generator.state, "elapsed_steps": _time_limit(env)._elapsed_steps}


def set_env_state(env, state, info, seed):
    """Put a freshly made env exactly where ``env_state`` saw it (reset first: wrappers require it)."""
    import mujoco
    env.reset(seed=seed)
    u, kind = env.unwrapped, mujoco.mjtState.mjSTATE_INTEGRATION
    if state.shape != (mujoco.mj_stateSize(u.model, kind),):
        raise ValueError(f"checkpoint's env state has {state.shape[0]} numbers, {env.spec.id} needs "
                         f"{mujoco.mj_stateSize(u.model, kind)}: it was saved on another env")
    mujoco.mj_setState(u.model, u.data, state, kind)
    u.np_random.bit_generator.state = info["np_random"]
    _time_limit(env)._elapsed_steps = info["elapsed_steps"]


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
def save_checkpoint(path, task, state, learner, buffer, rng, env, eval_env, setup):
    """RUN/checkpoint.npz, atomically: the learner (``learner_arrays``, ``learner_scalars``), the buffer
    (``state_dict``), the loop's position and log rows, the rng state, both envs' states, and what is
    needed to rebuild the learner (normaliser, reward scale, IQL config)."""
    arrays = {f"learner/{k}": v for k, v in learner_arrays(learner).items()}
    arrays.update({f"buffer/{k}": v for k, v in buffer.state_dict().items()})
    env_arrays, env_info = {}, {}
    for name, e in (("env", env), ("eval_env", eval_env)):
        env_arrays[f"{name}/mj_state"], env_info[name] = env_state(e)
    arrays.update(env_arrays, **{"loop/obs": np.asarray(state.obs), "setup/obs_mean": setup["normalizer"].mean,
                                 "setup/obs_std": setup["normalizer"].std})
    loop = {k: getattr(state, k) for k in LOOP_STATE_FIELDS}
    meta = {"format": CHECKPOINT_FORMAT, "task": task, "loop": loop, "rng": rng.bit_generator.state,
            "envs": env_info, "learner": learner_scalars(learner), "reward_scale": setup["reward_scale"],
            "iql_config": dataclasses.asdict(setup["agent"].config), "obs_dim": setup["agent"].obs_dim,
            "act_dim": setup["agent"].act_dim, "buffer_n_step": buffer.n_step, "buffer_discount": buffer.discount}
    save_npz(path, arrays, meta)


def read_checkpoint(path, task):
    arrays, meta = load_npz(path, "fine-tuning checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a fine-tuning checkpoint (format {meta.get('format')!r})")
    if meta["task"] != task:
        raise ValueError(f"{path} was saved on {meta['task']!r}, not {task!r}: resume with the run's own dataset")
    return arrays, meta


# ------------------------------------------------------------------------------------------------
# the recipe
# ------------------------------------------------------------------------------------------------
def offline_agent(dataset, task, seed, preset, offline_path, out, iql_config=None, pretrain_steps=None,
                  cache_dir=None):
    """(agent, normalizer, meta, path): ``offline_path``'s agent, else a cached pretrained one, pretraining it
    first if the cache (``cache_dir`` or OUT/../pretrained/DATASET-PRESET-seedS) has none with these settings."""
    if offline_path is not None:
        return (*pretrain_recipe.load_offline(offline_path, task), os.fspath(offline_path))
    budget = pretrain_recipe.PRESETS[preset]
    steps = pretrain_steps or budget["steps"]
    config = iql_config or IQLConfig()
    cache = cache_dir or os.path.join(os.path.dirname(os.path.abspath(out)), "pretrained",
                                      f"{dataset}-{preset}-seed{seed}")
    path = os.path.join(cache, "offline.npz")
    if os.path.isfile(path):
        agent, normalizer, meta = pretrain_recipe.load_offline(path, task)
        if (meta.get("dataset"), meta.get("seed"), meta.get("steps"), agent.config) == (dataset, seed, steps, config):
            return agent, normalizer, meta, path
    pretrain_recipe.pretrain(dataset, cache, steps, seed=seed, eval_every=min(budget["eval_every"], steps),
                             eval_episodes=budget["eval_episodes"], config=config)
    return (*pretrain_recipe.load_offline(path, task), path)


def _log_row(task, row):
    full = {"normalized_score": float(normalized_score(task, row["eval_return"])), **row}
    return {k: full.get(k, "" if k == "kind" else float("nan")) for k in LOG_COLUMNS}


def _check_resumable(out, settings):
    """RUN's saved settings (config.json), if RUN has a checkpoint and was started with ``settings``."""
    if not os.path.isfile(os.path.join(out, "checkpoint.npz")):
        raise FileNotFoundError(f"no checkpoint at {os.path.join(out, 'checkpoint.npz')} to resume: start the run "
                                "without --resume")
    with open(os.path.join(out, "config.json")) as f:
        saved = json.load(f)
    changed = [k for k in SETTINGS_CHECKED_ON_RESUME if saved.get(k) != settings[k]]
    if changed:
        raise ValueError(f"{out} was started with other settings ({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}): "
                         "resume with the same ones")
    return saved


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


def finetune(dataset, algo, out, steps=None, seed=0, preset="laptop", offline_path=None, resume=False,
             kl_weight=0.3, n_step=1, action_temperature=1.0, eval_period=None, eval_steps=None,
             evaluation_stages=None, update_during_stages=False, reset_optimizers=False, report_period=None,
             report_episodes=None, checkpoint_period=None, buffer_size=None, iql_config=None, pretrain_steps=None,
             cache_dir=None, progress=None, command=None, interrupt_at=None):
    """Fine-tune an offline IQL agent with ``algo`` (one of ``ALGOS``) on ``dataset``'s task; returns the summary.

    steps (T), eval_period (F), eval_steps (L), report_period, report_episodes, checkpoint_period, buffer_size:
    default to ``PRESETS[preset]``. evaluation_stages: run GDE's evaluation stage (default: only for GDE and
    its ablations, ``STAGE_ALGOS``; True gives a baseline the same stages, an equal-data comparison);
    update_during_stages: also update during stage steps (default no: the scored policy is the one the
    teacher becomes). reset_optimizers: start every Adam state afresh instead of continuing the offline
    agent's (the default, as IQL's own fine-tuning continues one learner across both phases).
    kl_weight: rho_0; n_step: n of the buffer's returns (1 for locomotion); action_temperature: Fig. 2d's t.
    iql_config, pretrain_steps, cache_dir: for pretraining when ``offline_path`` is None.
    resume: continue RUN/checkpoint.npz (the other settings must be the run's). interrupt_at: tests only.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(ALGOS)}")
    task, _ = parse_dataset_name(dataset)
    p = PRESETS[preset]
    stages = algo in STAGE_ALGOS if evaluation_stages is None else bool(evaluation_stages)
    settings = {"dataset": dataset, "task": task, "algo": algo, "seed": seed, "preset": preset,
                "steps": steps or p["steps"], "eval_period": eval_period or p["eval_period"],
                "eval_steps": eval_steps or p["eval_steps"], "evaluation_stages": stages,
                "update_during_stages": bool(update_during_stages), "reset_optimizers": bool(reset_optimizers),
                "report_period": report_period or p["report_period"],
                "report_episodes": report_episodes or p["report_episodes"], "final_window": FINAL_WINDOW,
                "kl_weight": kl_weight, "n_step": n_step, "action_temperature": action_temperature,
                "checkpoint_period": checkpoint_period or p["checkpoint_period"],
                "buffer_size": buffer_size or p["buffer_size"]}
    gde_config = GDEConfig(kl_weight=kl_weight, n_step=n_step, buffer_size=settings["buffer_size"])
    if algo.startswith("gde") and action_temperature != 1.0:
        raise ValueError(f"action_temperature applies to the IQL variants (Fig. 2d), not to {algo!r}")
    if settings["checkpoint_period"] < 1:
        raise ValueError(f"checkpoint_period must be >= 1, got {settings['checkpoint_period']}")
    if resume:
        settings = _check_resumable(out, settings)
    if algo in STAGE_ALGOS and not stages:
        raise ValueError(f"{algo} needs its evaluation stages (the teacher is chosen by them): drop "
                         "--no-evaluation-stages")
    loop_config = LoopConfig(settings["steps"], settings["eval_period"], settings["eval_steps"],
                             evaluation_stages=stages, update_during_stages=settings["update_during_stages"],
                             report_period=settings["report_period"], report_episodes=settings["report_episodes"])
    ckpt_path, config_path = os.path.join(out, "checkpoint.npz"), os.path.join(out, "config.json")
    if resume:
        arrays, meta = read_checkpoint(ckpt_path, task)
        cfg = meta["iql_config"]
        agent = IQLAgent(meta["obs_dim"], meta["act_dim"], IQLConfig(**{**cfg, "hidden": tuple(cfg["hidden"])}))
        normalizer = ObsNormalizer(arrays["setup/obs_mean"], arrays["setup/obs_std"])
        reward_scale = meta["reward_scale"]
    else:
        if os.path.isfile(ckpt_path):
            raise FileExistsError(f"{out} already holds a run (checkpoint.npz): pass --resume to continue it, "
                                  "or choose another --out")
        agent, normalizer, offline_meta, source = offline_agent(dataset, task, seed, preset, offline_path, out,
                                                                iql_config, pretrain_steps, cache_dir)
        if reset_optimizers or not offline_meta.get("adam_states"):
            for adam in agent.adam.values():
                adam.m[:], adam.v[:], adam.t[:] = 0, 0, 0
        reward_scale = float(offline_meta["reward_scale"])
        settings.update(offline_agent=os.path.abspath(source), offline_normalized_score=offline_meta.get(
            "normalized_score"), offline_data_fingerprint=offline_meta.get("data_fingerprint"),
            optimizers="reset" if reset_optimizers else ("continued from the offline agent" if offline_meta.get(
                "adam_states") else "fresh: the offline agent has no saved Adam states"),
            stage_share=loop_config.stage_share, iql_config=dataclasses.asdict(agent.config), command=command)
    learner = make_learner(algo, agent, normalizer, reward_scale, gde_config, action_temperature, seed=seed)
    env, eval_env, report_env = make_env(task), make_env(task), make_env(task)
    if resume:
        buffer = ReplayBuffer(arrays["buffer/obs"].shape[0], agent.obs_dim, agent.act_dim, meta["buffer_n_step"],
                              meta["buffer_discount"])
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
        offline = None
        if algo in OFFLINE_DATA_ALGOS:
            from gde_ref.data.datasets import load_dataset
            offline = load_dataset(dataset)
        buffer = make_buffer(algo, agent.obs_dim, agent.act_dim, gde_config, agent.config.discount, offline)
        rng, state = np.random.default_rng(seed), None
        eval_env.reset(seed=seed + 1)   # seeded even if no stage ever uses it: a checkpoint saves its state
        os.makedirs(out, exist_ok=True)
        write_json(config_path, settings)
    setup = {"agent": agent, "normalizer": normalizer, "reward_scale": reward_scale}
    log = RunLog(out, task, f"{algo} on {dataset} (seed {seed})", [] if state is None else state.rows)

    def on_checkpoint(s):
        save_checkpoint(ckpt_path, task, s, learner, buffer, rng, env, eval_env, setup)
        if interrupt_at is not None and s.env_step >= interrupt_at:
            raise RunInterrupted(f"interrupted after the checkpoint at env step {s.env_step}")

    def on_log(row):
        log(row)
        if progress is not None and row["kind"] == "report":
            progress.set_postfix(normalized_score=f"{normalized_score(task, row['eval_return']):.1f}")

    t0 = time.perf_counter()
    start = 0 if state is None else state.env_step
    rows = run_online(env, eval_env, learner, buffer, loop_config, rng, seed=seed, on_log=on_log,
                      progress=progress, state=state, on_checkpoint=on_checkpoint,
                      checkpoint_period=settings["checkpoint_period"], report_env=report_env)
    seconds = time.perf_counter() - t0
    reports = report_rows(rows)
    summary = {"algo": algo, "dataset": dataset, "seed": seed,
               "final_normalized_score": float(normalized_score(task, final_score(rows, FINAL_WINDOW))),
               "final_window": FINAL_WINDOW,
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
