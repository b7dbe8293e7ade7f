"""AntMaze: the goal-directed Ant training task (envs.goal_ant), its SAC command (experiments.ant_controller), the
eval envs (envs.antmaze) and the dataset protocol (data.antmaze_data). The high level is tested on a stub env
that moves a point straight towards the waypoint it is handed (no MuJoCo physics); tiny networks throughout."""
import dataclasses
import json

import numpy as np
import pytest

from gde_ref.agents.sac import SACAgent
from gde_ref.cli import main
from gde_ref.config import SACConfig
from gde_ref.data import antmaze_data
from gde_ref.data.antmaze_data import AntWaypoints, episode_cells, relabel_antmaze, run_episode
from gde_ref.data.behaviour import load_policy, save_policy
from gde_ref.data.datasets import dataset_id, load_dataset
from gde_ref.data.maze_controller import free_cells, xy_to_cell
from gde_ref.envs import goal_ant
from gde_ref.envs.antmaze import EVAL_CELLS, cell_xy, goal_xy, maze_map, play_cells
from gde_ref.envs.goal_ant import (controller_observation, goal_reached, goal_velocity_reward, is_healthy, next_goal,
                                   sample_goal)
from gde_ref.envs.make import (is_sparse, make_env, normalized_score, parse_dataset_name, scales_rewards,
                               task_of_env_id)
from gde_ref.experiments import ant_controller


# -- the goal-directed Ant: one rule per function ----------------------------------------------------------
def test_goal_velocity_reward_on_hand_made_states():
    ones = np.ones(8)
    # u = (3, 4) / 5: forward = 0.6; 10 * 0.6 - 0.5 * 8 + 1 = 3
    assert goal_velocity_reward([1.0, 0.0], [0.0, 0.0], [3.0, 4.0], ones, True) == pytest.approx(3.0)
    assert goal_velocity_reward([1.0, 0.0], [0.0, 0.0], [3.0, 4.0], ones, False) == pytest.approx(2.0)
    assert goal_velocity_reward([0.0, -2.0], [1.0, 1.0], [1.0, 5.0], np.zeros(8), True) == pytest.approx(-19.0)
    assert goal_velocity_reward([5.0, 5.0], [2.0, 2.0], [2.0, 2.0], np.zeros(8), True) == 1.0   # on the goal: u = 0


def test_goal_ant_observation_goal_and_health_rules():
    ant = np.arange(27.0)
    obs = controller_observation(ant, [1.0, 2.0], [4.0, -2.0])
    assert obs.shape == (29,) and np.array_equal(obs[:27], ant) and np.array_equal(obs[27:], [3.0, -4.0])
    with pytest.raises(ValueError, match="27 observations without x, y"):
        controller_observation(np.zeros(29), [0, 0], [1, 1])
    rng = np.random.default_rng(0)
    goals = np.array([sample_goal(rng) for _ in range(4000)])
    radii = np.linalg.norm(goals, axis=1)
    assert radii.max() <= 10.0 and np.mean(radii ** 2) == pytest.approx(50.0, rel=0.05)   # uniform by area: R^2 / 2
    assert goal_reached([0.0, 0.45], [0.0, 0.0]) and not goal_reached([0.0, 0.46], [0.0, 0.0])
    assert all(not goal_reached([0.1, 0.1], next_goal(rng, [0.1, 0.1], radius=0.5)) for _ in range(50))
    assert is_healthy(0.55, np.zeros(3)) and not is_healthy(1.05, np.zeros(3)) and not is_healthy(0.15, np.zeros(3))
    assert not is_healthy(0.5, np.array([0.0, np.nan]))


