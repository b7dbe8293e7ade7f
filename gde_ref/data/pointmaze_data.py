"""PointMaze datasets by D4RL's maze2d / Minari's pointmaze protocol: ``gde-ref make-dataset pointmaze-umaze``.

    make_pointmaze_dataset("pointmaze-umaze", preset="laptop", seed=0)         # -> "gde-ref/pointmaze/umaze-v1"
    make_pointmaze_dataset("pointmaze-umaze-goals", preset="laptop", seed=0)   # -> ".../umaze-goals-v0"

The collection, common to both (../shared/reference/baselines.md section 10, and what we do):

* one continuing env (``envs.pointmaze.make_data_env``: goals over every free cell, never reset); the
  behaviour is ``data.maze_controller``'s waypoint controller (BFS path, jittered waypoints, PD law
  a = 10 (waypoint - xy) - 1 velocity) plus N(0, 0.5^2) action noise, clipped to [-1, 1];
* the stream is split into episodes at each goal reach (Minari; D4RL marks these with its ``timeouts``
  field), and the env draws the next goal without resetting the point; an episode still running after the
  task's episode length (300 / 600 / 800 steps) is cut there and a new goal drawn in place (D4RL's
  ``ts >= max_episode_steps`` rule). Collection goes on until ``size`` transitions, then finishes the running
  episode (whole episodes, so slightly more). Goals are jittered by U(-0.25, 0.25) (Gymnasium-Robotics;
  D4RL's by U(-0.1, 0.1)).

**maze2d** (``pointmaze-umaze``, ...), D4RL's protocol: observations ``(x, y, vx, vy)`` (no goal); rewards
relabelled against the evaluation env's one goal (``relabel_maze2d``): 1 when ``||xy' - g|| <= 0.5`` for the
position after the step, else 0; no terminations (D4RL's maze2d has no terminal states), every episode end
a truncation (D4RL's ``timeouts``). Where ours differs: D4RL relabels with the position *before* the step
(the observation), an off-by-one against its own env's reward (D4RL issue #194); we use the position after
it, as our env (``envs.pointmaze.maze2d_env``) rewards. D4RL also stores the observation after a goal reach
twice (its loop does not advance it); we store the true next observation. The behaviour score in the
metadata is the controller's own normalized score on the evaluation env (``controller_score``: the same
noisy controller steering to the evaluation goal), since the data's episodes chase other goals.

**goal-conditioned** (``pointmaze-umaze-goals``, ...): observations ``[x, y, vx, vy, goal_x, goal_y]`` with the
goal the episode chases; the reward is the env's sparse one (1 at the step that reaches the goal, else 0),
and a goal reach is stored as a **termination** (Minari stores a truncation, since its env goes on): the
episode's task is done there, as in the goal-conditioned evaluation env, which ends at success.
"""
import shlex
import time

import numpy as np

from gde_ref.data.datasets import save_dataset
from gde_ref.data.maze_controller import JITTER, KD, KP, THRESHOLD, WaypointController, noisy_action
from gde_ref.envs.make import (MAZE2D_TASKS, MAZE_MAX_EPISODE_STEPS, make_env, normalized_score, parse_dataset_name,
                               stored_dataset_name)
from gde_ref.envs.pointmaze import (EVAL_GOAL_CELLS, MAZE2D_RADIUS, SUCCESS_RADIUS, check_maze_task, eval_map,
                                    flat_observation, goal_xy, make_data_env, maze2d_reward, maze_map)

NOISE_STD = 0.5   # D4RL's --noisy and Minari: N(0, 0.5^2) on every action
PRESETS = {"quick": 3_000, "laptop": 200_000, "paper": 1_000_000}   # transitions (D4RL and Minari: 1M)
CONTROLLER_EPISODES = 10   # evaluation episodes of the controller's own score (maze2d)


def _new_goal(env, xy):
    """Draw the next goal in place, as the env does at a reach: a noisy free-cell centre more than the success
    radius away from the point."""
    maze = env.unwrapped
    goal = maze.add_xy_position_noise(maze.generate_target_goal())
    while np.linalg.norm(goal - xy) <= SUCCESS_RADIUS:
        goal = maze.add_xy_position_noise(maze.generate_target_goal())
    maze.goal = goal
    maze.update_target_site_pos()


