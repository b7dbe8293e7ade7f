"""Behaviour policies for the D4RL-protocol datasets: SAC training with the medium rule, rollouts, checkpoints.

    run = train_behaviour_sac("hopper", 200_000, seed=0, eval_every=5_000, medium_level=100 / 3)
    episodes = collect_episodes(make_env("hopper"), agent, 100_000, np.random.default_rng(0))

``gde_ref.data.generate`` turns these into datasets; this module knows nothing about Minari.
"""
import dataclasses
import json
import math
import pathlib
import time
import warnings

import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.config import SACConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.datasets import EPISODE_KEYS
from gde_ref.envs.make import make_env, normalized_score

POLICY_DIR = pathlib.Path(__file__).resolve().parent.parent / "policies"  # shipped behaviour policies


@dataclasses.dataclass
class BehaviourRun:
    """What ``train_behaviour_sac`` returns."""
    agent: SACAgent                 # the agent at the end of training
    checkpoints: dict               # "medium" (and "final"): {"actor_params", "step", "score", "return"}
    history: list                   # every whole episode SAC collected, each with "end_step" (global step)
    evaluations: list               # [(step, mean return, normalized score)]
    medium_level_reached: bool | None   # None when no medium_level was asked for
    seconds: float
    steps: int                      # environment steps actually taken


# -- policies ------------------------------------------------------------------------------------------
def save_policy(path, agent, **info):
    """Write the actor of a SACAgent (parameters, layout sizes, SACConfig, extra JSON ``info``) to ``path``."""
    config = dataclasses.asdict(agent.config)
    meta = {"obs_dim": agent.obs_dim, "act_dim": agent.act_dim, "dtype": agent.dtype.name, "config": config,
            "info": info}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, actor_params=agent.actor.params, meta=np.array(json.dumps(meta)))
    return path


def load_policy(path):
    """A SACAgent whose actor is the one saved at ``path`` (critics untrained), and the saved ``info`` dict."""
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        params = f["actor_params"]
    config = SACConfig(**{**meta["config"], "hidden": tuple(meta["config"]["hidden"])})
    agent = SACAgent(meta["obs_dim"], meta["act_dim"], config, seed=0, dtype=np.dtype(meta["dtype"]))
    if params.shape != agent.actor.params.shape:
        raise ValueError(f"{path}: actor has {params.size} parameters, its config gives {agent.actor.params.size}")
    agent.actor.params[:] = params
    return agent, meta["info"]


def with_actor(agent, actor_params):
    """A fresh agent (same config) carrying a checkpoint's actor parameters."""
    out = SACAgent(agent.obs_dim, agent.act_dim, agent.config, seed=0, dtype=agent.dtype)
    out.actor.params[:] = actor_params
    return out


# -- rollouts ------------------------------------------------------------------------------------------
def evaluate_policy(agent, env, episodes, seed):
    """Mean undiscounted return of the deterministic policy tanh(mu(s)) over ``episodes`` seeded episodes."""
    total = 0.0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs.astype(agent.dtype)))
            total += reward
            done = terminated or truncated
    return total / episodes


def _new_episode(obs, seed):
    return {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": [],
            "seed": seed}


def _close_episode(ep):
    out = {key: np.array(ep[key]) for key in EPISODE_KEYS}
    out["seed"] = ep["seed"]
    return out


def collect_episodes(env, policy, n_transitions, rng, progress=None):
    """Roll out ``policy`` (anything with ``act(obs, rng)``, e.g. a SACAgent) until >= n_transitions steps.

    Actions are samples tanh(mu + sigma eps) of the stochastic policy, eps drawn from ``rng``, no extra
    noise. Each episode is reset with a seed drawn from ``rng`` (stored as the episode's ``seed``) and is
    capped by the env's time limit (1000 steps for ``make_env``): the cap is a truncation, a fall a
    termination (a fall on the last allowed step is a termination only: the flags are never both set).
    Episodes are kept whole: the last one is *not* cut, so the total is n_transitions plus less than one
    episode. Returns a list of episode dicts (``save_dataset``'s format).
    """
    episodes, total = [], 0
    while total < n_transitions:
        seed = int(rng.integers(2**31 - 1))
        obs, _ = env.reset(seed=seed)
        ep = _new_episode(obs, seed)
        done = False
        while not done:
            action = np.array(policy.act(obs.astype(np.float32), rng))
            obs, reward, terminated, truncated, _ = env.step(action)
            truncated = truncated and not terminated  # a fall on the last allowed step is a terminal only
            for key, value in zip(EPISODE_KEYS, (obs, action, reward, terminated, truncated)):
                ep[key].append(value)
            done = terminated or truncated
            total += 1
            if progress is not None:
                progress(1)
        episodes.append(_close_episode(ep))
    return episodes


