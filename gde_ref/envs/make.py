"""The tasks: env factory, reference returns, normalized score, dataset names.

    env = make_env("hopper")                       # Gymnasium Hopper-v5, 1000-step time limit
    normalized_score("hopper", 1600.0)             # 49.8: D4RL's 100 (R - R_min) / (R_max - R_min)
    parse_dataset_name("walker2d-medium-replay")   # ("walker2d", "medium-replay")
    make_env("pointmaze-umaze")                    # sparse-reward PointMaze, D4RL maze2d protocol (envs.pointmaze)
    normalized_score("pointmaze-umaze", 161.86)    # 100.0: D4RL maze2d's reference returns
    normalized_score("pointmaze-umaze-goals", 0.7) # 70.0: success rate x 100 (the goal-conditioned variant)

The MuJoCo locomotion tasks (TASKS) and the sparse-reward PointMaze tasks (MAZE_TASKS, ``envs.pointmaze``: the
maze2d protocol MAZE2D_TASKS and the goal-conditioned GOAL_MAZE_TASKS; a maze dataset's name is its task's,
e.g. ``pointmaze-umaze`` or ``pointmaze-umaze-goals``, made by ``data.pointmaze_data``).

Gymnasium is imported only when an env is made, so importing this module is cheap.
"""
import contextlib
import warnings

import numpy as np

ENV_IDS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
TASKS = tuple(ENV_IDS)
MAX_EPISODE_STEPS = 1000  # D4RL's episode cap for the locomotion tasks

# D4RL's reference returns (R_min: random policy, R_max: expert SAC), from d4rl/infos.py. They were
# measured on the older mujoco-py envs (Hopper-v3 ...), so normalized scores on the Gymnasium v5 envs
# used here are approximate: comparable in scale with published numbers, not to the decimal.
REF_SCORES = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}

# D4RL's dataset kinds (how the behaviour policy was obtained, see gde_ref/data/generate.py).
DATASET_KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")
DATASET_NAMES = tuple(f"{task}-{kind}" for task in TASKS for kind in DATASET_KINDS)
# a dataset made at the ``quick`` preset (seconds, for CI) is stored under its own name, NAME-quick, so that it
# is never taken for the real one
QUICK_SUFFIX = "-quick"
QUICK_NAMES = tuple(name + QUICK_SUFFIX for name in DATASET_NAMES)

# Sparse-reward PointMaze tasks (envs.pointmaze), two protocols on the same mazes and controller data:
# * pointmaze-{umaze,medium,large}, the default: D4RL's maze2d protocol. Observations (x, y, vx, vy), no goal;
#   one fixed goal, rewards relabelled against it, the env never ends at the goal (the return counts the steps
#   spent there), scored with D4RL's maze2d reference returns (d4rl/infos.py), so the score is comparable in
#   kind with published maze2d-*-v1 numbers.
# * pointmaze-{umaze,medium,large}-goals: goal-conditioned ([x, y, vx, vy, goal_x, goal_y]), each data episode
#   ends at its own goal; the eval env ends at success, R_min, R_max = 0, 1: 100 x the success rate (as antmaze).
# task -> our registered Gymnasium id; time limits are D4RL maze2d's and Gymnasium-Robotics': 300, 600, 800.
MAZE2D_ENV_IDS = {"pointmaze-umaze": "gde_ref/Maze2d_UMaze-v0", "pointmaze-medium": "gde_ref/Maze2d_Medium-v0",
                  "pointmaze-large": "gde_ref/Maze2d_Large-v0"}
GOAL_MAZE_ENV_IDS = {"pointmaze-umaze-goals": "gde_ref/PointMaze_UMaze-v0",
                     "pointmaze-medium-goals": "gde_ref/PointMaze_Medium-v0",
                     "pointmaze-large-goals": "gde_ref/PointMaze_Large-v0"}