def _episode(env, obs, controller, rng, noise_std, cap):
    """One episode from dict observation ``obs``: until the goal is reached (terminated) or ``cap`` steps
    (truncated). Returns (episode dict, the env's last dict observation)."""
    observations, actions, rewards = [flat_observation(obs)], [], []
    success = False
    for _ in range(cap):
        point = obs["observation"]
        action = noisy_action(controller.act(point[:2], point[2:], obs["desired_goal"]), rng, noise_std)
        obs, reward, _, _, info = env.step(action.astype(np.float32))
        observations.append(flat_observation(obs))
        actions.append(action)
        rewards.append(float(reward))
        if info["success"]:
            success = True
            break
    steps = len(rewards)
    end = np.zeros(steps, bool)
    end[-1] = True
    episode = {"observations": np.array(observations), "actions": np.array(actions, np.float32),
               "rewards": np.array(rewards), "terminations": end & success, "truncations": end & (not success)}
    if not success:
        _new_goal(env, obs["observation"][:2])
    # the goal the next episode chases (the env drew it at the reach, or _new_goal did at the cap)
    obs = {**obs, "desired_goal": env.unwrapped.goal.copy()}
    return episode, obs


def collect_pointmaze(task, size, seed=0, noise_std=NOISE_STD, progress=None):
    """Whole episodes of at least ``size`` transitions on ``task`` by the module's protocol; (episodes, stats).

    seed: the env's first reset (start, goals) and, separately, the controller's jitter and action noise.
    progress(k): called with each episode's k steps. stats: success_rate (share of episodes that reach
    their goal), episodes, transitions, mean_episode_length."""
    check_maze_task(task)
    if size < 1:
        raise ValueError(f"size must be >= 1 transition, got {size}")
    env = make_data_env(task)
    rng = np.random.default_rng([seed, 2])
    controller = WaypointController(maze_map(task), rng)
    obs, _ = env.reset(seed=seed)
    episodes, total = [], 0
    while total < size:
        episode, obs = _episode(env, obs, controller, rng, noise_std, MAZE_MAX_EPISODE_STEPS[task])
        episodes.append(episode)
        total += len(episode["rewards"])
        if progress is not None:
            progress(len(episode["rewards"]))
    env.close()
    successes = sum(bool(ep["terminations"][-1]) for ep in episodes)
    return episodes, {"success_rate": successes / len(episodes), "episodes": len(episodes), "transitions": total,
                      "mean_episode_length": total / len(episodes)}


def relabel_maze2d(episode, goal, radius=MAZE2D_RADIUS):
    """A goal-conditioned episode (observations (T+1, 6)) -> the maze2d protocol's: observations (T+1, 4) without
    the goal, rewards ``maze2d_reward`` of the positions after each step against ``goal`` (the evaluation
    goal), no terminations, a truncation at the last step. Actions are kept."""
    obs = np.asarray(episode["observations"], np.float64)
    steps = len(episode["actions"])
    if obs.ndim != 2 or obs.shape[1] != 6 or len(obs) != steps + 1 or steps < 1:
        raise ValueError(f"relabel_maze2d needs T >= 1 actions and (T+1, 6) goal-conditioned observations, got "
                         f"{steps} actions and observations of shape {obs.shape}")
    end = np.zeros(steps, bool)
    end[-1] = True
    return {"observations": obs[:, :4].copy(), "actions": np.asarray(episode["actions"], np.float32),
            "rewards": maze2d_reward(obs[1:, :2], np.asarray(goal, np.float64), radius),
            "terminations": np.zeros(steps, bool), "truncations": end}


def controller_score(task, episodes=CONTROLLER_EPISODES, seed=0, noise_std=NOISE_STD):
    """(mean return, normalized score) of the data's behaviour, the waypoint controller with ``noise_std`` action
    noise, steering to the evaluation goal of the maze2d task ``task`` in its env over ``episodes`` episodes."""
    if task not in MAZE2D_TASKS:
        raise ValueError(f"controller_score is for the maze2d tasks ({', '.join(MAZE2D_TASKS)}), got {task!r}")
    env, rng, returns = make_env(task), np.random.default_rng([seed, 3]), []
    goal = goal_xy(task)
    for k in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed * episodes + k)
        controller, done, total = WaypointController(eval_map(task), rng), False, 0.0
        while not done:
            action = noisy_action(controller.act(obs[:2], obs[2:4], goal), rng, noise_std)
            obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    env.close()
    mean = float(np.mean(returns))
    return mean, float(normalized_score(task, mean))


