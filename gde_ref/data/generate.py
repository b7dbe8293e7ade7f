"""D4RL-protocol offline datasets for the MuJoCo locomotion tasks (a recipe layer: trains SAC, rolls it out).

    make_dataset("hopper-medium", preset="laptop", seed=0)   # -> "gde-ref/hopper/medium-v0", info dict

How D4RL made its locomotion datasets (Fu et al., 2020; ../shared/reference/facts.md), and what we do:

* behaviour policies are SAC (``gde_ref.agents.sac``); every dataset action is *sampled* from the
  stochastic SAC policy tanh(mu + sigma eps), with no extra noise; episodes are capped at 1000 steps,
  the cap is a truncation (``timeouts``), a fall is a termination (``terminals``), kept separate.
* ``random``: a randomly initialised SAC policy (no training), sampled.
* ``medium``: SAC stopped early when its deterministic evaluation first reaches the medium level
  (MEDIUM_LEVELS, the rule is MEDIUM_RULE below); that checkpoint is rolled out.
* ``medium-replay``: every transition SAC collected until that checkpoint (its replay history,
  including the uniform-random warm-up steps), in whole episodes.
* ``expert``: SAC trained for the preset's whole budget (optional; long at the paper size).
* ``medium-expert``: the ``medium`` episodes followed by the ``expert`` episodes.

Behaviour policies can be shipped as small ``.npz`` checkpoints in ``gde_ref/policies/{task}-{kind}.npz``
(``save_policy`` / ``load_policy``): ``random``, ``medium`` and ``expert`` use them when present instead of
training. ``medium-replay`` always retrains, since it needs SAC's history.
"""
import dataclasses
import json
import math
import pathlib
import shlex
import time
import warnings

import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.config import SACConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.datasets import EPISODE_KEYS, dataset_id, save_dataset
from gde_ref.envs.make import TASKS, make_env, normalized_score, parse_dataset_name

POLICY_DIR = pathlib.Path(__file__).resolve().parent.parent / "policies"

# The medium level, as a D4RL normalized score (100 = D4RL's expert return R_max, 0 = random R_min).
MEDIUM_RULE = ("medium = the first SAC checkpoint whose deterministic evaluation (mean over the preset's "
               "eval_episodes) reaches the task's medium level, a normalized score of 1/3 of D4RL's expert "
               "(D4RL: 'SAC stopped early at about 1/3 of expert performance'); training stops there. If the "
               "SAC budget ends first, the best evaluated checkpoint is used and the metadata says "
               "medium_level_reached = false with a warning.")
MEDIUM_LEVELS = {task: 100.0 / 3.0 for task in TASKS}  # hopper ~1064, halfcheetah ~3858, walker2d ~1532 return


@dataclasses.dataclass(frozen=True)
class Preset:
    """Budgets of one dataset-generation preset."""
    size: int               # transitions per rolled-out dataset (medium-expert: twice this)
    sac_steps: int          # most SAC environment steps (one update per step after learning_starts)
    eval_every: int         # SAC environment steps between deterministic evaluations
    eval_episodes: int      # episodes per evaluation
    sac: SACConfig          # SAC hyper-parameters


PRESETS = {
    # CI: seconds; small networks, the medium level is (usually) not reached and the metadata says so.
    "quick": Preset(size=2_000, sac_steps=3_000, eval_every=1_000, eval_episodes=2,
                    sac=SACConfig(hidden=(32, 32), batch_size=64, learning_starts=1_000)),
    # a laptop: SAC as in the paper's B.3 but a shorter budget and a 100k-transition dataset.
    "laptop": Preset(size=100_000, sac_steps=200_000, eval_every=5_000, eval_episodes=5,
                     sac=SACConfig(learning_starts=5_000)),
    # D4RL's sizes: 1M transitions, up to 1M SAC steps.
    "paper": Preset(size=1_000_000, sac_steps=1_000_000, eval_every=5_000, eval_episodes=10,
                    sac=SACConfig(learning_starts=5_000)),
}


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


