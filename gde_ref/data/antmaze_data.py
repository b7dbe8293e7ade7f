"""AntMaze datasets by D4RL's antmaze protocol: ``gde-ref make-dataset antmaze-umaze``.

    make_antmaze_dataset("antmaze-medium-play", preset="laptop", seed=0)   # -> "gde-ref/antmaze/medium-play-v0"

Two levels (../shared/reference/baselines.md sections 10b, 10c, and what we do):

* high level (``AntWaypoints``): ``data.maze_controller``'s BFS path over the maze cells, waypoints at the
  cells' centres minus JITTER U(0, 1) per axis (the goal itself last), the next one taken when the torso is
  within THRESHOLD: Minari's antmaze values (JITTER 0.1, THRESHOLD 0.45, in maze units, cells 4 wide). D4RL
  instead re-plans from the ant's cell at every step and aims at the next cell's centre plus U(0, 1) noise;
  Minari plans by depth-first search (not always a shortest path), ours by BFS.
* low level: the ant controller (``gde-ref train-ant-controller``: a SAC actor, deterministic tanh(mu)) sees
  ``envs.goal_ant.controller_observation``: the Ant's 27 without x, y, then ``waypoint - xy`` (D4RL rescales
  that vector to norm 10, Minari does not; ours matches how it was trained). Action noise N(0, 0.2^2), clipped
  to [-1, 1] (D4RL's and Minari's).
* episodes of EPISODE_STEPS = 1000 steps (D4RL: 1000, its 1001st-step quirk not copied), each started with a
  reset (start and goal cells by the dataset's kind, both centres + U(-1, 1) per axis); the goal is kept when
  reached (the ant stays around it), as D4RL's and Minari's data (``reset_target=False``).
* kinds (``episode_cells``), by D4RL's meaning: ``fixed`` (antmaze-umaze: D4RL's start and goal cells,
  ``envs.antmaze.EVAL_CELLS``), ``diverse`` (start and goal uniform over the free cells: "random goals"),
  ``play`` (start and goal uniform over a hand-picked set, ``envs.antmaze.play_cells``: "hand-picked
  locations"; the set is Gymnasium-Robotics' ``*_DIVERSE_GR`` cells, Minari's "diverse", whose names swap
  D4RL's). Start and goal cells always differ.
* rewards and terminals relabelled against the evaluation goal (``envs.antmaze.goal_xy``, the goal cell's
  centre) with the position after each step: 1 within 0.5 (D4RL's ``relabel_antmaze_rewards``). D4RL keeps
  such terminals inside 1000-step episodes; Minari episodes may end only once, so an episode is split after
  every terminal step (``relabel_antmaze``): the same transitions, flags and next observations as D4RL's
  ``qlearning_dataset`` would give, in more and shorter episodes; each 1000-step piece ends in a timeout.

The controller: ``--controller FILE`` or the shipped ``gde_ref/policies/antmaze-controller.npz``. At the quick
preset without either, a randomly initialised actor drives the ant (the pipeline runs, the data is poor: the
metadata says ``controller_trained: false`` with a warning); the laptop and paper presets refuse.
"""
import shlex
import time

import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.config import SACConfig
from gde_ref.data.behaviour import POLICY_DIR, load_policy
from gde_ref.data.datasets import save_dataset
from gde_ref.data.maze_controller import advance_waypoint, bfs_path, free_cells, nearest_free_cell, path_waypoints
from gde_ref.envs.antmaze import (EVAL_CELLS, SCALE, SUCCESS_RADIUS, flat_observation, goal_xy, make_data_env,
                                  maze_map, play_cells, success)
from gde_ref.envs.goal_ant import ACT_DIM, OBS_DIM, controller_observation
from gde_ref.envs.make import parse_dataset_name, stored_dataset_name

NOISE_STD = 0.2          # D4RL's and Minari's action noise N(0, 0.2^2)
JITTER = 0.1             # Minari's antmaze waypoint jitter (maze units)
THRESHOLD = 0.45         # Minari's antmaze waypoint threshold (maze units)
EPISODE_STEPS = 1000     # D4RL's episode length
PRESETS = {"quick": 3_000, "laptop": 300_000, "paper": 1_000_000}   # transitions (D4RL and Minari: 1M)
CONTROLLER_FILE = POLICY_DIR / "antmaze-controller.npz"
TRAIN_HINT = ("train one with `gde-ref train-ant-controller --steps N --out gde_ref/policies/antmaze-controller.npz` "
              "(or pass --controller FILE)")


