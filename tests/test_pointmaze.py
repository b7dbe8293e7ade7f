"""Sparse-reward PointMaze: the envs (envs.pointmaze), the waypoint controller (data.maze_controller), the dataset
protocols (data.pointmaze_data: D4RL's maze2d, ``pointmaze-umaze``, and the goal-conditioned ``-goals``) and the
task settings through ``gde-ref pretrain`` / ``finetune``.

Tiny networks (2 x 16) and a few hundred steps, so that the file runs in well under a minute."""
import json

import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.config import IQLConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.datasets import dataset_id, load_dataset
from gde_ref.data.maze_controller import (WaypointController, advance_waypoint, bfs_path, cell_center, free_cells,
                                          noisy_action, path_waypoints, pd_action, xy_to_cell)
from gde_ref.data.pointmaze_data import relabel_maze2d
from gde_ref.envs.make import (GOAL_MAZE_TASKS, MAZE2D_TASKS, make_env, normalized_score, parse_dataset_name,
                               task_of_env_id)
from gde_ref.envs.pointmaze import EVAL_GOAL_CELLS, eval_map, goal_xy, maze_map
from gde_ref.experiments import sparse
from gde_ref.finetune.loop import LoopConfig, run_online

GRID = [[1, 1, 1, 1, 1, 1],
        [1, 0, 0, 0, 0, 1],
        [1, 0, 1, 1, 0, 1],
        [1, 0, 1, 0, 0, 1],
        [1, 1, 1, 1, 1, 1]]


def test_planner_finds_the_shortest_path_on_a_hand_made_grid():
    free = free_cells(GRID)
    assert free.shape == (5, 6) and free.sum() == 9
    assert bfs_path(free, (3, 1), (3, 3)) == [(3, 1), (2, 1), (1, 1), (1, 2), (1, 3), (1, 4), (2, 4), (3, 4), (3, 3)]
    assert bfs_path(free, (1, 2), (1, 2)) == [(1, 2)]
    assert bfs_path(free, (1, 2), (3, 1)) == [(1, 2), (1, 1), (2, 1), (3, 1)]
    room = free_cells([[1, 1, 1, 1], [1, 0, "g", 1], [1, "r", 0, 1], [1, 1, 1, 1]])   # letters are free cells
    assert bfs_path(room, (1, 1), (2, 2)) == [(1, 1), (2, 1), (2, 2)]     # of two shortest: down before right
    with pytest.raises(ValueError, match="start cell .* is not a free cell"):
        bfs_path(free, (2, 2), (1, 1))
    walled = [row[:] for row in GRID]
    walled[1][3] = 1
    with pytest.raises(ValueError, match="no path from"):
        bfs_path(free_cells(walled), (3, 1), (3, 3))
    with pytest.raises(ValueError, match="rectangle"):
        free_cells([[1, 1], [1]])


def test_cell_coordinates_match_gymnasium_robotics():
    env = make_env("pointmaze-large")
    maze = env.unwrapped.maze
    shape = np.array(maze.maze_map).shape
    for row in range(shape[0]):
        for col in range(shape[1]):
            xy = cell_center((row, col), shape)
            np.testing.assert_allclose(xy, maze.cell_rowcol_to_xy(np.array([row, col])))
            assert xy_to_cell(xy + 0.3, shape) == tuple(maze.cell_xy_to_rowcol(xy + 0.3))
    env.close()


