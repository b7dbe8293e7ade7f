"""Sparse-reward PointMaze tasks on Gymnasium-Robotics' ``PointMaze_*-v3`` mazes, two protocols.

    env = make_env("pointmaze-umaze")        # gde_ref/Maze2d_UMaze-v0: D4RL's maze2d protocol, 300 steps
    obs, _ = env.reset(seed=0)               # [x, y, vx, vy]
    env = make_env("pointmaze-umaze-goals")  # gde_ref/PointMaze_UMaze-v0: goal-conditioned, ends at success
    obs, _ = env.reset(seed=0)               # [x, y, vx, vy, goal_x, goal_y]
    data_env = make_data_env("pointmaze-umaze")   # both: continuing, a new goal at each reach (dict observations)

Decisions, and where they differ from D4RL's maze2d and Minari's pointmaze (../shared/reference/baselines.md
section 10). Common to both: the mazes, Minari's/D4RL's goal cells (EVAL_GOAL_CELLS, (row, col): umaze (1, 1),
medium (6, 6), large (7, 9), the cells of the ``G`` in D4RL's maze strings and of Minari's eval maps), time
limits 300 (umaze), 600 (medium), 800 (large) steps (D4RL maze2d's and Gymnasium-Robotics').

**maze2d** (``pointmaze-umaze``, ``-medium``, ``-large``; ``maze2d_env``, registered ``gde_ref/Maze2d_*-v0``):

* observation ``(x, y, vx, vy)`` (4,), float64, no goal (D4RL: the goal is fixed, so not observed). Positions
  are Gymnasium-Robotics' (the maze centred on the origin, row 0 at the top); D4RL's are (row, col), a
  reflection and a shift of ours: distances, and so rewards and scores, are the same.
* goal: the goal cell's centre exactly (D4RL's target is its ``G`` location, no noise; Gymnasium-Robotics
  would jitter it by U(-0.25, 0.25)).
* start: D4RL's ``reset_model``: a free cell drawn uniformly, the goal cell included, plus U(-0.1, 0.1) per
  axis; velocity N(0, 0.1^2) per axis. (Gymnasium-Robotics' own reset, never in the goal cell and without
  velocity noise, is replaced: D4RL's reference returns were measured with D4RL's.)
* reward: 1 when ``||xy' - goal|| <= 0.5`` after the step, else 0 (MAZE2D_RADIUS, D4RL's maze2d env), never
  terminated: an episode runs its whole time limit and its return counts the steps spent at the goal.
  ``info["success"]`` is the reward as a bool.
* score: D4RL's maze2d sparse reference returns (``envs.make.REF_SCORES``: umaze 23.85 / 161.86, medium
  13.13 / 277.39, large 6.7 / 273.99), so that scores are comparable in kind with published maze2d-*-v1
  numbers, not calibrated to them: measured here, the noise-free waypoint controller scores about 147 / 161 /
  216 (umaze / medium / large, 20 episodes), above D4RL's expert 100, so this point mass reaches the goal
  sooner than D4RL's did (its velocity clip to [-5, 5] and model are Gymnasium-Robotics'; not traced further).

**goal-conditioned** (``pointmaze-*-goals``; ``eval_env``, registered ``gde_ref/PointMaze_*-v0``):

* observation ``[x, y, vx, vy, goal_x, goal_y]`` (6,), float64: Gymnasium-Robotics' ``observation`` with its
  ``desired_goal`` appended (``flat_observation``); Minari keeps the dict. The data is labelled by the goal each
  episode chases (``data.pointmaze_data``): a goal-conditioned dataset covering the evaluation goal.
* evaluation env: Minari's evaluation maps, one goal cell, starts at any other free cell; Gymnasium-Robotics
  jitters goal and start by U(-0.25, 0.25) per axis.
* reward: 1 when ``||xy - goal|| <= 0.45`` after the step, else 0 (Gymnasium-Robotics' radius), and the episode
  ends there (``continuing_task=False``): its return is 1 or 0 and the normalized score (R_min, R_max = 0, 1)
  is 100 x the success rate, as with D4RL's antmaze eval env.
"""
import contextlib
import copy
import io
import sys

import numpy as np

import gymnasium as gym
from gymnasium import spaces

from gde_ref.envs.make import (MAZE2D_ENV_IDS, MAZE_ENV_IDS, MAZE_MAX_EPISODE_STEPS, MAZE_OF_TASK, check_task,
                               quiet_mujoco_warnings)

SUCCESS_RADIUS = 0.45          # Gymnasium-Robotics' sparse-reward and success radius (goal-conditioned tasks)
MAZE2D_RADIUS = 0.5            # D4RL maze2d's sparse-reward radius
START_NOISE, VELOCITY_NOISE = 0.1, 0.1   # D4RL maze2d's start: cell centre + U(-0.1, 0.1), velocity N(0, 0.1^2)
MAP_NAMES = {task: {"umaze": "U_MAZE", "medium": "MEDIUM_MAZE", "large": "LARGE_MAZE"}[maze]
             for task, maze in MAZE_OF_TASK.items()}
EVAL_GOAL_CELLS = {task: {"umaze": (1, 1), "medium": (6, 6), "large": (7, 9)}[maze]   # (row, col)
                   for task, maze in MAZE_OF_TASK.items()}


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


