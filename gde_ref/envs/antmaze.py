"""Sparse-reward AntMaze tasks on Gymnasium-Robotics' ant mazes, D4RL's antmaze protocol.

    env = make_env("antmaze-umaze")     # gde_ref/AntMaze_UMaze-v0: 700 steps (medium: 1000)
    obs, _ = env.reset(seed=0)          # (29,): x, y, then the Ant's 27 (D4RL's qpos + qvel layout)

Decisions, and where they differ from D4RL's antmaze (../shared/reference/baselines.md section 10b) and
Minari's (10c):

* mazes: Gymnasium-Robotics' ``U_MAZE`` and ``MEDIUM_MAZE`` (D4RL's layouts), cells SCALE = 4 wide, the maze
  centred on the origin with row 0 at the top (D4RL puts its start cell at the origin and y down the rows: a
  reflection and a shift of ours; distances, rewards and scores are the same). The Ant is Gymnasium's Ant-v5
  model (D4RL's: its own ant.xml under mujoco-py), without contact forces in the observation.
* evaluation env (``eval_env``): D4RL's start and goal cells, EVAL_CELLS (row, col): umaze start (1, 1), goal
  (3, 1); medium start (1, 1), goal (6, 6) (the ``R`` and ``G`` of D4RL's ``U_MAZE_TEST`` and
  ``BIG_MAZE_TEST``); both centres get Gymnasium-Robotics' U(-1, 1) noise per axis at every reset (D4RL's -v2
  eval envs also redraw the goal at each reset, with U(0, 1) noise; its ant starts at the start cell's centre
  with 0.1 noise on the joints, ours at a noisy point of the cell with none).
* observation ``[x, y, ant (27)]`` (29,), float64, no goal (the goal is fixed, as D4RL's 29-dim antmaze).
* reward 1 when ``||xy' - goal|| <= 0.5`` after the step, else 0, and the episode ends there (D4RL's eval env;
  Gymnasium-Robotics' own radius is 0.45): the return is 0 or 1, R_min, R_max = 0, 1, the score 100 x the
  success rate. Time limits 700 (umaze), 1000 (medium), D4RL's.
* the data env (``make_data_env``): the plain maze, continuing, the goal never redrawn by the env
  (``data.antmaze_data`` sets start and goal cells at each episode's reset).
"""
import numpy as np

import gymnasium as gym
from gymnasium import spaces

from gde_ref.envs.make import ANTMAZE_ENV_IDS, ANTMAZE_MAX_EPISODE_STEPS, check_task, quiet_mujoco_warnings
from gde_ref.envs.pointmaze import _robotics

SCALE = 4.0                # Gymnasium-Robotics' and D4RL's maze_size_scaling: a cell is 4 x 4
SUCCESS_RADIUS = 0.5       # D4RL antmaze's success radius (eval env and relabelling)
MAP_NAMES = {"antmaze-umaze": "U_MAZE", "antmaze-medium": "MEDIUM_MAZE"}
PLAY_MAP_NAMES = {"antmaze-medium": "MEDIUM_MAZE_DIVERSE_GR"}   # its "c" cells: the play starts and goals
EVAL_CELLS = {"antmaze-umaze": ((1, 1), (3, 1)), "antmaze-medium": ((1, 1), (6, 6))}   # (start, goal), (row, col)
ANT_OBS_DIM = 27
OBS_DIM = ANT_OBS_DIM + 2


def check_antmaze_task(task):
    """``task`` if it is an AntMaze task, else a ValueError listing them."""
    if check_task(task) not in ANTMAZE_ENV_IDS:
        raise ValueError(f"{task!r} is not an AntMaze task; choose one of {', '.join(ANTMAZE_ENV_IDS)}")
    return task


def _map(name):
    _robotics()
    import copy

    from gymnasium_robotics.envs.maze import maps
    return copy.deepcopy(getattr(maps, name))


def maze_map(task):
    """The task's maze as Gymnasium-Robotics writes it (rows of 1 wall / 0 free), a fresh copy."""
    return _map(MAP_NAMES[check_antmaze_task(task)])


