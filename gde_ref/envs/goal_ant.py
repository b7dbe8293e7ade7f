"""The goal-directed Ant task the AntMaze low-level controller is trained on (``gde-ref train-ant-controller``).

    env = gymnasium.make("gde_ref/GoalAnt-v0")   # or goal_ant_env(); 1000-step time limit
    obs, _ = env.reset(seed=0)                   # (29,): the Ant's 27 without x, y, then goal - xy

An open floor with Gymnasium's Ant-v5 (``ant.xml``, frame skip 5, dt 0.05: the same robot and model that
Gymnasium-Robotics' ``AntMaze_*-v5`` mazes are built from), a goal somewhere around it. One function per rule:

* ``controller_observation``: the Ant-v5 observation without the torso's x, y and without contact forces
  (27: z, orientation quaternion, 8 joint angles, then 14 velocities), then ``goal - xy`` (2), not rescaled
  (Minari's GoalReachAnt). D4RL's controller saw the goal vector rescaled to norm 10 (direction only).
  The AntMaze data's controller is handed ``waypoint - xy`` the same way (``data.antmaze_data``).
* ``sample_goal``: a goal uniform over the disk of radius GOAL_RADIUS = 10 around the origin, by area
  (radius R sqrt(U)). Minari draws the radius as R U (denser near the centre).
* ``goal_velocity_reward``: FORWARD_SCALE (v_xy . (g - xy') / ||g - xy'||) - 0.5 ||a||^2 + 1 (healthy), with
  v_xy the torso's velocity over the step and xy' its position after it: Minari's GoalReachAnt with Ant-v5's
  own ctrl cost and survive reward; Ant-v5's contact cost is left out (as Minari's).
* ``goal_reached``: ||xy' - g|| <= GOAL_THRESHOLD = 0.45, the AntMaze waypoint threshold the controller has to
  meet (Minari's training script used 0.2, its env's default is 0.3); then ``next_goal`` draws a new goal at
  least that far from the ant, and the episode goes on (continuing, as Minari's).
* ``is_healthy``: Ant-v5's rule, torso z in [0.2, 1.0] and the state finite; an unhealthy ant ends the episode
  (terminated, as Ant-v5). Minari's goes on with a flipped ant (its ``continuing_task`` ignores the fall).
* start: Ant-v5's initial pose with U(-0.15, 0.15) noise on positions and 0.15 N(0, 1) on velocities
  (RESET_NOISE, Minari's); the time limit is TIME_LIMIT = 1000 steps (a truncation, Minari's).
"""
import numpy as np

import gymnasium as gym
from gymnasium import spaces

from gde_ref.envs.make import quiet_mujoco_warnings

ENV_ID = "gde_ref/GoalAnt-v0"
GOAL_RADIUS = 10.0        # goals uniform in a disk of this radius (Minari: 10)
GOAL_THRESHOLD = 0.45     # a goal is reached within this distance (= the AntMaze waypoint threshold)
FORWARD_SCALE = 10.0      # weight of the velocity towards the goal (Minari: 10)
CTRL_COST = 0.5           # Ant-v5's ctrl_cost_weight
HEALTHY_REWARD = 1.0      # Ant-v5's healthy_reward
HEALTHY_Z = (0.2, 1.0)    # Ant-v5's healthy_z_range
RESET_NOISE = 0.15        # Minari's reset_noise_scale (Ant-v5's default is 0.1)
TIME_LIMIT = 1000
ANT_OBS_DIM = 27          # Ant-v5 without x, y and contact forces (AntMaze's "observation" key, same layout)
OBS_DIM, ACT_DIM = ANT_OBS_DIM + 2, 8


def controller_observation(ant_obs, xy, target):
    """The controller's input (29,): ``ant_obs`` (the Ant's 27 without x, y) then ``target - xy`` (float64)."""
    ant_obs = np.asarray(ant_obs, np.float64)
    if ant_obs.shape != (ANT_OBS_DIM,):
        raise ValueError(f"controller_observation needs the Ant's {ANT_OBS_DIM} observations without x, y, got "
                         f"shape {ant_obs.shape}")
    return np.concatenate([ant_obs, np.asarray(target, np.float64) - np.asarray(xy, np.float64)])


def sample_goal(rng, radius=GOAL_RADIUS):
    """A goal uniform (by area) over the disk of ``radius`` around the origin: angle 2 pi U, radius R sqrt(U)."""
    angle, r = 2.0 * np.pi * rng.uniform(), radius * np.sqrt(rng.uniform())
    return np.array([r * np.cos(angle), r * np.sin(angle)])