def test_waypoint_and_action_rules():
    rng = np.random.default_rng(0)
    path = [(3, 1), (2, 1), (1, 1), (1, 2)]
    goal = np.array([0.7, 1.1])
    points = path_waypoints(path, goal, (5, 6), rng)
    assert points.shape == (3, 2) and np.array_equal(points[-1], goal)          # the goal itself, last
    offsets = points[:-1] - np.array([cell_center(c, (5, 6)) for c in path[1:-1]])
    assert np.all((offsets <= 0) & (offsets >= -0.2))                            # centre - 0.2 U(0, 1) per axis
    assert path_waypoints(path[:1], goal, (5, 6), rng).tolist() == [goal.tolist()]
    assert advance_waypoint(0, points, points[0] + 0.05) == 1 and advance_waypoint(0, points, points[0] + 0.2) == 0
    assert advance_waypoint(2, points, goal) == 2                               # never past the goal
    np.testing.assert_allclose(pd_action([0.05, 0.0], np.zeros(2), [0.2, -0.3]), [0.3, 0.3])   # 10 d - v
    assert pd_action([5.0, -5.0], np.zeros(2), np.zeros(2)).tolist() == [1.0, -1.0]           # clipped
    a = np.array([0.2, -0.4])
    assert noisy_action(a, rng, 0.0) is a
    noisy = np.array([noisy_action(a, np.random.default_rng(s), 0.5) for s in range(2000)])
    assert np.all(np.abs(noisy) <= 1.0) and abs(noisy[:, 0].mean() - 0.2) < 0.05
    with pytest.raises(ValueError, match="std must be >= 0"):
        noisy_action(a, rng, -1.0)


def rollouts(task, std, n=20):
    env, rng, successes = make_env(task), np.random.default_rng(0), 0
    for k in range(n):
        obs, _ = env.reset(seed=k)
        controller, done, total = WaypointController(eval_map(task), rng), False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(noisy_action(controller.act(obs[:2], obs[2:4], obs[4:]),
                                                                          rng, std))
            total, done = total + reward, terminated or truncated
        successes += total
    env.close()
    return successes


def test_the_noise_free_controller_reaches_the_umaze_goal():
    assert rollouts("pointmaze-umaze-goals", 0.0) >= 18     # measured: 20 of 20 (noisy, std 0.5: 20 of 20)


def test_eval_env_sparse_reward_termination_and_score():
    for task, steps in zip(GOAL_MAZE_TASKS, (300, 600, 800)):
        env = make_env(task)
        obs, _ = env.reset(seed=3)
        goal_xy = cell_center(EVAL_GOAL_CELLS[task], np.array(maze_map(task)).shape)
        assert obs.shape == (6,) and env.spec.max_episode_steps == steps and task_of_env_id(env.spec.id) == task
        assert np.all(np.abs(obs[4:] - goal_xy) <= 0.25)                          # the fixed goal, jittered
        env.close()
    env = make_env("pointmaze-umaze-goals")
    obs, _ = env.reset(seed=1)
    env.unwrapped.point_env.set_state(np.r_[obs[4:] + 0.3, 0.0, 0.0][:2], np.zeros(2))   # next to the goal
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    assert normalized_score("pointmaze-umaze-goals", [0.0, 1.0]).tolist() == [0.0, 100.0]
    assert normalized_score("pointmaze-medium-goals", 0.35) == pytest.approx(35.0)
    assert parse_dataset_name("pointmaze-medium-goals-quick") == ("pointmaze-medium-goals", "noisy")
    assert parse_dataset_name("pointmaze-medium-quick") == ("pointmaze-medium", "noisy")
    assert dataset_id("pointmaze-large-goals") == "gde-ref/pointmaze/large-goals-v0"
    assert dataset_id("pointmaze-large") == "gde-ref/pointmaze/large-v1"                 # maze2d: a new version
    assert dataset_id("pointmaze-umaze-quick") == "gde-ref/pointmaze/umaze-quick-v1"
    with pytest.raises(ValueError, match="pointmaze-umaze, pointmaze-medium, pointmaze-large"):
        parse_dataset_name("pointmaze-huge")