def test_goal_ant_env_observes_the_goal_vector_and_redraws_a_reached_goal():
    import gymnasium as gym
    env = gym.make(goal_ant.ENV_ID)
    assert env.spec.max_episode_steps == 1000
    obs, info = env.reset(seed=3)
    ant = env.unwrapped.ant
    assert obs.shape == (29,) and np.allclose(obs[27:], info["goal"] - ant.data.qpos[:2])
    assert np.linalg.norm(info["goal"]) <= 10.0
    env.unwrapped.goal = ant.data.qpos[:2].copy()           # the goal under the torso: reached at the next step
    obs, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert info["goal_reached"] and info["goals_reached"] == 1 and not terminated and not truncated
    assert np.linalg.norm(info["goal"] - info["xy"]) > 0.45 and np.allclose(obs[27:], info["goal"] - info["xy"])
    env.close()


# -- the high level without physics ------------------------------------------------------------------------
class PointStub:
    """Gymnasium-Robotics' ant-maze dict API on a point that moves 0.5 x action[:2] per step (no walls, no Ant)."""

    def __init__(self, layout):
        self.shape, self.xy, self.goal = np.array(layout).shape, None, None

    def reset(self, seed=None, options=None):
        self.xy, self.goal = cell_xy(options["reset_cell"], self.shape), cell_xy(options["goal_cell"], self.shape)
        return self._obs(), {}

    def step(self, action):
        self.xy = self.xy + 0.5 * np.asarray(action[:2], np.float64)
        return self._obs(), 0.0, False, False, {}

    def _obs(self):
        return {"observation": np.zeros(27), "achieved_goal": self.xy.copy(), "desired_goal": self.goal.copy()}

    def close(self):
        pass


def towards_waypoint(ant_obs, xy, target):
    """A stub controller: straight at the waypoint it is handed, at most 1 per axis."""
    assert ant_obs.shape == (27,)
    return np.concatenate([np.clip(target - xy, -1.0, 1.0), np.zeros(6)])


def test_waypoints_follow_the_bfs_path_through_the_umaze_scaled_by_4():
    layout = maze_map("antmaze-umaze")
    shape = np.array(layout).shape
    planner = AntWaypoints(layout, np.random.default_rng(0))
    start, goal = cell_xy((1, 1), shape), goal_xy("antmaze-umaze")
    assert np.allclose(start, [-4.0, 4.0]) and np.allclose(goal, [-4.0, -4.0])
    assert np.allclose(planner.target(start, goal), cell_xy((1, 2), shape), atol=0.1)
    cells = [(1, 2), (1, 3), (2, 3), (3, 3), (3, 2)]
    offsets = planner.waypoints[:-1] - np.array([cell_xy(c, shape) for c in cells])
    assert np.all(offsets <= 0) and np.all(offsets >= -0.1) and np.array_equal(planner.waypoints[-1], goal)
    assert np.allclose(planner.target(cell_xy((1, 2), shape) - [0.0, 0.05], goal), cell_xy((1, 3), shape), atol=0.1)
    old = planner.waypoints
    planner.target(start, goal)                              # same goal: no new plan
    assert planner.waypoints is old
    planner.target(start, cell_xy((1, 3), shape))            # a new goal: planned again
    assert len(planner.waypoints) == 2


def test_a_stub_controller_led_by_the_waypoints_reaches_the_goal_without_entering_a_wall():
    layout = maze_map("antmaze-medium")
    free, env = free_cells(layout), PointStub(layout)
    planner = AntWaypoints(layout, np.random.default_rng(1))
    obs, actions, goal = run_episode(env, towards_waypoint, planner, EVAL_CELLS["antmaze-medium"], 200)
    assert obs.shape == (201, 29) and actions.shape == (200, 8) and np.allclose(goal, goal_xy("antmaze-medium"))
    cells = {xy_to_cell(xy / 4.0, free.shape) for xy in obs[:, :2]}
    assert all(free[c] for c in cells)                       # the point never cut through a wall cell
    assert np.linalg.norm(obs[-1, :2] - goal) < 0.45
    pieces = relabel_antmaze(obs, actions, goal)             # at the goal: a run of 1-step terminal pieces
    assert sum(len(p["actions"]) for p in pieces) == 200 and pieces[0]["terminations"][-1]
    assert sum(p["rewards"].sum() for p in pieces) == sum(p["terminations"].sum() for p in pieces)