MAZE_ENV_IDS = {**MAZE2D_ENV_IDS, **GOAL_MAZE_ENV_IDS}
MAZE2D_TASKS, GOAL_MAZE_TASKS = tuple(MAZE2D_ENV_IDS), tuple(GOAL_MAZE_ENV_IDS)
MAZE_TASKS = MAZE2D_TASKS + GOAL_MAZE_TASKS
MAZE_OF_TASK = {task: task.split("-")[1] for task in MAZE_TASKS}   # "pointmaze-umaze-goals" -> "umaze"
MAZE_MAX_EPISODE_STEPS = {task: {"umaze": 300, "medium": 600, "large": 800}[MAZE_OF_TASK[task]] for task in MAZE_TASKS}
REF_SCORES.update({"pointmaze-umaze": (23.85, 161.86), "pointmaze-medium": (13.13, 277.39),   # D4RL maze2d sparse
                   "pointmaze-large": (6.7, 273.99)})
REF_SCORES.update({task: (0.0, 1.0) for task in GOAL_MAZE_TASKS})
MAZE_KIND = "noisy"   # the one kind of maze data: the waypoint controller with N(0, 0.5^2) action noise
MAZE_DATASET_NAMES = MAZE_TASKS
MAZE_QUICK_NAMES = tuple(name + QUICK_SUFFIX for name in MAZE_DATASET_NAMES)
# AntMaze (envs.antmaze, data.antmaze_data): D4RL's antmaze protocol on Gymnasium-Robotics' ant mazes. Two tasks
# (eval envs: fixed start and goal cell, ends at success within 0.5, return 0/1, R_min, R_max = 0, 1), four datasets
# named as D4RL's: antmaze-umaze (fixed start and goal), -umaze-diverse, -medium-play, -medium-diverse (kinds below).
ANTMAZE_ENV_IDS = {"antmaze-umaze": "gde_ref/AntMaze_UMaze-v0", "antmaze-medium": "gde_ref/AntMaze_Medium-v0"}
ANTMAZE_TASKS = tuple(ANTMAZE_ENV_IDS)
ANTMAZE_MAX_EPISODE_STEPS = {"antmaze-umaze": 700, "antmaze-medium": 1000}   # D4RL's eval time limits
ANTMAZE_DATASETS = {"antmaze-umaze": ("antmaze-umaze", "fixed"), "antmaze-umaze-diverse": ("antmaze-umaze", "diverse"),
                    "antmaze-medium-play": ("antmaze-medium", "play"),
                    "antmaze-medium-diverse": ("antmaze-medium", "diverse")}   # name -> (task, kind)
ANTMAZE_DATASET_NAMES = tuple(ANTMAZE_DATASETS)
ANTMAZE_QUICK_NAMES = tuple(name + QUICK_SUFFIX for name in ANTMAZE_DATASET_NAMES)
REF_SCORES.update({task: (0.0, 1.0) for task in ANTMAZE_TASKS})
GOAL_ENV_IDS = {**MAZE_ENV_IDS, **ANTMAZE_ENV_IDS}   # every task on a Gymnasium-Robotics maze
# the tasks that take the paper's sparse-reward settings (Table 7's antmaze column)
SPARSE_TASKS = GOAL_MAZE_TASKS + ANTMAZE_TASKS


def is_sparse(task):
    """True for a task that takes the paper's sparse-reward settings (Table 7's antmaze column,
    ``experiments.sparse``): AntMaze and the goal-conditioned PointMaze tasks, whose episodes end at success. The maze2d
    ones (never ending, a return of up to hundreds of steps at the goal) take the locomotion settings, as
    CORL's IQL maze2d configs (expectile 0.7, temperature 3), but their rewards are not scaled (``scales_rewards``)."""
    return task in SPARSE_TASKS


def scales_rewards(task):
    """True if offline rewards are scaled by 1000 / (max - min episode return) (IQL's locomotion rule): not on a
    PointMaze or AntMaze task (AntMaze and goal-conditioned PointMaze: r - 1; maze2d: the 0/1 rewards as they
    are, as CORL's IQL does)."""
    return task not in GOAL_ENV_IDS