def test_the_loop_stores_r_minus_1_and_scores_the_env_reward():
    class Walker:   # a stand-in learner: random actions, no updates
        def explore_action(self, obs, rng):
            return rng.uniform(-1, 1, 2)

        def exploit_action(self, obs):
            return np.zeros(2)

        def update(self, batch, progress):
            return {}

        def after_evaluation(self, score, env_step):
            return {}

    buffer = ReplayBuffer(500, 6, 2, n_step=1)
    config = LoopConfig(200, 100, 20, evaluation_stages=False, reward_shift=-1.0, report_period=200,
                        report_episodes=1, learning_starts=10_000)
    rows = run_online(make_env("pointmaze-umaze-goals"), make_env("pointmaze-umaze-goals"), Walker(), buffer, config,
                      np.random.default_rng(0), report_env=make_env("pointmaze-umaze-goals"))
    assert set(np.unique(buffer.rewards[:len(buffer)])) <= {-1.0, 0.0} and (buffer.rewards[:len(buffer)] == -1).any()
    assert all(r["eval_return"] in (0.0, 1.0) for r in rows)


def test_sparse_settings_are_picked_by_task():
    assert sparse.sparse_dataset("pointmaze-umaze-goals")
    assert sparse.sparse_dataset("gde-ref/pointmaze/umaze-goals-quick-v0")
    assert not sparse.sparse_dataset("pointmaze-umaze") and not sparse.sparse_dataset("gde-ref/pointmaze/umaze-v1")
    assert not sparse.sparse_dataset("hopper-medium") and not sparse.sparse_dataset("mujoco/hopper/expert-v0")
    iql = sparse.default_backbone_config("iql", True)
    assert (iql.expectile, iql.awr_temperature) == (0.9, 10.0)
    assert sparse.default_backbone_config("iql", False) == IQLConfig()                # locomotion untouched
    assert sparse.default_n_step("gde", True, ("gde",)) == 3 and sparse.default_n_step("oniql", True, ("gde",)) == 1
    assert sparse.default_n_step("gde", False, ("gde",)) == 1 and sparse.reward_shift(False) == 0.0


@pytest.fixture(scope="module")
def quick_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        assert main(["make-dataset", "pointmaze-umaze-goals", "--preset", "quick", "--size", "2000", "--seed", "0"]) == 0
    return root


def test_quick_dataset_round_trip(quick_dataset, monkeypatch, capsys):
    import minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(quick_dataset))
    raw = minari.load_dataset("gde-ref/pointmaze/umaze-goals-quick-v0")
    assert raw.total_steps >= 2000 and raw.observation_space.shape == (6,)
    for episode in raw.iterate_episodes():
        goal = episode.observations[0, 4:]
        assert np.all(episode.observations[:, 4:] == goal)                      # one goal per episode
        success = bool(episode.terminations[-1])
        assert success != bool(episode.truncations[-1]) and episode.rewards.sum() == float(success)
        assert not success or np.linalg.norm(episode.observations[-1, :2] - goal) <= 0.45
    data = load_dataset("pointmaze-umaze-goals-quick")
    meta = data.metadata["gde_ref"]
    assert data.env_id == "gde_ref/PointMaze_UMaze-v0" and (data.ref_min_score, data.ref_max_score) == (0.0, 1.0)
    assert meta["success_rate"] > 0.9 and meta["preset"] == "quick" and "waypoint" in meta["behaviour_policy"]
    capsys.readouterr()
    assert main(["datasets", "--json"]) == 0
    row, = json.loads(capsys.readouterr().out)
    assert row["name"] == "pointmaze-umaze-goals-quick" and row["success_rate"] == meta["success_rate"]
    assert row["behaviour_score"] == pytest.approx(100 * meta["success_rate"])
    assert main(["make-dataset", "pointmaze-medium", "--preset", "quick", "--save-policy", "policies"]) == 2
    assert "waypoint controller, not a trained policy" in capsys.readouterr().err