def test_relabel_splits_after_each_terminal_and_keeps_every_transition():
    xy = np.array([[0.0, 3.0], [0.0, 2.0], [0.0, 0.4], [0.0, 0.3], [0.0, 2.0], [0.0, 3.0]])
    obs = np.concatenate([xy, np.zeros((6, 27))], axis=1)
    actions = np.arange(5.0)[:, None] * np.ones((5, 8))
    pieces = relabel_antmaze(obs, actions, [0.0, 0.0])
    assert [len(p["actions"]) for p in pieces] == [2, 1, 2]
    assert [p["terminations"].tolist() for p in pieces] == [[False, True], [True], [False, False]]
    assert [p["truncations"].tolist() for p in pieces] == [[False, False], [False], [False, True]]
    assert np.array_equal(np.concatenate([p["rewards"] for p in pieces]), [0, 1, 1, 0, 0])
    assert np.array_equal(pieces[1]["observations"], obs[2:4]) and np.array_equal(pieces[2]["actions"], actions[3:])
    with pytest.raises(ValueError, match="T >= 1 actions and T\\+1 observations"):
        relabel_antmaze(obs[:3], actions, [0.0, 0.0])


def test_play_diverse_and_fixed_start_and_goal_cells():
    rng = np.random.default_rng(0)
    assert episode_cells("antmaze-umaze", "fixed", rng) == ((1, 1), (3, 1))
    play = play_cells("antmaze-medium")
    assert sorted(play) == [(1, 1), (2, 6), (5, 1), (6, 5)] and play_cells("antmaze-umaze") is None
    free = free_cells(maze_map("antmaze-medium"))
    for _ in range(30):
        s, g = episode_cells("antmaze-medium", "play", rng)
        assert s != g and s in play and g in play
        s, g = episode_cells("antmaze-medium", "diverse", rng)
        assert s != g and free[s] and free[g]
    with pytest.raises(ValueError, match="no 'play' datasets"):
        episode_cells("antmaze-umaze", "play", rng)


# -- the eval env and the names ----------------------------------------------------------------------------
def test_eval_env_is_sparse_ends_at_success_and_scores_100_x_success():
    env = make_env("antmaze-umaze")
    assert env.spec.max_episode_steps == 700 and task_of_env_id(env.spec.id) == "antmaze-umaze"
    obs, info = env.reset(seed=0)
    assert obs.shape == (29,) and np.linalg.norm(info["goal"] - [-4.0, -4.0]) <= np.sqrt(2.0)
    assert np.linalg.norm(obs[:2] - [-4.0, 4.0]) <= np.sqrt(2.0)   # the start cell, Gymnasium-Robotics' noise
    _, reward, terminated, _, _ = env.step(np.zeros(8, np.float32))
    assert reward == 0.0 and not terminated
    ant = env.unwrapped.ant_env
    qpos, qvel = ant.data.qpos.copy(), ant.data.qvel.copy()
    qpos[:2] = env.unwrapped.goal + [0.47, 0.0]               # within D4RL's 0.5, outside Gymnasium-Robotics' 0.45
    ant.set_state(qpos, qvel)
    obs, reward, terminated, _, info = env.step(np.zeros(8, np.float32))
    assert reward == 1.0 and terminated and info["success"]
    assert normalized_score("antmaze-umaze", 1.0) == 100.0 and normalized_score("antmaze-medium", 0.0) == 0.0
    assert is_sparse("antmaze-medium") and not scales_rewards("antmaze-umaze")
    assert parse_dataset_name("antmaze-medium-play") == ("antmaze-medium", "play")
    assert parse_dataset_name("antmaze-umaze-quick") == ("antmaze-umaze", "fixed")
    assert dataset_id("antmaze-umaze-diverse") == "gde-ref/antmaze/umaze-diverse-v0"
    assert dataset_id("antmaze-medium-play-quick") == "gde-ref/antmaze/medium-play-quick-v0"
    env.close()