class AntWaypoints:
    """The high level (module docstring): ``target(xy, goal)`` is the waypoint to steer to, planned again
    whenever ``goal`` changes. Plans at scale 1 with ``data.maze_controller`` and scales by ``scale``."""

    def __init__(self, layout, rng, scale=SCALE, jitter=JITTER, threshold=THRESHOLD):
        if not scale > 0 or jitter < 0 or not threshold > 0:
            raise ValueError(f"need scale > 0, jitter >= 0, threshold > 0, got {scale}, {jitter}, {threshold}")
        self.free, self.rng = free_cells(layout), rng
        self.scale, self.jitter, self.threshold = float(scale), float(jitter), float(threshold)
        self.goal, self.waypoints, self.index = None, None, 0

    def plan(self, xy, goal):
        """Waypoints (k, 2) in maze units from the torso's cell to the goal's: BFS cells, jittered centres, goal."""
        xy, goal = np.asarray(xy, np.float64) / self.scale, np.asarray(goal, np.float64)
        path = bfs_path(self.free, nearest_free_cell(xy, self.free), nearest_free_cell(goal / self.scale, self.free))
        self.waypoints = self.scale * path_waypoints(path, goal / self.scale, self.free.shape, self.rng,
                                                     self.jitter / self.scale)
        self.goal, self.index = goal.copy(), 0

    def target(self, xy, goal):
        """The current waypoint after passing every one within ``threshold`` of ``xy`` (never past the goal)."""
        if self.goal is None or not np.array_equal(self.goal, goal):
            self.plan(xy, goal)
        self.index = advance_waypoint(self.index, self.waypoints, np.asarray(xy, np.float64), self.threshold)
        return self.waypoints[self.index]


class AntController:
    """The low level: a SAC actor (deterministic) on ``controller_observation`` plus N(0, noise_std^2), clipped."""

    def __init__(self, agent, rng, noise_std=NOISE_STD):
        if (agent.obs_dim, agent.act_dim) != (OBS_DIM, ACT_DIM):
            raise ValueError(f"an ant controller maps {OBS_DIM} observations to {ACT_DIM} actions; this one "
                             f"{agent.obs_dim} to {agent.act_dim}: it is not an ant controller ({TRAIN_HINT})")
        self.agent, self.rng, self.noise_std = agent, rng, float(noise_std)

    def __call__(self, ant_obs, xy, target):
        obs = controller_observation(ant_obs, xy, target).astype(self.agent.dtype)
        action = np.asarray(self.agent.act(obs), np.float64)
        if self.noise_std > 0:
            action = action + self.noise_std * self.rng.standard_normal(action.shape)
        return np.clip(action, -1.0, 1.0)


def resolve_controller(controller, preset, seed):
    """(SACAgent, info) of the controller to use: the file ``controller``, else the shipped CONTROLLER_FILE, else
    (quick preset only) a randomly initialised 2 x 64 actor with info ``trained: False``; else FileNotFoundError."""
    path = controller if controller is not None else (CONTROLLER_FILE if CONTROLLER_FILE.exists() else None)
    if path is not None:
        agent, info = load_policy(path)
        if (agent.obs_dim, agent.act_dim) != (OBS_DIM, ACT_DIM):
            raise ValueError(f"{path} is not an ant controller ({agent.obs_dim} -> {agent.act_dim}, needs {OBS_DIM} "
                             f"-> {ACT_DIM}); {TRAIN_HINT}")
        return agent, {**info, "file": str(path), "trained": bool(info.get("trained", False))}
    if preset != "quick":
        raise FileNotFoundError(f"no AntMaze controller is shipped ({CONTROLLER_FILE} is missing): {TRAIN_HINT}; "
                                "only --preset quick runs without one (with an untrained controller)")
    agent = SACAgent(OBS_DIM, ACT_DIM, SACConfig(hidden=(64, 64)), seed=seed)
    return agent, {"file": None, "trained": False, "origin": f"randomly initialised 2 x 64 SAC actor (seed {seed})"}