def test_pretrain_and_gde_finetune_on_a_quick_pointmaze_dataset(quick_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(quick_dataset))
    monkeypatch.setattr(sparse, "backbone_config", lambda name: IQLConfig(hidden=(16, 16), batch_size=32))
    assert main(["pretrain", "--dataset", "pointmaze-umaze-goals-quick", "--out", str(tmp_path / "pre"), "--steps", "200",
                 "--preset", "quick", "--seed", "0", "--json"]) == 0
    from gde_ref.experiments.pretrain import load_offline
    agent, _, meta = load_offline(tmp_path / "pre" / "offline.npz", "pointmaze-umaze-goals")
    assert (agent.config.expectile, agent.config.awr_temperature, agent.config.hidden) == (0.9, 10.0, (16, 16))
    assert (meta["reward_scale"], meta["reward_shift"]) == (1.0, -1.0)
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["finetune", "--dataset", "pointmaze-umaze-goals-quick", "--algo", "gde", "--from",
                 str(tmp_path / "pre" / "offline.npz"), "--out", str(run), "--preset", "quick", "--steps", "400",
                 "--seed", "0", "--json"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert (config["n_step"], config["final_window"], config["reward_shift"]) == (3, 1, -1.0)
    assert summary["final_normalized_score"] == summary["last_normalized_score"]
    assert summary["final_normalized_score"] in (0.0, 50.0, 100.0)                # 2 episodes, success or not


# -- the maze2d protocol (D4RL's): pointmaze-umaze, -medium, -large ------------------------------------------------
def test_maze2d_relabelling_on_a_hand_made_trajectory():
    goal = np.array([1.0, -2.0])
    xy = [[3.0, 3.0], [1.0, -1.0], [1.5, -2.0], [1.3, -2.4], [0.0, 0.0]]   # distances: -, 1.0, 0.5, 0.5, 2.24
    obs = np.array([[x, y, 0.1, -0.1, 7.0, 7.0] for x, y in xy])           # chasing another goal (7, 7)
    episode = {"observations": obs, "actions": np.full((4, 2), 0.5), "rewards": np.array([0.0, 0.0, 0.0, 1.0]),
               "terminations": np.array([False, False, False, True]), "truncations": np.zeros(4, bool)}
    out = relabel_maze2d(episode, goal)
    assert out["observations"].shape == (5, 4) and np.array_equal(out["observations"], obs[:, :4])   # no goal
    assert out["rewards"].tolist() == [0.0, 1.0, 1.0, 0.0]      # the position after each step, within 0.5 included
    assert not out["terminations"].any() and out["truncations"].tolist() == [False, False, False, True]
    assert relabel_maze2d(episode, goal, radius=0.4)["rewards"].tolist() == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"\(T\+1, 6\) goal-conditioned observations"):
        relabel_maze2d({**episode, "observations": obs[:, :4]}, goal)


def test_maze2d_env_observation_reward_no_termination_and_score():
    for task, steps in zip(MAZE2D_TASKS, (300, 600, 800)):
        env = make_env(task)
        obs, _ = env.reset(seed=3)
        goal = goal_xy(task)
        assert obs.shape == (4,) and env.observation_space.shape == (4,) and env.spec.max_episode_steps == steps
        assert task_of_env_id(env.spec.id) == task and np.array_equal(env.unwrapped.goal, goal)   # no goal noise
        env.close()
    env = make_env("pointmaze-umaze")
    starts = np.array([env.reset(seed=k)[0] for k in range(60)])
    cells = np.array([cell_center(xy_to_cell(p, (5, 5)), (5, 5)) for p in starts[:, :2]])   # their cells' centres
    assert np.all(np.abs(starts[:, :2] - cells) <= 0.1) and np.any(np.all(cells == goal_xy("pointmaze-umaze"), 1))
    assert np.all(starts[:, 2:] != 0.0)                                          # D4RL: velocity noise N(0, 0.1^2)
    env.reset(seed=1)
    env.unwrapped.point_env.set_state(goal_xy("pointmaze-umaze") + [0.3, 0.0], np.zeros(2))   # near the goal
    total = 0.0
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert (reward, terminated, truncated, info["success"]) == (1.0, False, False, True)   # goes on at the goal
        total += reward
    env.unwrapped.point_env.set_state(goal_xy("pointmaze-umaze") + [0.0, -0.6], np.zeros(2))
    assert env.step(np.zeros(2, np.float32))[1] == 0.0                            # outside 0.5
    assert total == 5.0 and normalized_score("pointmaze-umaze", [23.85, 161.86]).tolist() == [0.0, 100.0]
    assert normalized_score("pointmaze-medium", 13.13 + 0.5 * (277.39 - 13.13)) == pytest.approx(50.0)
    assert normalized_score("pointmaze-large", 273.99) == pytest.approx(100.0)


