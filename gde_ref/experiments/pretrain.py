"""Offline pretraining of a backbone (IQL: paper Section 4.2.2, Eq. 2-4; TD3+BC): ``gde-ref pretrain``.

    data   = load_dataset("hopper-medium")               # a local Minari dataset (gde-ref make-dataset)
    arrays = prepare_transitions(data, gamma)             # state normalisation, reward scaling
                                                          # (sparse tasks: r - 1, unscaled; experiments.sparse;
                                                          #  maze2d: 0/1 as they are)
    agent  = make_backbone(backbone, ...)                 # agents.backbones.BACKBONES: iql, td3bc, cql, awac, ...
    for step in range(steps):                             # the backbone's updates on uniform batches
        agent.update(batch, actor_lr=agent.offline_actor_lr(step, steps))   # IQL: cosine decay to 0
        every eval_every steps: evaluate the mean action, log the D4RL normalized score
    write DIR/offline.npz (networks, normaliser, config), DIR/summary.json, DIR/log.csv
"""
import csv
import dataclasses
import io
import os
import time

import numpy as np

from gde_ref.agents.backbones import backbone_config, make_backbone
from gde_ref.experiments import rundir
from gde_ref.checkpoint import load_npz, save_npz, write_json, write_text
from gde_ref.data.datasets import load_dataset
from gde_ref.data.prepare import ObsNormalizer, prepare_transitions
from gde_ref.data.returns_to_go import with_returns_to_go
from gde_ref.envs.make import is_sparse, make_env, normalized_score, scales_rewards, task_of_env_id
from gde_ref.experiments import sparse as sparse_settings
from gde_ref.finetune.loop import RunInterrupted

PRESETS = {  # budgets: gradient steps, evaluation period, evaluation episodes
    "quick": {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 2},
    "laptop": {"steps": 100_000, "eval_every": 10_000, "eval_episodes": 5},
    "paper": {"steps": 1_000_000, "eval_every": 50_000, "eval_episodes": 10},
}
FORMAT = "gde_ref/offline-agent-v2"
FORMAT_V1 = "gde_ref/iql-offline-v1"   # IQL agents written before backbones had a name; still read


def evaluate(agent, normalizer, env, episodes, seed):
    """Mean undiscounted return of the deterministic (mean) action over ``episodes`` episodes."""
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(normalizer(obs)))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def split_arrays(state):
    """(arrays, scalars) of an agent's ``state()``: arrays go to the .npz, scalars to its metadata."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    return arrays, {k: v for k, v in state.items() if k not in arrays}


def save_offline(path, agent, normalizer, meta):
    """DIR/offline.npz: the agent's whole ``state()`` (networks, targets, Adam m, v, t: fine-tuning continues
    them, as IQL's own fine-tuning continues one learner across both phases), the observation normaliser
    and the metadata (backbone name and config included)."""
    arrays, scalars = split_arrays(agent.state())
    save_npz(path, dict(arrays, obs_mean=normalizer.mean, obs_std=normalizer.std),
             {"format": FORMAT, "backbone": agent.name, "config": dataclasses.asdict(agent.config),
              "obs_dim": agent.obs_dim, "act_dim": agent.act_dim, "adam_states": True, "agent_scalars": scalars,
              **meta})


def load_offline(path, task=None, backbone=None):
    """(agent, ObsNormalizer, meta) from an offline.npz; ``task`` checks it was trained on that task and
    ``backbone`` that it is that backbone's agent.

    The agent's Adam states are the saved ones when the file has them (``meta["adam_states"]``; IQL files
    written before they were saved have fresh states, m = v = 0, t = 0)."""
    arrays, meta = load_npz(path, "offline agent")
    if meta.get("format") not in (FORMAT, FORMAT_V1):
        raise ValueError(f"{path} is not an offline agent (format {meta.get('format')!r}); "
                         "make one with gde-ref pretrain")
    name = meta.get("backbone", "iql")
    if backbone is not None and name != backbone:
        raise ValueError(f"{path} is a {name} agent, not {backbone}: pass --backbone {name}, or pretrain one with "
                         f"gde-ref pretrain --backbone {backbone}")
    if task is not None and meta.get("task") != task:
        raise ValueError(f"{path} was trained on {meta.get('task')!r} ({meta.get('dataset')}), not {task!r}: "
                         "pretrain on this task's dataset or pass the matching checkpoint")
    agent = make_backbone(name, meta["obs_dim"], meta["act_dim"], backbone_config(name, meta["config"]))
    fresh = {k: v.copy() for k, v in agent.state().items() if isinstance(v, np.ndarray)}
    agent.load_state({**fresh, **arrays, **meta.get("agent_scalars", {})}, f"{path}")
    return agent, ObsNormalizer(arrays["obs_mean"], arrays["obs_std"]), meta


def check_data_fingerprint(meta, dataset, agent_path, required=True):
    """Refuse an offline agent (``meta`` from its offline.npz) whose data differs from ``dataset`` as stored
    here now (the dataset was remade with other contents). required=False: skip the check when the dataset
    is not available here or the agent recorded no fingerprint (files made before fingerprints existed)."""
    recorded = meta.get("data_fingerprint")
    if recorded is None:
        return
    try:
        current = load_dataset(dataset).fingerprint()
    except (FileNotFoundError, ValueError):
        if required:
            raise
        return
    if current != recorded:
        raise ValueError(f"{agent_path} was trained on other data than the {dataset} stored here now (data "
                         f"fingerprint {recorded}, now {current}: the dataset was remade): pretrain again on "
                         "this data, or restore the dataset it was trained on")


CHECKED_SETTINGS = ("dataset", "backbone", "steps", "seed", "eval_every", "eval_episodes", "config")


def pretrain(dataset, out, steps, seed=0, eval_every=None, eval_episodes=5, config=None, progress=None,
             command=None, resume=False, force=False, stop=None, checkpoint_every=None, backbone="iql"):
    """Train ``backbone`` (named in ``agents.backbones.BACKBONES``) offline on ``dataset`` and write
    ``out``/offline.npz, summary.json and log.csv. ``config``: the backbone's config (its defaults if None).

    On a sparse-reward task (PointMaze) the default config and the rewards are ``experiments.sparse``'s.
    ``out`` is claimed as a run directory (``rundir.claim``: one run per directory, a lock, config.json).
    Every ``checkpoint_every`` steps (default: ``eval_every``) and at a stop (``stop()`` True: Ctrl-C) the
    agent, its Adam states, the rng and the log rows go to ``out``/checkpoint.npz, from which ``resume=True``
    continues bit-identically; ``force=True`` deletes a previous run in ``out``.
    Returns the summary: {"normalized_score", "return", "steps", ...}.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    config = config or sparse_settings.default_backbone_config(backbone, sparse_settings.sparse_dataset(dataset))
    eval_every = eval_every or steps
    checkpoint_every = checkpoint_every or eval_every
    settings = {"dataset": dataset, "backbone": backbone, "steps": steps, "seed": seed, "eval_every": eval_every,
                "eval_episodes": eval_episodes, "config": dataclasses.asdict(config)}
    settings["config"] = {**settings["config"], "hidden": list(config.hidden)}   # as JSON reads it back
    with rundir.run_directory(out, "pretrain", settings, CHECKED_SETTINGS, resume, force, command) as saved:
        return _pretrain(dataset, out, steps, seed, eval_every, eval_episodes, (backbone, config), progress, command,
                         saved is not None, stop, checkpoint_every)