# -- datasets through Minari -------------------------------------------------------------------------------
def test_quick_dataset_round_trip_with_and_without_a_controller(tmp_path, monkeypatch, capsys):
    import minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.setattr(antmaze_data, "CONTROLLER_FILE", tmp_path / "none.npz")   # as if none were shipped
    assert main(["make-dataset", "antmaze-umaze", "--preset", "quick", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["controller_trained"] is False and "UNTRAINED ANT CONTROLLER" in info["warning"]
    ds = minari.load_dataset("gde-ref/antmaze/umaze-quick-v0")
    assert ds.total_steps == 3000 and ds.storage.metadata["gde_ref"]["kind"] == "fixed"
    data = load_dataset("antmaze-umaze-quick")
    assert data.observations.shape == (3000, 29) and data.actions.shape == (3000, 8)
    assert (data.ref_min_score, data.ref_max_score) == (0.0, 1.0)
    assert np.array_equal(data.terminals, data.rewards > 0)   # D4RL: terminal = the relabelled reward
    controller = save_policy(tmp_path / "ctrl.npz", SACAgent(29, 8, SACConfig(hidden=(8, 8)), seed=1), trained=True)
    assert main(["make-dataset", "antmaze-medium-play", "--preset", "quick", "--size", "1000", "--json",
                 "--controller", str(controller)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["controller_file"] == str(controller) and info["controller_trained"] and "warning" not in info
    assert load_dataset("antmaze-medium-play-quick").observations.shape == (1000, 29)
    assert main(["make-dataset", "antmaze-umaze-diverse", "--preset", "laptop"]) == 2
    assert "gde-ref train-ant-controller" in capsys.readouterr().err
    wrong = save_policy(tmp_path / "wrong.npz", SACAgent(11, 3, SACConfig(hidden=(8,)), seed=0))
    assert main(["make-dataset", "antmaze-umaze-diverse", "--preset", "quick", "--controller", str(wrong)]) == 2
    assert "not an ant controller" in capsys.readouterr().err


# -- the controller's training command ---------------------------------------------------------------------
def test_train_ant_controller_is_resumable_and_saves_a_small_policy(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ant_controller, "CONTROLLER_SAC",
                        dataclasses.replace(ant_controller.CONTROLLER_SAC, batch_size=16, learning_starts=20))
    out = str(tmp_path / "ctrl.npz")
    stop = {"at": 45}

    def progress(k):
        stop["at"] -= k
        if stop["at"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ant_controller.train_ant_controller(out, 60, hidden=(16, 16), checkpoint_every=30, eval_every=1000,
                                            eval_episodes=1, progress=progress)
    with pytest.raises(FileExistsError, match="--resume"):
        ant_controller.train_ant_controller(out, 60, hidden=(16, 16))
    with pytest.raises(ValueError, match="same --steps"):
        ant_controller.train_ant_controller(out, 80, hidden=(16, 16), resume=True)
    assert main(["train-ant-controller", "--steps", "60", "--hidden", "16,16", "--out", out, "--resume",
                 "--checkpoint-every", "30", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sac_steps"] == 60 and summary["evaluations"][-1][0] == 60
    agent, info = load_policy(out)
    assert (agent.obs_dim, agent.act_dim) == (29, 8) and info["trained"] and info["antmaze_controller"]
    assert not (tmp_path / "ctrl.npz.ckpt.npz").exists()
    assert 0.0 <= antmaze_data.controller_success(agent, "antmaze-umaze", episodes=1) <= 1.0   # the acceptance check runs
    assert main(["train-ant-controller", "--steps", "60", "--out", out]) == 2   # exists: one clear error
    assert "exists" in capsys.readouterr().err