@pytest.fixture(scope="module")
def maze2d_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari_maze2d")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root))
        assert main(["make-dataset", "pointmaze-umaze", "--preset", "quick", "--size", "1500", "--seed", "0"]) == 0
    return root


def test_maze2d_dataset_round_trip(maze2d_dataset, monkeypatch):
    import minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(maze2d_dataset))
    raw = minari.load_dataset("gde-ref/pointmaze/umaze-quick-v1")
    assert raw.total_steps >= 1500 and raw.observation_space.shape == (4,)
    goal, rewarded = goal_xy("pointmaze-umaze"), 0.0
    for episode in raw.iterate_episodes():
        assert not episode.terminations.any() and episode.truncations[-1] and not episode.truncations[:-1].any()
        expected = np.linalg.norm(episode.observations[1:, :2] - goal, axis=1) <= 0.5
        assert np.array_equal(episode.rewards, expected.astype(float))           # relabelled against the eval goal
        rewarded += episode.rewards.sum()
    assert rewarded > 0
    data = load_dataset("pointmaze-umaze-quick")
    meta = data.metadata["gde_ref"]
    assert data.env_id == "gde_ref/Maze2d_UMaze-v0" and (data.ref_min_score, data.ref_max_score) == (23.85, 161.86)
    assert not data.terminals.any() and data.observations.shape[1] == 4
    assert meta["protocol"] == "maze2d" and meta["eval_goal_cell"] == [1, 1] and meta["eval_goal_xy"] == goal.tolist()
    assert meta["behaviour_score"] > 50 and meta["random_goal_reach_rate"] > 0.9 and "success_rate" not in meta


def test_pretrain_and_gde_finetune_on_a_quick_maze2d_dataset(maze2d_dataset, tmp_path, monkeypatch):
    from gde_ref.agents.backbones import backbone_config
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(maze2d_dataset))
    monkeypatch.setattr(sparse, "backbone_config", lambda name: IQLConfig(hidden=(16, 16), batch_size=32))
    assert main(["pretrain", "--dataset", "pointmaze-umaze-quick", "--out", str(tmp_path / "pre"), "--steps", "200",
                 "--preset", "quick", "--seed", "0", "--json"]) == 0
    from gde_ref.experiments.pretrain import load_offline
    agent, _, meta = load_offline(tmp_path / "pre" / "offline.npz", "pointmaze-umaze")
    default = backbone_config("iql")
    assert (agent.config.expectile, agent.config.awr_temperature) == (default.expectile, default.awr_temperature)
    assert (meta["reward_scale"], meta["reward_shift"]) == (1.0, 0.0)              # the 0/1 rewards as they are
    run = tmp_path / "run"
    assert main(["finetune", "--dataset", "pointmaze-umaze-quick", "--algo", "gde", "--from",
                 str(tmp_path / "pre" / "offline.npz"), "--out", str(run), "--preset", "quick", "--steps", "400",
                 "--seed", "0", "--json"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert (config["n_step"], config["final_window"], config["reward_shift"]) == (1, 10, 0.0)
    assert np.isfinite(summary["final_normalized_score"])
