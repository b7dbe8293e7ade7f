"""``gde-ref train-ant-controller``: the AntMaze low-level controller, SAC on the goal-directed Ant task.

    gde-ref train-ant-controller --steps 1000000 --out gde_ref/policies/antmaze-controller.npz
    gde-ref train-ant-controller --steps 1000000 --out gde_ref/policies/antmaze-controller.npz --resume

SAC (``agents.sac``) on ``envs.goal_ant`` (observation: the Ant's 27 without x, y, then goal - xy; reward: the
velocity towards the goal, ctrl cost, survive); the actor is saved as a small ``.npz`` policy
(``data.behaviour.save_policy``, info ``antmaze_controller = True``) that ``data.antmaze_data`` drives through
the maze waypoints. Minari trained its controller (SB3 SAC, 4 x 256, gamma 0.991, tau 0.03, initial
temperature 0.1, batch 256, 10k warm-up steps, 16 envs) for 30M steps; ours takes its gamma, tau, initial
temperature, batch and warm-up (CONTROLLER_SAC), but one env, 2 x 256 by default (``--hidden`` 256,256,256,256
gives Minari's, about 2.5x slower per update here) and no extra N(0, 0.3) exploration noise (SAC's own
sampling explores). The budget that suffices on a laptop is still to be measured (README, AntMaze).

Resumable: every ``checkpoint_every`` steps the agent, its Adam states, the replay buffer, the random
generator and the evaluations go to ``OUT.ckpt.npz`` (atomically); ``--resume`` continues from there. A
resumed run starts a fresh episode (the env's state is not saved), so it is not bit-identical to an
uninterrupted one. The checkpoint is deleted once OUT is written.
"""
import dataclasses
import json
import os
import sys
import time

import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.checkpoint import load_npz, save_npz
from gde_ref.config import SACConfig
from gde_ref.data.behaviour import save_policy
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.envs.goal_ant import ACT_DIM, ENV_ID, OBS_DIM, TIME_LIMIT

CONTROLLER_SAC = SACConfig(discount=0.991, polyak=0.03, initial_alpha=0.1, batch_size=256, learning_starts=10_000)
BUFFER_CAPACITY = 1_000_000   # Minari's buffer size
EVAL_EPISODES = 5


def _make_env():
    import gymnasium as gym

    import gde_ref.envs.goal_ant  # noqa: F401  (registers ENV_ID)
    return gym.make(ENV_ID)


def evaluate_controller(agent, episodes=EVAL_EPISODES, seed=10_000):
    """The deterministic controller on ``episodes`` seeded GoalAnt episodes: mean return, mean goals reached
    per episode (each reach draws the next goal), share of episodes ended by a fall, mean episode length."""
    env = _make_env()
    returns, reached, falls, lengths = [], [], 0, []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done, steps, info = 0.0, False, 0, {"goals_reached": 0}
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs.astype(agent.dtype)))
            total, steps, done = total + reward, steps + 1, terminated or truncated
        returns.append(total)
        reached.append(info["goals_reached"])
        falls += bool(terminated)
        lengths.append(steps)
    env.close()
    return {"return": float(np.mean(returns)), "goals_reached": float(np.mean(reached)),
            "fall_rate": falls / episodes, "episode_length": float(np.mean(lengths))}


def _checkpoint_path(out):
    return os.fspath(out) + ".ckpt.npz"


def _save_checkpoint(out, agent, buffer, rng, step, evaluations, settings):
    arrays = {**{f"agent/{k}": v for k, v in agent.state().items()},
              **{f"buffer/{k}": v for k, v in buffer.state_dict().items()}}
    meta = {"step": step, "evaluations": evaluations, "settings": settings, "rng": rng.bit_generator.state}
    save_npz(_checkpoint_path(out), arrays, meta)


def _load_checkpoint(out, agent, buffer, rng, settings):
    arrays, meta = load_npz(_checkpoint_path(out), "train-ant-controller checkpoint")
    if meta["settings"] != settings:
        raise ValueError(f"{_checkpoint_path(out)} was saved with {meta['settings']}, not {settings}: resume with "
                         "the same --steps, --seed and --hidden, or delete it to start over")
    agent.load_state({k[6:]: v for k, v in arrays.items() if k.startswith("agent/")})
    buffer.load_state_dict({k[7:]: v for k, v in arrays.items() if k.startswith("buffer/")})
    rng.bit_generator.state = meta["rng"]
    return int(meta["step"]), [tuple(e) for e in meta["evaluations"]]