def _point_maze(layout, continuing, reset_target=None, **kwargs):
    _robotics()
    from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    with quiet_mujoco_warnings():
        return PointMazeEnv(maze_map=layout, reward_type="sparse", continuing_task=continuing,
                            reset_target=continuing if reset_target is None else reset_target, **kwargs)


def eval_env(task, **kwargs):
    """The goal-conditioned evaluation env of ``task`` (``pointmaze-*-goals``) without a time limit (the registered
    id adds it): fixed goal cell, sparse reward, terminated at success, flat observations (the module docstring).
    Extra keywords (``render_mode``) go to Gymnasium-Robotics' ``PointMazeEnv``."""
    if check_maze_task(task) in MAZE2D_ENV_IDS:
        raise ValueError(f"{task!r} is a maze2d task: its env is maze2d_env, not eval_env")
    return FlatPointMaze(_point_maze(eval_map(task), continuing=False, **kwargs))


def _cell_centre(row, col, shape):
    """(x, y) of cell (row, col)'s centre in a maze of ``shape`` (rows, cols): Gymnasium-Robotics' coordinates at
    scale 1 (``data.maze_controller.cell_center``'s rule)."""
    return np.array([col + 0.5 - shape[1] / 2.0, shape[0] / 2.0 - (row + 0.5)])


def goal_xy(task):
    """(x, y) of the centre of ``task``'s goal cell (EVAL_GOAL_CELLS), Gymnasium-Robotics' coordinates."""
    return _cell_centre(*EVAL_GOAL_CELLS[task], np.array(maze_map(task)).shape)


def maze2d_reward(next_xy, goal, radius=MAZE2D_RADIUS):
    """D4RL maze2d's sparse reward of positions (..., 2): 1.0 where ``||xy - goal|| <= radius``, else 0.0."""
    return (np.linalg.norm(np.asarray(next_xy, np.float64) - goal, axis=-1) <= radius).astype(np.float64)


class Maze2dPointMaze(gym.Wrapper):
    """D4RL's maze2d env on a Gymnasium-Robotics point maze (continuing, ``reset_target=False``): observations
    (x, y, vx, vy), the goal at its cell's centre, D4RL's start distribution, reward ``maze2d_reward``, never
    terminated (the module docstring)."""

    def __init__(self, env, task):
        super().__init__(env)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.goal = goal_xy(task)
        self.cells = np.argwhere(np.array(maze_map(task)) != 1)   # every free cell, the goal's included

    def reset(self, *, seed=None, options=None):
        self.env.reset(seed=seed, options=options)
        maze = self.env.unwrapped
        rng, shape = maze.np_random, np.array(maze.maze.maze_map).shape
        row, col = self.cells[rng.integers(len(self.cells))]
        qpos = _cell_centre(row, col, shape) + rng.uniform(-START_NOISE, START_NOISE, 2)
        qvel = VELOCITY_NOISE * rng.standard_normal(2)
        maze.goal = self.goal.copy()
        maze.update_target_site_pos()
        maze.point_env.set_state(qpos, qvel)
        xy = maze.point_env.data.qpos[:2]
        return np.concatenate([xy, maze.point_env.data.qvel[:2]]).astype(np.float64), \
            {"success": bool(maze2d_reward(xy, self.goal))}

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        point = np.asarray(obs["observation"], np.float64)
        reward = float(maze2d_reward(point[:2], self.goal))
        return point, reward, False, truncated, {**info, "success": reward > 0}


def maze2d_env(task, **kwargs):
    """The maze2d env of ``task`` (``pointmaze-umaze``, ...) without a time limit (the registered id adds it): the
    evaluation and fine-tuning env of the maze2d protocol (the module docstring). Extra keywords (``render_mode``)
    go to Gymnasium-Robotics' ``PointMazeEnv``."""
    if check_maze_task(task) not in MAZE2D_ENV_IDS:
        raise ValueError(f"{task!r} is a goal-conditioned task: its env is eval_env, not maze2d_env")
    return Maze2dPointMaze(_point_maze(eval_map(task), continuing=True, reset_target=False, **kwargs), task)


def make_data_env(task, **kwargs):
    """The data-collection env of ``task``: the plain maze (goals and starts over every free cell), sparse
    reward, continuing (never terminated: a new goal is drawn when one is reached, ``reset_target``), no time
    limit, dict observations. As Minari's PointMaze collection (``continuing_task=True, reset_target=True``)."""
    return _point_maze(maze_map(check_maze_task(task)), continuing=True, **kwargs)


def register():
    """Register ``gde_ref/Maze2d_{UMaze,Medium,Large}-v0`` (``maze2d_env``) and ``gde_ref/PointMaze_{UMaze,Medium,
    Large}-v0`` (the goal-conditioned ``eval_env``) with Gymnasium (idempotent)."""
    for task, env_id in MAZE_ENV_IDS.items():
        if env_id not in gym.registry:
            entry = "maze2d_env" if task in MAZE2D_ENV_IDS else "eval_env"
            gym.register(env_id, entry_point=f"gde_ref.envs.pointmaze:{entry}", kwargs={"task": task},
                         max_episode_steps=MAZE_MAX_EPISODE_STEPS[task])


register()
