"""Sparse-reward PointMaze tasks (Gymnasium-Robotics' ``PointMaze_*-v3``) with flat observations.

    env = make_env("pointmaze-umaze")      # gde_ref/PointMaze_UMaze-v0: the evaluation env, 300 steps
    obs, _ = env.reset(seed=0)             # [x, y, vx, vy, goal_x, goal_y]
    data_env = make_data_env("pointmaze-umaze")   # continuing, a new goal at each reach (dict observations)

Decisions, and where they differ from D4RL's maze2d and Minari's pointmaze (../shared/reference/baselines.md
section 10):

* **observation**: ``[x, y, vx, vy, goal_x, goal_y]`` (6,), float64: Gymnasium-Robotics' ``observation``
  with its ``desired_goal`` appended (``flat_observation``). D4RL's maze2d observes ``(x, y, vx, vy)`` only,
  its goal being fixed; Minari keeps the dict. The goal is kept because our data is labelled by the goal
  each episode chases (``data.pointmaze_data``): it is a goal-conditioned dataset, and the evaluation goal
  is one of the goals it covers.
* **evaluation env** (the registered ``gde_ref/PointMaze_*-v0``, what ``make_env`` gives, also the env
  fine-tuning collects in): Minari's evaluation maps, one goal cell (EVAL_GOAL_CELLS: umaze (1, 1), medium
  (6, 6), large (7, 9)), starts at any other free cell; Gymnasium-Robotics jitters goal and start by
  U(-0.25, 0.25) per axis.
* **reward**: sparse, 1 when ``||xy - goal|| <= 0.45`` after the step, else 0 (Gymnasium-Robotics' radius;
  D4RL's maze2d relabelling uses 0.5).
* **termination at success** (``continuing_task=False``): an evaluation episode ends when the goal is
  reached, so its return is 1 (success) or 0 and the normalized score (R_min, R_max = 0, 1) is 100 x the
  success rate, as with D4RL's antmaze eval env, which also ends at success. D4RL's maze2d eval never
  ends (its return counts the steps spent at the goal, normalized by reference returns) and Minari's
  eval env is continuing with a fixed target: neither gives a success rate directly.
* **time limits**: 300 (umaze), 600 (medium), 800 (large) steps, as D4RL's maze2d and Gymnasium-Robotics.
"""
import contextlib
import copy
import io
import sys

import numpy as np

import gymnasium as gym
from gymnasium import spaces

from gde_ref.envs.make import MAZE_ENV_IDS, MAZE_MAX_EPISODE_STEPS, check_task, quiet_mujoco_warnings

SUCCESS_RADIUS = 0.45          # Gymnasium-Robotics' sparse-reward and success radius
MAP_NAMES = {"pointmaze-umaze": "U_MAZE", "pointmaze-medium": "MEDIUM_MAZE", "pointmaze-large": "LARGE_MAZE"}
EVAL_GOAL_CELLS = {"pointmaze-umaze": (1, 1), "pointmaze-medium": (6, 6), "pointmaze-large": (7, 9)}  # (row, col)


def _robotics():
    """Import gymnasium_robotics, dropping the one notice it prints at import (about the Adroit envs'
    reward versions, nothing to do with the mazes); anything else it prints is passed on."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        import gymnasium_robotics
    for line in printed.getvalue().splitlines():
        if line.strip() and "Adroit" not in line:
            print(line, file=sys.stderr)
    return gymnasium_robotics


def maze_map(task):
    """The task's maze layout as Gymnasium-Robotics writes it: rows of 1 (wall) and 0 (free), a fresh copy."""
    _robotics()
    from gymnasium_robotics.envs.maze import maps
    return copy.deepcopy(getattr(maps, MAP_NAMES[check_maze_task(task)]))


def eval_map(task):
    """The task's evaluation layout: its maze with the single goal cell ``"g"`` (EVAL_GOAL_CELLS); with no
    reset cell marked, starts are drawn over every other free cell (Minari's evaluation maps)."""
    layout = maze_map(task)
    row, col = EVAL_GOAL_CELLS[task]
    layout[row][col] = "g"
    return layout


def check_maze_task(task):
    """``task`` if it is a PointMaze task, else a ValueError listing them."""
    if check_task(task) not in MAZE_ENV_IDS:
        raise ValueError(f"{task!r} is not a PointMaze task; choose one of {', '.join(MAZE_ENV_IDS)}")
    return task


def flat_observation(obs):
    """A PointMaze dict observation -> ``[x, y, vx, vy, goal_x, goal_y]`` (float64)."""
    return np.concatenate([obs["observation"], obs["desired_goal"]]).astype(np.float64)


class FlatPointMaze(gym.ObservationWrapper):
    """A PointMaze env seen through ``flat_observation``; ``info["success"]`` is kept."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(6,), dtype=np.float64)

    def observation(self, observation):
        return flat_observation(observation)


def _point_maze(layout, continuing, **kwargs):
    _robotics()
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    with quiet_mujoco_warnings():
        return PointMazeEnv(maze_map=layout, reward_type="sparse", continuing_task=continuing,
                            reset_target=continuing, **kwargs)


def eval_env(task, **kwargs):
    """The evaluation env of ``task`` without a time limit (the registered id adds it): fixed goal cell, sparse
    reward, terminated at success, flat observations (the module docstring). Extra keywords (``render_mode``)
    go to Gymnasium-Robotics' ``PointMazeEnv``."""
    return FlatPointMaze(_point_maze(eval_map(check_maze_task(task)), continuing=False, **kwargs))


def make_data_env(task, **kwargs):
    """The data-collection env of ``task``: the plain maze (goals and starts over every free cell), sparse
    reward, continuing (never terminated: a new goal is drawn when one is reached, ``reset_target``), no time
    limit, dict observations. As Minari's PointMaze collection (``continuing_task=True, reset_target=True``)."""
    return _point_maze(maze_map(check_maze_task(task)), continuing=True, **kwargs)


def register():
    """Register ``gde_ref/PointMaze_{UMaze,Medium,Large}-v0`` (the evaluation envs) with Gymnasium (idempotent)."""
    for task, env_id in MAZE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="gde_ref.envs.pointmaze:eval_env", kwargs={"task": task},
                         max_episode_steps=MAZE_MAX_EPISODE_STEPS[task])


register()