def goal_reached(xy, goal, threshold=GOAL_THRESHOLD):
    """True when the torso is within ``threshold`` of the goal: ||xy - goal|| <= threshold."""
    return bool(np.linalg.norm(np.asarray(xy, np.float64) - goal) <= threshold)


def next_goal(rng, xy, radius=GOAL_RADIUS, threshold=GOAL_THRESHOLD):
    """The goal after a reach: ``sample_goal`` drawn again until it is farther than ``threshold`` from ``xy``."""
    goal = sample_goal(rng, radius)
    while goal_reached(xy, goal, threshold):
        goal = sample_goal(rng, radius)
    return goal


def is_healthy(z, state):
    """Ant-v5's health rule: every state value finite and the torso height z in HEALTHY_Z (inclusive)."""
    return bool(np.all(np.isfinite(state)) and HEALTHY_Z[0] <= z <= HEALTHY_Z[1])


def goal_velocity_reward(velocity_xy, xy_after, goal, action, healthy):
    """FORWARD_SCALE (v . u) - CTRL_COST ||a||^2 + HEALTHY_REWARD [healthy], u the unit vector from ``xy_after``
    to ``goal`` (u = 0 when the ant is exactly on the goal): the velocity towards the goal, paid per step."""
    towards = np.asarray(goal, np.float64) - np.asarray(xy_after, np.float64)
    norm = np.linalg.norm(towards)
    forward = 0.0 if norm == 0.0 else float(np.dot(velocity_xy, towards) / norm)
    ctrl = CTRL_COST * float(np.sum(np.square(action)))
    return FORWARD_SCALE * forward - ctrl + (HEALTHY_REWARD if healthy else 0.0)


class GoalAntEnv(gym.Env):
    """The goal-directed Ant (module docstring): observation ``controller_observation`` (29,), actions in
    [-1, 1]^8, reward ``goal_velocity_reward``, a new goal at each reach (``info["goals_reached"]`` counts
    them), terminated when unhealthy. No time limit here: the registered id adds TIME_LIMIT."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 20}

    def __init__(self, render_mode=None, goal_radius=GOAL_RADIUS, goal_threshold=GOAL_THRESHOLD):
        from gymnasium.envs.mujoco.ant_v5 import AntEnv
        if not goal_radius > 0 or not goal_threshold > 0:
            raise ValueError(f"goal_radius and goal_threshold must be > 0, got {goal_radius}, {goal_threshold}")
        with quiet_mujoco_warnings():
            self.ant = AntEnv(exclude_current_positions_from_observation=False, include_cfrc_ext_in_observation=False,
                              reset_noise_scale=RESET_NOISE, render_mode=render_mode)
        self.goal_radius, self.goal_threshold = float(goal_radius), float(goal_threshold)
        self.render_mode = render_mode
        self.action_space = self.ant.action_space
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)
        self.goal, self.reached = np.zeros(2), 0

    def _observation(self, ant_obs):
        return controller_observation(ant_obs[2:], ant_obs[:2], self.goal)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        ant_obs, _ = self.ant.reset(seed=seed)
        self.goal = next_goal(self.np_random, ant_obs[:2], self.goal_radius, self.goal_threshold)
        self.reached = 0
        return self._observation(ant_obs), {"goal": self.goal.copy(), "goals_reached": 0}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        ant_obs, _, _, _, info = self.ant.step(action)
        xy, velocity = ant_obs[:2], np.array([info["x_velocity"], info["y_velocity"]])
        healthy = is_healthy(ant_obs[2], self.ant.state_vector())
        reward = goal_velocity_reward(velocity, xy, self.goal, action, healthy)
        reached = goal_reached(xy, self.goal, self.goal_threshold)
        if reached:
            self.reached += 1
            self.goal = next_goal(self.np_random, xy, self.goal_radius, self.goal_threshold)
        info = {"goal": self.goal.copy(), "goal_reached": reached, "goals_reached": self.reached, "xy": xy.copy()}
        return self._observation(ant_obs), reward, not healthy, False, info

    def render(self):
        return self.ant.render()

    def close(self):
        self.ant.close()


def goal_ant_env(**kwargs):
    """A ``GoalAntEnv`` without a time limit (``gymnasium.make(ENV_ID)`` adds TIME_LIMIT)."""
    return GoalAntEnv(**kwargs)


def register():
    """Register ENV_ID (``GoalAntEnv``, TIME_LIMIT steps) with Gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="gde_ref.envs.goal_ant:goal_ant_env", max_episode_steps=TIME_LIMIT)


register()