# -- SAC training --------------------------------------------------------------------------------------
def train_behaviour_sac(task, steps, seed, eval_every, medium_level=None, progress=None, *, config=None,
                        eval_episodes=5, log=None):
    """Online SAC on ``task`` for at most ``steps`` environment steps; D4RL's behaviour-policy training.

    Uniform random actions in [-1, 1]^A (the bounds of all three tasks) for ``config.learning_starts``
    steps, then samples of pi and one update per step (batch from a replay buffer holding every step).
    Every ``eval_every`` steps the deterministic policy is evaluated on ``eval_episodes`` seeded
    episodes of a separate env and scored with ``normalized_score``.

    Medium rule (``MEDIUM_RULE``): with ``medium_level`` (a normalized score, e.g. MEDIUM_LEVELS[task]),
    training stops at the first evaluation that reaches it; that is checkpoint ``"medium"``. If the budget
    ends first, ``"medium"`` is the best evaluation's checkpoint, ``medium_level_reached`` is False and a
    RuntimeWarning says so (``make_dataset`` also writes it into the dataset's metadata).
    ``checkpoints["final"]`` is the last step's actor. ``history`` holds every episode SAC completed
    (whole: observations, actions, rewards, terminations, truncations, seed, end_step); the episode still
    running when training stops is not included. ``progress(k)`` is called with each k steps taken,
    ``log(text)`` with a line per evaluation.
    """
    config = config or SACConfig()
    env, eval_env = make_env(task), make_env(task)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = SACAgent(obs_dim, act_dim, config, seed=seed)
    buffer = ReplayBuffer(steps, obs_dim, act_dim, discount=config.discount)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    history, evaluations, checkpoints, best = [], [], {}, -math.inf
    reached = None if medium_level is None else False
    ep_seed = int(rng.integers(2**31 - 1))
    obs, _ = env.reset(seed=ep_seed)
    ep = _new_episode(obs, ep_seed)
    step = 0
    while step < steps:
        if step < config.learning_starts:
            action = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            action = agent.act(obs.astype(np.float32), rng).copy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        truncated = truncated and not terminated
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        for key, value in zip(EPISODE_KEYS, (next_obs, action, reward, terminated, truncated)):
            ep[key].append(value)
        obs = next_obs
        step += 1
        if terminated or truncated:
            history.append({**_close_episode(ep), "end_step": step})
            ep_seed = int(rng.integers(2**31 - 1))
            obs, _ = env.reset(seed=ep_seed)
            ep = _new_episode(obs, ep_seed)
        if step > config.learning_starts:
            agent.update(buffer.sample(config.batch_size, rng), rng)
        if progress is not None:
            progress(1)
        if step % eval_every == 0 or step == steps:
            ret = evaluate_policy(agent, eval_env, eval_episodes, seed=10_000 + seed)
            score = normalized_score(task, ret)
            evaluations.append((step, float(ret), score))
            if log is not None:
                log(f"{task} SAC step {step}: evaluation return {ret:.1f}, normalized score {score:.1f}")
            point = {"actor_params": agent.actor.params.copy(), "step": step, "score": score, "return": float(ret)}
            if medium_level is not None and score > best:
                best, checkpoints["medium"] = score, point
                if score >= medium_level:
                    reached = True
                    break
    checkpoints["final"] = {"actor_params": agent.actor.params.copy(), "step": step,
                            "score": evaluations[-1][2], "return": evaluations[-1][1]}
    if reached is False:
        warnings.warn(f"{task}: SAC did not reach the medium level {medium_level:.1f} within {steps} steps "
                      f"(best evaluation {best:.1f} at step {checkpoints['medium']['step']}); using that "
                      "checkpoint as 'medium'. Give SAC more steps (a larger preset).", RuntimeWarning, stacklevel=2)
    env.close()
    eval_env.close()
    return BehaviourRun(agent, checkpoints, history, evaluations, reached, time.perf_counter() - start, step)
