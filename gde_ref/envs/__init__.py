"""Environments: the MuJoCo locomotion tasks (``envs.make``: factory, D4RL reference returns and normalized
score, dataset names), the sparse-reward PointMaze tasks (``envs.pointmaze``, made through ``envs.make``) and the
paper's toy maze (``envs.maze``). Import the submodule you need."""