def episode_cells(task, kind, rng):
    """(start cell, goal cell) of one data episode by ``kind``: ``fixed`` EVAL_CELLS[task]; ``diverse`` two
    distinct free cells drawn uniformly; ``play`` two distinct cells of ``play_cells(task)``."""
    if kind == "fixed":
        return EVAL_CELLS[task]
    if kind == "diverse":
        cells = [tuple(int(v) for v in c) for c in np.argwhere(free_cells(maze_map(task)))]
    elif kind == "play" and play_cells(task):
        cells = play_cells(task)
    else:
        raise ValueError(f"{task} has no {kind!r} datasets (kinds: fixed, diverse, and play for the medium maze)")
    start, goal = rng.choice(len(cells), 2, replace=False)
    return cells[start], cells[goal]


def run_episode(env, controller, planner, cells, steps, seed=None):
    """One data episode of ``steps`` steps on an ant-maze ``env`` (Gymnasium-Robotics' dict API, reset with
    ``options={"reset_cell", "goal_cell"}``): ``controller(ant_obs, xy, waypoint)`` steers to
    ``planner.target(xy, goal)``. Returns (observations (steps+1, 29) ``flat_observation``, actions, goal xy)."""
    obs, _ = env.reset(seed=seed, options={"reset_cell": np.array(cells[0]), "goal_cell": np.array(cells[1])})
    goal = np.array(obs["desired_goal"], np.float64)
    observations, actions = [flat_observation(obs)], []
    for _ in range(steps):
        xy = obs["achieved_goal"]
        action = controller(obs["observation"], xy, planner.target(xy, goal))
        obs, *_ = env.step(action.astype(np.float32))
        observations.append(flat_observation(obs))
        actions.append(action)
    return np.array(observations), np.array(actions, np.float32).reshape(steps, -1), goal


def relabel_antmaze(observations, actions, goal, radius=SUCCESS_RADIUS):
    """One 1000-step episode -> Minari episodes with D4RL's relabelled rewards and terminals: r_t = terminal_t =
    ``success(xy_{t+1}, goal)``; split after every terminal step (a termination), the last piece a truncation."""
    observations = np.asarray(observations, np.float64)
    steps = len(actions)
    if observations.ndim != 2 or len(observations) != steps + 1 or steps < 1:
        raise ValueError(f"relabel_antmaze needs T >= 1 actions and T+1 observations, got {steps} and "
                         f"{observations.shape}")
    rewards = success(observations[1:, :2], np.asarray(goal, np.float64), radius)
    ends = list(np.flatnonzero(rewards > 0) + 1)
    episodes, start = [], 0
    for end in ends + ([steps] if not ends or ends[-1] != steps else []):
        terminal = rewards[end - 1] > 0
        flags = np.zeros(end - start, bool)
        flags[-1] = True
        episodes.append({"observations": observations[start:end + 1], "actions": np.asarray(actions[start:end]),
                         "rewards": rewards[start:end], "terminations": flags & terminal,
                         "truncations": flags & (not terminal)})
        start = end
    return episodes


def collect_antmaze(task, kind, size, agent, seed=0, progress=None, env=None):
    """Relabelled episodes of at least ``size`` transitions (whole 1000-step rollouts); (episodes, stats).
    stats: rollouts, goal_reach_rate (share of rollouts whose ant came within 0.5 of its own goal),
    eval_goal_reward_rate (share of steps rewarded against the evaluation goal)."""
    if size < 1:
        raise ValueError(f"size must be >= 1 transition, got {size}")
    env = make_data_env(task) if env is None else env
    rng = np.random.default_rng([seed, 4])
    controller, planner = AntController(agent, rng), AntWaypoints(maze_map(task), rng)
    episodes, total, reached, rewarded = [], 0, 0, 0.0
    while total < size:
        cells = episode_cells(task, kind, rng)
        obs, actions, goal = run_episode(env, controller, planner, cells, EPISODE_STEPS, seed if total == 0 else None)
        reached += bool(success(obs[1:, :2], goal).any())
        pieces = relabel_antmaze(obs, actions, goal_xy(task))
        rewarded += sum(float(p["rewards"].sum()) for p in pieces)
        episodes += pieces
        total += EPISODE_STEPS
        if progress is not None:
            progress(EPISODE_STEPS)
    env.close()
    rollouts = total // EPISODE_STEPS
    return episodes, {"rollouts": rollouts, "goal_reach_rate": reached / rollouts,
                      "eval_goal_reward_rate": rewarded / total, "transitions": total}