def stored_dataset_name(name, preset):
    """The name a dataset made at ``preset`` is stored under: ``name`` + "-quick" for the quick preset."""
    return name + QUICK_SUFFIX if preset == "quick" and not name.endswith(QUICK_SUFFIX) else name


def check_task(task):
    """Return ``task`` if it is one of TASKS, MAZE_TASKS or ANTMAZE_TASKS, else raise a ValueError listing them."""
    if task not in ENV_IDS and task not in GOAL_ENV_IDS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS + MAZE_TASKS + ANTMAZE_TASKS)}")
    return task


def env_name(env_id):
    """A Gymnasium id without namespace or version, lower case: ``"gymnasium/Walker2d-v4"`` -> ``"walker2d"``."""
    return str(env_id).split("/")[-1].split(":")[-1].split("-v")[0].lower()


def task_of_env_id(env_id):
    """The task of a Gymnasium env id of any version (``"Walker2d-v4"`` -> ``"walker2d"``,
    ``"gde_ref/Maze2d_UMaze-v0"`` -> ``"pointmaze-umaze"``, ``"gde_ref/PointMaze_UMaze-v0"`` ->
    ``"pointmaze-umaze-goals"``), or None."""
    for task, maze_id in GOAL_ENV_IDS.items():
        if str(env_id).split("-v")[0] == maze_id.split("-v")[0]:
            return task
    name = env_name(env_id)
    return name if name in ENV_IDS else None


@contextlib.contextmanager
def quiet_mujoco_warnings():
    """Silence exactly MuJoCo's ``settotalmass`` deprecation warning while models are compiled.

    MuJoCo 4 warns that the ``settotalmass`` compiler attribute (used by Gymnasium's half_cheetah.xml)
    is deprecated; its default handler prints to stderr *and* appends to ``MUJOCO_LOG.TXT`` in the
    working directory. Inside this block a handler drops that one message and turns any other MuJoCo
    warning into a Python ``RuntimeWarning``; the previous handler is restored afterwards.
    """
    try:
        import mujoco
    except ImportError:  # no MuJoCo: nothing to silence
        yield
        return

    def handler(message):
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def make_env(task, max_episode_steps=None, **kwargs):
    """A Gymnasium env for a task: locomotion (``hopper``, ``halfcheetah``, ``walker2d``) or PointMaze.

    Locomotion: the v5 envs with their default options and a ``max_episode_steps`` time limit (default 1000;
    a truncation, not a terminal). PointMaze (``pointmaze-umaze``, ...): ``envs.pointmaze``'s evaluation env
    (maze2d: (x, y, vx, vy), fixed goal, never terminated; ``-goals``: the goal appended, terminated at success;
    default limit MAZE_MAX_EPISODE_STEPS). Extra
    keyword arguments go to ``gymnasium.make``. Seed it at the first reset: ``env.reset(seed=s)`` (and
    ``env.action_space.seed(s)`` for random actions).
    """
    import gymnasium as gym

    if check_task(task) in ANTMAZE_ENV_IDS:
        from gde_ref.envs.antmaze import register
        register()
        steps = ANTMAZE_MAX_EPISODE_STEPS[task] if max_episode_steps is None else max_episode_steps
        return gym.make(ANTMAZE_ENV_IDS[task], max_episode_steps=steps, **kwargs)
    if task in MAZE_ENV_IDS:
        from gde_ref.envs.pointmaze import register
        register()
        steps = MAZE_MAX_EPISODE_STEPS[task] if max_episode_steps is None else max_episode_steps
        return gym.make(MAZE_ENV_IDS[task], max_episode_steps=steps, **kwargs)
    with quiet_mujoco_warnings():
        return gym.make(ENV_IDS[task], max_episode_steps=max_episode_steps or MAX_EPISODE_STEPS, **kwargs)