def train_ant_controller(out, steps, seed=0, hidden=(256, 256), *, resume=False, checkpoint_every=50_000,
                         eval_every=50_000, eval_episodes=EVAL_EPISODES, progress=None, log=None, command=None):
    """Train the controller with SAC for ``steps`` env steps and save its actor to ``out``; returns the summary
    (also the saved policy's info). Uniform random actions for CONTROLLER_SAC.learning_starts steps, then
    samples of pi and one update per step; an ``evaluate_controller`` every ``eval_every`` steps and at the end.
    progress(k) / log(text): called with each k steps and each evaluation's line."""
    if steps < 1 or checkpoint_every < 1 or eval_every < 1 or eval_episodes < 1:
        raise ValueError(f"steps, checkpoint_every, eval_every and eval_episodes must be >= 1, got {steps}, "
                         f"{checkpoint_every}, {eval_every}, {eval_episodes}")
    hidden = tuple(int(h) for h in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must be one or more layer sizes >= 1, got {hidden}")
    if os.path.exists(out) and not resume:
        raise FileExistsError(f"{out} exists: choose another --out or delete it")
    has_ckpt = os.path.exists(_checkpoint_path(out))
    if has_ckpt and not resume:
        raise FileExistsError(f"{_checkpoint_path(out)} holds an unfinished run: add --resume to continue it, or "
                              "delete it to start over")
    if resume and not has_ckpt:
        raise FileNotFoundError(f"nothing to resume: no {_checkpoint_path(out)} (run without --resume)")
    config = dataclasses.replace(CONTROLLER_SAC, hidden=hidden)
    settings = {"steps": int(steps), "seed": int(seed), "hidden": list(hidden)}
    agent = SACAgent(OBS_DIM, ACT_DIM, config, seed=seed)
    buffer = ReplayBuffer(min(steps, BUFFER_CAPACITY), OBS_DIM, ACT_DIM, discount=config.discount)
    rng = np.random.default_rng([seed, 5])
    step, evaluations = _load_checkpoint(out, agent, buffer, rng, settings) if resume else (0, [])
    if progress is not None and step:
        progress(step)
    env, start = _make_env(), time.perf_counter()
    obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    while step < steps:
        if step < config.learning_starts:
            action = rng.uniform(-1.0, 1.0, ACT_DIM).astype(np.float32)
        else:
            action = agent.act(obs.astype(np.float32), rng).copy()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        obs, step = next_obs, step + 1
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        if step > config.learning_starts:
            agent.update(buffer.sample(config.batch_size, rng), rng)
        if progress is not None:
            progress(1)
        if step % eval_every == 0 or step == steps:
            result = evaluate_controller(agent, eval_episodes)
            evaluations.append((step, result["return"], result["goals_reached"], result["fall_rate"]))
            if log is not None:
                log(f"ant controller step {step}: return {result['return']:.0f}, goals reached per episode "
                    f"{result['goals_reached']:.1f}, falls {result['fall_rate']:.0%}")
        if step % checkpoint_every == 0 and step < steps:
            _save_checkpoint(out, agent, buffer, rng, step, evaluations, settings)
    env.close()
    seconds = time.perf_counter() - start
    summary = {"antmaze_controller": True, "trained": True, "sac_steps": step, "sac_config": dataclasses.asdict(config),
               "env_id": ENV_ID, "time_limit": TIME_LIMIT, "seed": seed, "seconds_this_session": round(seconds, 1),
               "evaluations": [list(e) for e in evaluations], "evaluation_columns": ["step", "return",
                               "goals_reached_per_episode", "fall_rate"],
               "command": command or f"gde-ref train-ant-controller --steps {steps} --seed {seed} --out {out}",
               "observation": "the Ant-v5 observation without x, y and contact forces (27), then target - xy (2)"}
    save_policy(out, agent, **summary)
    if os.path.exists(_checkpoint_path(out)):
        os.remove(_checkpoint_path(out))
    return summary


def _run(args):
    from tqdm import tqdm

    from gde_ref.nn.kernels import blas_threads
    try:
        hidden = tuple(int(h) for h in args.hidden.split(","))
    except ValueError:
        raise ValueError(f"--hidden takes comma-separated layer sizes (e.g. 256,256), got {args.hidden!r}") from None
    bar = tqdm(total=args.steps, unit="step", desc="ant controller", disable=args.json, file=sys.stderr,
               mininterval=1.0, delay=0.5)
    with bar, blas_threads(1):
        summary = train_ant_controller(args.out, args.steps, args.seed, hidden, resume=args.resume,
                                       checkpoint_every=args.checkpoint_every, eval_every=args.eval_every,
                                       progress=bar.update, log=None if args.json else bar.write,
                                       command=" ".join(["gde-ref"] + sys.argv[1:]))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        last = summary["evaluations"][-1]
        print(f"wrote {args.out}: {summary['sac_steps']} SAC steps; last evaluation: return {last[1]:.0f}, goals "
              f"reached per episode {last[2]:.1f}, falls {last[3]:.0%}")
    return 0


def add_parser(sub):
    """The ``train-ant-controller`` subcommand (its body is ``_run``)."""
    p = sub.add_parser("train-ant-controller", help="train the AntMaze low-level controller (SAC on a goal-directed "
                       "Ant) and save it as a small .npz policy; resumable")
    p.add_argument("--steps", type=int, required=True, help="SAC env steps (Minari's: 30M; see the README)")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="the policy file (e.g. "
                   "gde_ref/policies/antmaze-controller.npz, the one make-dataset antmaze-* uses)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", default="256,256", help="hidden layer sizes (default 256,256; Minari: 256,256,256,256)")
    p.add_argument("--checkpoint-every", type=int, default=50_000, help="steps between checkpoints (FILE.ckpt.npz)")
    p.add_argument("--eval-every", type=int, default=50_000, help="steps between evaluations (5 episodes)")
    p.add_argument("--resume", action="store_true", help="continue from FILE.ckpt.npz")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (no progress bar)")
    p.set_defaults(run=_run)