def controller_success(agent, task="antmaze-umaze", episodes=20, seed=0):
    """Share of ``episodes`` evaluation-env episodes of ``task`` (``make_env``: its start and goal, time limit,
    success within 0.5) that the waypoints and ``agent`` reach without action noise: the acceptance check
    of a shipped controller (issue 15: most of 20 rollouts on the umaze)."""
    from gde_ref.envs.make import make_env
    env, rng, reached = make_env(task), np.random.default_rng([seed, 6]), 0
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        controller, planner = AntController(agent, rng, noise_std=0.0), AntWaypoints(maze_map(task), rng)
        done = False
        while not done:
            action = controller(obs[2:], obs[:2], planner.target(obs[:2], info["goal"]))
            obs, reward, terminated, truncated, _ = env.step(action.astype(np.float32))
            done = terminated or truncated
        reached += reward > 0
    env.close()
    return reached / episodes


def make_antmaze_dataset(name, size=None, seed=0, preset="laptop", *, progress=None, command=None, controller=None):
    """Make and save the AntMaze dataset ``name`` (antmaze-umaze, -umaze-diverse, -medium-play, -medium-diverse);
    returns (Minari id, info). size: transitions (default: the preset's, PRESETS), whole 1000-step rollouts; a
    quick-preset dataset is stored as NAME-quick. controller: a policy file (default: the shipped one;
    ``resolve_controller``). The metadata (key ``gde_ref``) records the command, seed, preset, kind, both levels'
    rules and constants, the controller's file and whether it was trained, and the reach rates."""
    from gde_ref.data.generate import check_absent
    task, kind = parse_dataset_name(name)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    size = PRESETS[preset] if size is None else int(size)
    stored = stored_dataset_name(name, preset)
    check_absent(stored)
    agent, info = resolve_controller(controller, preset, seed)
    start = time.perf_counter()
    episodes, stats = collect_antmaze(task, kind, size, agent, seed, progress)
    metadata = {"command": command or f"gde-ref make-dataset {shlex.quote(name)} --size {size} --preset {preset} "
                                      f"--seed {seed}",
                "seed": seed, "preset": preset, "kind": kind, "size_requested": size, **stats,
                "behaviour_score": 100.0 * stats["goal_reach_rate"],
                "controller_file": info.get("file"), "controller_trained": info["trained"],
                "controller_sac_steps": info.get("sac_steps", 0),
                "behaviour_policy": f"BFS waypoints (cell centres - {JITTER} U(0,1), passed within {THRESHOLD}) "
                                    "steered by the ant controller (SAC actor, deterministic) + N(0, "
                                    f"{NOISE_STD}^2), clipped to [-1, 1]",
                "collection": f"{EPISODE_STEPS}-step rollouts from a reset (kind {kind}: start and goal cells "
                              "by envs/data antmaze's rule), goal kept when reached; rewards and terminations "
                              f"relabelled against the evaluation goal {goal_xy(task).tolist()} (1 within "
                              f"{SUCCESS_RADIUS} after the step, D4RL); episodes split after each terminal",
                "seconds": 0.0}
    if not info["trained"]:
        metadata["warning"] = ("UNTRAINED ANT CONTROLLER: the ant does not follow its waypoints, so the data is "
                               f"poor (for pipeline tests only); {TRAIN_HINT}")
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    did = save_dataset(stored, episodes, metadata=metadata, algorithm_name="BFS waypoints + SAC ant controller + noise")
    return did, {"dataset_id": did, "name": stored, "episodes": len(episodes), **metadata}
