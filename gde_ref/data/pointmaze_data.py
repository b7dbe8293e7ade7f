"""PointMaze datasets by the D4RL maze2d / Minari pointmaze protocol: ``gde-ref make-dataset pointmaze-umaze``.

    make_pointmaze_dataset("pointmaze-umaze", preset="laptop", seed=0)   # -> "gde-ref/pointmaze/umaze-v0", info

The protocol (../shared/reference/baselines.md section 10, and what we do):

* one continuing env (``envs.pointmaze.make_data_env``: goals over every free cell, never reset); the
  behaviour is ``data.maze_controller``'s waypoint controller (BFS path, jittered waypoints, PD law
  a = 10 (waypoint - xy) - 1 velocity) plus N(0, 0.5^2) action noise, clipped to [-1, 1];
* the stream is split into episodes at each goal reach (Minari), and the env draws the next goal without
  resetting the point; an episode still running after the task's episode length (300 / 600 / 800 steps)
  is cut there as a timeout and a new goal drawn in place (D4RL's ``ts >= max_episode_steps`` rule);
* observations are the flat ``[x, y, vx, vy, goal_x, goal_y]`` with the goal the episode chases; the
  reward is the env's sparse one (1 at the step that reaches the goal, else 0).

Where ours differs: a goal reach is stored as a **termination** (Minari stores a truncation, since its
env goes on). The episode's task is done there, as in our evaluation env, which ends at success; the
next episode starts from the same point with the new goal in its observation. D4RL's maze2d relabels
rewards against one evaluation goal and observes no goal; we keep each episode's own goal (a
goal-conditioned dataset that covers the evaluation goal). Collection goes on until ``size``
transitions, then finishes the running episode (whole episodes, so slightly more).
"""
import shlex
import time

import numpy as np

from gde_ref.data.datasets import save_dataset
from gde_ref.data.maze_controller import JITTER, KD, KP, THRESHOLD, WaypointController, noisy_action
from gde_ref.envs.make import MAZE_MAX_EPISODE_STEPS, parse_dataset_name, stored_dataset_name
from gde_ref.envs.pointmaze import SUCCESS_RADIUS, check_maze_task, flat_observation, make_data_env, maze_map

NOISE_STD = 0.5   # D4RL's --noisy and Minari: N(0, 0.5^2) on every action
PRESETS = {"quick": 3_000, "laptop": 200_000, "paper": 1_000_000}   # transitions (D4RL and Minari: 1M)


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


def make_pointmaze_dataset(name, size=None, seed=0, preset="laptop", *, progress=None, command=None):
    """Make and save the PointMaze dataset ``name`` (``pointmaze-umaze``, ``-medium``, ``-large``); returns
    (Minari id, info). size: transitions (default: the preset's, PRESETS); a quick-preset dataset is stored
    as NAME-quick. The Minari metadata (key ``gde_ref``) records the command, seed, preset, the controller's
    rules and constants, the noise, the episode rule and the behaviour's success rate."""
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
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    did = save_dataset(stored, episodes, metadata=metadata, algorithm_name="WaypointController (BFS) + PD + noise")
    info = {"dataset_id": did, "name": stored, **metadata}
    return did, info
