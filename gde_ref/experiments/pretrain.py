"""IQL offline pretraining (paper Section 4.2.2, Eq. 2-4): ``gde-ref pretrain``.

    data   = load_dataset("hopper-medium")               # a local Minari dataset (gde-ref make-dataset)
    arrays = prepare_transitions(data, gamma)             # state normalisation, reward scaling
    for step in range(steps):                             # IQL updates on uniform batches
        agent.update(batch, actor_lr=cosine(step))        # actor learning rate: cosine decay to 0
        every eval_every steps: evaluate the mean action, log the D4RL normalized score
    write DIR/offline.npz (networks, normaliser, config), DIR/summary.json, DIR/log.csv
"""
import csv
import dataclasses
import os
import time

import numpy as np

from gde_ref.agents.iql import IQLAgent, cosine_lr
from gde_ref.checkpoint import load_npz, save_npz, write_json
from gde_ref.config import IQLConfig
from gde_ref.data.datasets import load_dataset
from gde_ref.data.prepare import ObsNormalizer, prepare_transitions
from gde_ref.envs.make import make_env, normalized_score, task_of_env_id

PRESETS = {  # budgets: gradient steps, evaluation period, evaluation episodes
    "quick": {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 2},
    "laptop": {"steps": 100_000, "eval_every": 10_000, "eval_episodes": 5},
    "paper": {"steps": 1_000_000, "eval_every": 50_000, "eval_episodes": 10},
}
FORMAT = "gde_ref/iql-offline-v1"


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


def adam_arrays(agent):
    """name -> Adam's m, v and t of each of the agent's trained networks (``adam/q1/m``, ...), by reference."""
    return {f"adam/{name}/{part}": getattr(adam, part) for name, adam in agent.adam.items() for part in "mvt"}


def save_offline(path, agent, normalizer, meta):
    """DIR/offline.npz: every network, the Adam states of the trained ones (m, v, t: fine-tuning continues
    them, as IQL's own fine-tuning continues one learner across both phases), the observation normaliser
    and the metadata (config included)."""
    arrays = dict(agent.state_arrays(), obs_mean=normalizer.mean, obs_std=normalizer.std, **adam_arrays(agent))
    save_npz(path, arrays, {"format": FORMAT, "config": dataclasses.asdict(agent.config),
                            "obs_dim": agent.obs_dim, "act_dim": agent.act_dim, "adam_states": True, **meta})


def load_offline(path, task=None):
    """(IQLAgent, ObsNormalizer, meta) from an offline.npz; ``task`` checks it was trained on that task.

    The agent's Adam states are the saved ones when the file has them (``meta["adam_states"]``; files
    written before they were saved have fresh states, m = v = 0, t = 0)."""
    arrays, meta = load_npz(path, "offline agent")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not an IQL offline agent (format {meta.get('format')!r}); "
                         "make one with gde-ref pretrain")
    if task is not None and meta.get("task") != task:
        raise ValueError(f"{path} was trained on {meta.get('task')!r} ({meta.get('dataset')}), not {task!r}: "
                         "pretrain on this task's dataset or pass the matching checkpoint")
    cfg = meta["config"]
    config = IQLConfig(**{**cfg, "hidden": tuple(cfg["hidden"])})
    agent = IQLAgent(meta["obs_dim"], meta["act_dim"], config)
    agent.load_state_arrays(arrays)
    if meta.get("adam_states"):
        for name, target in adam_arrays(agent).items():
            target[...] = arrays[name]
    return agent, ObsNormalizer(arrays["obs_mean"], arrays["obs_std"]), meta


def pretrain(dataset, out, steps, seed=0, eval_every=None, eval_episodes=5, config=None, progress=None,
             command=None):
    """Train IQL offline on ``dataset`` and write ``out``/offline.npz, summary.json and log.csv.

    Returns the summary: {"normalized_score", "return", "steps", ...}.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    data = load_dataset(dataset)
    if data.env_id is None:
        raise ValueError(f"dataset {dataset} does not say which env it came from; pretrain needs a locomotion "
                         "dataset made by gde-ref make-dataset (or an official Minari mujoco one)")
    task = task_of_env_id(data.env_id)
    config = config or IQLConfig()
    arrays = prepare_transitions(data, config.discount)
    agent = IQLAgent(arrays.obs.shape[1], arrays.actions.shape[1], config, seed=seed)
    rng = np.random.default_rng(seed)
    env = make_env(task)
    eval_every = eval_every or steps
    rows, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        stats = agent.update(arrays.batch(rng, config.batch_size), actor_lr=cosine_lr(config.actor_lr, step - 1, steps))
        if progress is not None:
            progress.update(1)
        if step % eval_every == 0 or step == steps:
            ret = evaluate(agent, arrays.normalizer, env, eval_episodes, seed=10_000 * (seed + 1) + step)
            rows.append({"step": step, "return": ret, "normalized_score": float(normalized_score(task, ret)),
                         **stats})
            if progress is not None:
                progress.set_postfix(score=f"{rows[-1]['normalized_score']:.1f}")
    summary = {"normalized_score": rows[-1]["normalized_score"], "return": rows[-1]["return"], "steps": steps,
               "dataset": dataset, "task": task, "seed": seed,
               "behaviour_normalized_score": data.behaviour_score,
               "seconds": round(time.perf_counter() - t0, 1)}
    os.makedirs(out, exist_ok=True)
    save_offline(os.path.join(out, "offline.npz"), agent, arrays.normalizer,
                 {"task": task, "dataset": dataset, "data_fingerprint": data.fingerprint(), "seed": seed,
                  "steps": steps, "reward_scale": arrays.reward_scale,
                  "normalized_score": summary["normalized_score"], "command": command})
    with open(os.path.join(out, "log.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_json(os.path.join(out, "summary.json"), summary)
    return summary