def _maze2d(task, episodes, stats, seed):
    """The maze2d protocol over collected goal-conditioned ``episodes``: (relabelled episodes, metadata)."""
    goal = goal_xy(task)
    relabelled = [relabel_maze2d(ep, goal) for ep in episodes]
    steps = sum(len(ep["rewards"]) for ep in relabelled)
    rate = sum(float(ep["rewards"].sum()) for ep in relabelled) / steps
    mean_return, score = controller_score(task, seed=seed)
    meta = {"protocol": "maze2d", "eval_goal_cell": list(EVAL_GOAL_CELLS[task]), "eval_goal_xy": goal.tolist(),
            "random_goal_reach_rate": stats["success_rate"],
            "controller_return": mean_return, "controller_episodes": CONTROLLER_EPISODES, "behaviour_score": score,
            "data_reward_rate": rate,
            "data_rate_score": float(normalized_score(task, rate * MAZE_MAX_EPISODE_STEPS[task])),
            "collection": "one continuing env, goals over every free cell; episodes (D4RL's timeouts) end at each "
                          f"goal reach or after {MAZE_MAX_EPISODE_STEPS[task]} steps (new goal in place); no "
                          "terminations; observations [x, y, vx, vy]; rewards relabelled against the evaluation "
                          f"goal {goal.tolist()} (cell {list(EVAL_GOAL_CELLS[task])}): 1 when ||xy' - goal|| <= "
                          f"{MAZE2D_RADIUS} for the position after the step (D4RL: before it)",
            "behaviour_score_rule": "the noisy controller steering to the evaluation goal in the evaluation env, "
                                    f"{CONTROLLER_EPISODES} episodes, D4RL maze2d's reference returns; "
                                    "data_rate_score: the data's reward per step x the episode length, normalized"}
    return relabelled, meta


def make_pointmaze_dataset(name, size=None, seed=0, preset="laptop", *, progress=None, command=None):
    """Make and save the PointMaze dataset ``name`` (maze2d: ``pointmaze-umaze``, ``-medium``, ``-large``;
    goal-conditioned: ``pointmaze-umaze-goals``, ...); returns (Minari id, info). size: transitions (default: the
    preset's, PRESETS); a quick-preset dataset is stored as NAME-quick. The Minari metadata (key ``gde_ref``)
    records the command, seed, preset, the controller's rules and constants, the noise, the episode rule and
    the behaviour's score (goal-conditioned: 100 x its success rate; maze2d: ``controller_score``'s, with the
    evaluation goal and the relabelling rule)."""
    from gde_ref.data.generate import check_absent
    task, _ = parse_dataset_name(name)
    check_maze_task(task)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    size = PRESETS[preset] if size is None else int(size)
    stored = stored_dataset_name(name, preset)
    check_absent(stored)
    start = time.perf_counter()
    episodes, stats = collect_pointmaze(task, size, seed, NOISE_STD, progress)
    metadata = {"command": command or f"gde-ref make-dataset {shlex.quote(name)} --size {size} --preset {preset} "
                                      f"--seed {seed}",
                "seed": seed, "preset": preset, "kind": "noisy", "size_requested": size, **stats,
                "protocol": "goal-conditioned",
                "behaviour_score": 100.0 * stats["success_rate"],
                "behaviour_policy": f"waypoint controller: BFS path over the maze grid, waypoints = cell centres "
                                    f"- {JITTER} U(0,1) per axis (the goal itself last), passed within {THRESHOLD}; "
                                    f"a = clip({KP} (waypoint - xy) + {KD} velocity, -1, 1) + N(0, {NOISE_STD}^2), "
                                    "clipped to [-1, 1] (D4RL maze2d --noisy / Minari pointmaze)",
                "collection": "one continuing env, goals over every free cell; episodes end at each goal reach "
                              "(a termination, reward 1; Minari stores a truncation) or after "
                              f"{MAZE_MAX_EPISODE_STEPS[task]} steps (a timeout, new goal in place, D4RL); "
                              "observations [x, y, vx, vy, goal_x, goal_y] with the episode's own goal",
                "seconds": 0.0}
    if task in MAZE2D_TASKS:
        del metadata["success_rate"]   # of the random goals: kept as random_goal_reach_rate
        episodes, maze2d_meta = _maze2d(task, episodes, stats, seed)
        metadata.update(maze2d_meta)
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    did = save_dataset(stored, episodes, metadata=metadata, algorithm_name="WaypointController (BFS) + PD + noise")
    info = {"dataset_id": did, "name": stored, **metadata}
    return did, info