def shipped_policy_path(task, kind):
    """Where a shipped behaviour policy of ``task`` and ``kind`` (random, medium, expert) would be."""
    return POLICY_DIR / f"{task}-{kind}.npz"


def _with_actor(agent, actor_params):
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


# -- datasets ------------------------------------------------------------------------------------------
def get_preset(preset):
    """The Preset called ``preset`` (quick, laptop, paper), or a ValueError listing them."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def shipped_policy(policy_dir, task, kind, preset, seed, level):
    """The shipped checkpoint for this request, or None: it must have been made with the same preset,
    seed and (for medium) medium level; anything else is a different behaviour policy and is trained."""
    path = pathlib.Path(policy_dir) / f"{task}-{kind}.npz"
    if kind == "medium-replay" or not path.exists():
        return None
    _, saved = load_policy(path)
    same = saved.get("policy_preset") == preset and saved.get("policy_seed") == seed
    if kind == "medium":
        same = same and abs(float(saved.get("medium_level", -1.0)) - level) < 1e-9
    return path if same else None


def planned_steps(name, size=None, preset="laptop", policy_dir=POLICY_DIR, seed=0, medium_level=None):
    """Upper bound of the environment steps ``make_dataset`` takes (for a progress bar's total)."""
    task, kind = parse_dataset_name(name)
    p = get_preset(preset)
    size = p.size if size is None else int(size)
    level = MEDIUM_LEVELS[task] if medium_level is None else float(medium_level)
    total = 0
    for part in (("medium", "expert") if kind == "medium-expert" else (kind,)):
        shipped = shipped_policy(policy_dir, task, part, preset, seed, level) is not None
        if part == "medium-replay" or (part != "random" and not shipped):
            total += p.sac_steps
        if part != "medium-replay":
            total += size
    return total


def _behaviour(task, kind, preset, seed, level, progress, policy_dir, policy_out, log):
    """(agent to roll out, or None for medium-replay; episodes for medium-replay or None; info dict)."""
    p = get_preset(preset)
    shipped = shipped_policy(policy_dir, task, kind, preset, seed, level)
    if shipped is not None:
        agent, saved = load_policy(shipped)
        return agent, None, {**saved, "behaviour_policy": f"shipped checkpoint {shipped} (not retrained)"}
    if kind == "random":
        env = make_env(task)
        agent = SACAgent(env.observation_space.shape[0], env.action_space.shape[0], p.sac, seed=seed)
        env.close()
        info = {"sac_steps": 0, "behaviour_policy": f"randomly initialised SAC actor (seed {seed})"}
    else:
        run = train_behaviour_sac(task, p.sac_steps, seed, p.eval_every, None if kind == "expert" else level,
                                  progress, config=p.sac, eval_episodes=p.eval_episodes, log=log)
        point = run.checkpoints["final" if kind == "expert" else "medium"]
        agent = _with_actor(run.agent, point["actor_params"])
        info = {"sac_steps": point["step"], "sac_steps_run": run.steps, "sac_budget": p.sac_steps,
                "policy_eval_return": point["return"], "policy_eval_score": point["score"],
                "evaluations": [list(e) for e in run.evaluations],
                "behaviour_policy": f"SAC trained here in {run.seconds:.0f} s ({run.steps} steps)"}
        if kind != "expert":
            info.update(medium_level=level, medium_rule=MEDIUM_RULE, medium_level_reached=run.medium_level_reached)
            if not run.medium_level_reached:
                info["warning"] = (f"MEDIUM LEVEL NOT REACHED: SAC's best evaluation was {point['score']:.1f} < "
                                   f"{level:.1f} within {p.sac_steps} steps; this is a weaker 'medium'")
        if kind == "medium-replay":
            episodes = [{k: v for k, v in ep.items() if k != "end_step"} for ep in run.history
                        if ep["end_step"] <= point["step"]]
            info["replay_rule"] = ("every whole episode SAC completed up to the medium checkpoint, including the "
                                   f"{p.sac.learning_starts} uniform-random warm-up steps; the unfinished one dropped")
            return None, episodes, info
    if policy_out is not None:
        _save_trained(pathlib.Path(policy_out) / f"{task}-{kind}.npz", agent, info, seed, preset)
    return agent, None, info


def _save_trained(path, agent, info, seed, preset):
    """Save a behaviour policy made here with how it was made (``policy_seed``, ``policy_preset``)."""
    made = f"{info['behaviour_policy']}; seed {seed}, preset {preset}"
    save_policy(path, agent, **{k: v for k, v in info.items() if k != "behaviour_policy"}, policy_seed=seed,
                policy_preset=preset, policy_origin=made)


def make_dataset(name, size=None, seed=0, preset="laptop", *, medium_level=None, progress=None,
                 policy_dir=POLICY_DIR, policy_out=None, command=None, log=None):
    """Make and save the D4RL-protocol dataset ``name`` (e.g. ``hopper-medium``); returns (Minari id, info).

    size : transitions rolled out per policy (default: the preset's); whole episodes, so slightly more.
           ``medium-replay`` ignores it (its size is SAC's history), ``medium-expert`` has two parts of it.
    seed : seeds SAC (initialisation, warm-up, updates) and, separately, the rollouts.
    preset : quick, laptop or paper (``PRESETS``); medium_level overrides ``MEDIUM_LEVELS[task]``.
    policy_dir : where shipped behaviour policies are looked for; policy_out : a directory to save the
                 behaviour policies trained here into (how ``gde_ref/policies`` is produced).
    progress(k), log(text) : called with each k environment steps and each SAC evaluation's line.
    The dataset's Minari metadata (key ``gde_ref``) records the command, seed, preset, SAC steps, the
    behaviour policy's evaluation score, the medium rule and level and whether it was reached.
    """
    task, kind = parse_dataset_name(name)
    p = get_preset(preset)
    size = p.size if size is None else int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1 transition, got {size}")
    level = MEDIUM_LEVELS[task] if medium_level is None else float(medium_level)
    from minari.storage.datasets_root_dir import get_dataset_path
    if (get_dataset_path() / dataset_id(name)).exists():  # fail now, not after hours of SAC
        raise FileExistsError(f"dataset {dataset_id(name)} already exists under {get_dataset_path()}; delete it "
                              f"first (`minari delete {dataset_id(name)}`) to make it again")
    start = time.perf_counter()
    parts, episodes = {}, []
    for part in (("medium", "expert") if kind == "medium-expert" else (kind,)):
        agent, eps, info = _behaviour(task, part, preset, seed, level, progress, policy_dir, policy_out, log)
        if eps is None:
            env = make_env(task)
            eps = collect_episodes(env, agent, size, np.random.default_rng([seed, 1]), progress)
            env.close()
        parts[part] = info
        episodes += eps
    returns = np.array([float(np.sum(ep["rewards"])) for ep in episodes])
    metadata = {"command": command or f"gde-ref make-dataset {shlex.quote(name)} --size {size} --preset {preset} "
                                      f"--seed {seed}",
                "seed": seed, "preset": preset, "kind": kind, "size_requested": size,
                "sac_config": dataclasses.asdict(p.sac), "collection": "actions sampled from the stochastic SAC "
                "policy, no extra noise; episodes capped at 1000 steps (timeouts), whole episodes kept",
                "sac_steps": sum(int(i.get("sac_steps", 0)) for i in parts.values()),
                "behaviour_score": normalized_score(task, float(returns.mean())), "seconds": 0.0}
    if len(parts) == 1:
        metadata.update(next(iter(parts.values())))
    else:
        metadata["parts"] = parts
        warnings_ = [f"{k}: {i['warning']}" for k, i in parts.items() if "warning" in i]
        if warnings_:
            metadata["warning"] = "; ".join(warnings_)
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    did = save_dataset(name, episodes, metadata=metadata)
    info = {"dataset_id": did, "name": name, "transitions": int(sum(len(ep["rewards"]) for ep in episodes)),
            "episodes": len(episodes), **metadata}
    return did, info