def env_spaces(env):
    """(observation space, action space, env id or None) of a task name, a Gymnasium id or an env."""
    if isinstance(env, str):
        import gymnasium as gym
        try:
            with quiet_mujoco_warnings():
                task = env if env in ENV_IDS or env in GOAL_ENV_IDS else task_of_env_id(env)
                made = make_env(task) if task in GOAL_ENV_IDS or env in ENV_IDS else gym.make(env)
        except gym.error.Error as e:
            raise ValueError(f"unknown env {env!r} ({e}); pass a task ({', '.join(TASKS + MAZE_TASKS)}) or a "
                             "Gymnasium id") from e
        made.close()  # its spaces stay valid
        env = made
    return env.observation_space, env.action_space, getattr(getattr(env, "spec", None), "id", None)


def normalize_return(returns, ref_min_score, ref_max_score):
    """D4RL normalized score 100 (R - R_min) / (R_max - R_min) for given reference returns.

    ``returns``: a number or an array of undiscounted episode returns; the result has its shape.
    0 is the random policy's level, 100 the expert's.
    """
    if not np.isfinite(ref_min_score) or not np.isfinite(ref_max_score) or ref_max_score <= ref_min_score:
        raise ValueError(f"reference returns must be finite with R_max > R_min, got R_min={ref_min_score}, "
                         f"R_max={ref_max_score}")
    score = 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min_score) / (ref_max_score - ref_min_score)
    return float(score) if score.ndim == 0 else score


def normalized_score(task, returns):
    """D4RL normalized score of episode returns on a task, with D4RL's reference returns (REF_SCORES).

    Approximate on the v5 envs (see REF_SCORES). A maze2d PointMaze task's: D4RL maze2d's reference returns
    (a return is the number of steps at the goal); a goal-conditioned one's: 100 x the success rate (0 or 1)."""
    return normalize_return(returns, *REF_SCORES[check_task(task)])


def parse_dataset_name(name):
    """Split a D4RL-style dataset name ``{task}-{kind}`` into ``(task, kind)``.

    ``"hopper-medium-replay"`` -> ``("hopper", "medium-replay")``; a quick-preset dataset's name
    ``"hopper-medium-quick"`` -> ``("hopper", "medium")``. A PointMaze dataset is named by its task:
    ``"pointmaze-umaze"`` (or ``"pointmaze-umaze-quick"``) -> ``("pointmaze-umaze", "noisy")`` (MAZE_KIND),
    ``"pointmaze-umaze-goals"`` -> ``("pointmaze-umaze-goals", "noisy")``. An AntMaze one by ANTMAZE_DATASETS:
    ``"antmaze-umaze"`` -> ``("antmaze-umaze", "fixed")``, ``"antmaze-medium-play"`` -> ``("antmaze-medium", "play")``.
    Raises a ValueError listing the valid names for anything else (also for D4RL's versioned names such
    as ``hopper-medium-v2``).
    """
    text = str(name)
    maze = text[:-len(QUICK_SUFFIX)] if text.endswith(QUICK_SUFFIX) else text
    if maze in MAZE_DATASET_NAMES:
        return maze, MAZE_KIND
    if maze in ANTMAZE_DATASETS:
        return ANTMAZE_DATASETS[maze]
    task, _, kind = text.partition("-")
    kind = kind[:-len(QUICK_SUFFIX)] if kind.endswith(QUICK_SUFFIX) else kind   # hopper-medium-quick: a quick one
    if task not in ENV_IDS or kind not in DATASET_KINDS:
        raise ValueError(f"unknown dataset name {name!r}; valid names are {{{','.join(TASKS)}}}-"
                         f"{{{','.join(DATASET_KINDS)}}}, e.g. hopper-medium or walker2d-medium-replay, or "
                         f"{', '.join(MAZE_DATASET_NAMES + ANTMAZE_DATASET_NAMES)}")
    return task, kind
