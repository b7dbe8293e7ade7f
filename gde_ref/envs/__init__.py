"""Environments: the MuJoCo locomotion tasks (``envs.make``: factory, D4RL reference returns and normalized
score, dataset names) and the paper's toy maze (``envs.maze``). Import the submodule you need."""