def play_cells(task):
    """The hand-picked (row, col) cells of D4RL's play datasets: the ``c`` cells of Gymnasium-Robotics'
    ``*_DIVERSE_GR`` map, the set Minari names "diverse" (the names are swapped, baselines 10c). None for umaze."""
    name = PLAY_MAP_NAMES.get(check_antmaze_task(task))
    if name is None:
        return None
    return [(r, c) for r, row in enumerate(_map(name)) for c, v in enumerate(row) if v == "c"]


def eval_map(task):
    """The task's maze with ``"r"`` at the start cell and ``"g"`` at the goal cell of EVAL_CELLS."""
    layout = maze_map(task)
    (sr, sc), (gr, gc) = EVAL_CELLS[task]
    layout[sr][sc], layout[gr][gc] = "r", "g"
    return layout


def cell_xy(cell, shape, scale=SCALE):
    """(x, y) of cell (row, col)'s centre: x = (col + 0.5 - cols / 2) scale, y = (rows / 2 - row - 0.5) scale."""
    return scale * np.array([cell[1] + 0.5 - shape[1] / 2.0, shape[0] / 2.0 - (cell[0] + 0.5)])


def goal_xy(task):
    """(x, y) of the centre of ``task``'s evaluation goal cell (relabelling goal of its datasets)."""
    return cell_xy(EVAL_CELLS[check_antmaze_task(task)][1], np.array(maze_map(task)).shape)


def flat_observation(obs):
    """An ant-maze dict observation -> ``[x, y, ant (27)]`` (float64), D4RL's layout."""
    return np.concatenate([obs["achieved_goal"], obs["observation"]]).astype(np.float64)


def success(next_xy, goal, radius=SUCCESS_RADIUS):
    """D4RL antmaze's sparse reward and terminal of positions (..., 2): 1.0 where ``||xy' - goal|| <= radius``."""
    return (np.linalg.norm(np.asarray(next_xy, np.float64) - goal, axis=-1) <= radius).astype(np.float64)


def _ant_maze(layout, **kwargs):
    _robotics()
    from gymnasium_robotics.envs.maze.ant_maze_v5 import AntMazeEnv
    with quiet_mujoco_warnings():
        return AntMazeEnv(maze_map=layout, reward_type="sparse", continuing_task=True, reset_target=False,
                          include_cfrc_ext_in_observation=False, **kwargs)


class AntMazeEval(gym.Wrapper):
    """D4RL's antmaze eval env on a Gymnasium-Robotics ant maze: observations ``flat_observation``, reward and
    termination ``success`` against the episode's goal (the module docstring)."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        obs, _ = self.env.reset(seed=seed, options=options)
        return flat_observation(obs), {"success": False, "goal": self.env.unwrapped.goal.copy()}

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        reward = float(success(obs["achieved_goal"], self.env.unwrapped.goal))
        return flat_observation(obs), reward, reward > 0, truncated, {**info, "success": reward > 0}


def eval_env(task, **kwargs):
    """The evaluation env of ``task`` (``antmaze-umaze``, ``antmaze-medium``) without a time limit (the
    registered id adds it). Extra keywords (``render_mode``) go to Gymnasium-Robotics' ``AntMazeEnv``."""
    return AntMazeEval(_ant_maze(eval_map(check_antmaze_task(task)), **kwargs))


def make_data_env(task, **kwargs):
    """The data-collection env of ``task``: the plain maze, continuing, the goal never redrawn, dict
    observations; start and goal are set through ``reset(options={"reset_cell": ..., "goal_cell": ...})``."""
    return _ant_maze(maze_map(check_antmaze_task(task)), **kwargs)


def register():
    """Register ``gde_ref/AntMaze_{UMaze,Medium}-v0`` (``eval_env``) with Gymnasium (idempotent)."""
    for task, env_id in ANTMAZE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="gde_ref.envs.antmaze:eval_env", kwargs={"task": task},
                         max_episode_steps=ANTMAZE_MAX_EPISODE_STEPS[task])


register()