def _pretrain(dataset, out, steps, seed, eval_every, eval_episodes, backbone_and_config, progress, command, resume,
              stop, checkpoint_every):
    backbone, config = backbone_and_config
    data = load_dataset(dataset)
    if data.env_id is None:
        raise ValueError(f"dataset {dataset} does not say which env it came from; pretrain needs a locomotion "
                         "dataset made by gde-ref make-dataset (or an official Minari mujoco one)")
    task = task_of_env_id(data.env_id)
    shift = sparse_settings.reward_shift(is_sparse(task))   # sparse tasks: r - 1, not scaled
    training = sparse_settings.shifted(data, shift)
    arrays = prepare_transitions(training, config.discount, scale_rewards=scales_rewards(task))   # mazes: not
    agent = make_backbone(backbone, arrays.obs.shape[1], arrays.actions.shape[1], config, seed=seed)
    if getattr(agent, "uses_mc_returns", False):   # Cal-QL: each batch carries its states' returns-to-go
        arrays = with_returns_to_go(arrays, training, config.discount, config.failure_reward)
    rng = np.random.default_rng(seed)
    env = make_env(task)
    rows, first, seconds = [], 1, 0.0
    ckpt = os.path.join(out, "checkpoint.npz")
    if resume:
        saved, meta = load_npz(ckpt, "pretraining checkpoint")
        agent.load_state({**saved, **meta.get("agent_scalars", {})}, ckpt)
        rng.bit_generator.state = meta["rng"]
        rows, first, seconds = meta["rows"], meta["step"] + 1, meta["seconds"]
        if progress is not None:
            progress.update(meta["step"])
    t0 = time.perf_counter()

    def checkpoint(step):
        agent_arrays, agent_scalars = split_arrays(agent.state())
        save_npz(ckpt, agent_arrays,
                 {"format": FORMAT + "-checkpoint", "step": step, "rng": rng.bit_generator.state, "rows": rows,
                  "agent_scalars": agent_scalars,
                  "seconds": seconds + time.perf_counter() - t0})

    for step in range(first, steps + 1):
        if stop is not None and stop():
            checkpoint(step - 1)
            raise RunInterrupted(f"stopped at step {step - 1}", step - 1)
        stats = agent.update(arrays.batch(rng, config.batch_size), actor_lr=agent.offline_actor_lr(step - 1, steps))
        if progress is not None:
            progress.update(1)
        if step % eval_every == 0 or step == steps:
            ret = evaluate(agent, arrays.normalizer, env, eval_episodes, seed=10_000 * (seed + 1) + step)
            rows.append({"step": step, "return": ret, "normalized_score": float(normalized_score(task, ret)),
                         **stats})
            if progress is not None:
                progress.set_postfix(score=f"{rows[-1]['normalized_score']:.1f}")
        if step % checkpoint_every == 0 or step == steps:
            checkpoint(step)
    summary = {"normalized_score": rows[-1]["normalized_score"], "return": rows[-1]["return"], "steps": steps,
               "backbone": backbone,
               "dataset": dataset, "task": task, "seed": seed,
               "behaviour_normalized_score": data.behaviour_score,
               "seconds": round(seconds + time.perf_counter() - t0, 1)}
    save_offline(os.path.join(out, "offline.npz"), agent, arrays.normalizer,
                 {"task": task, "dataset": dataset, "data_fingerprint": data.fingerprint(), "seed": seed,
                  "steps": steps, "reward_scale": arrays.reward_scale, "reward_shift": shift,
                  "normalized_score": summary["normalized_score"], "command": command})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "return", "normalized_score", *agent.STAT_NAMES])
    writer.writeheader()
    writer.writerows(rows)
    write_text(os.path.join(out, "log.csv"), buf.getvalue())
    write_json(os.path.join(out, "summary.json"), summary)
    return summary
