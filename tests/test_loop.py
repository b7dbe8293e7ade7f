"""The shared online loop: budget accounting, evaluation stages, buffer contents, learner hooks."""
import gymnasium as gym
import numpy as np
import pytest

from gde_ref.data.buffer import ReplayBuffer
from gde_ref.envs.maze import ToyMaze
from gde_ref.finetune.loop import LoopConfig, evaluate_episodes, final_score, report_rows, report_seeds, run_online


class CountingLearner:
    """Moves right while exploring, left while being evaluated; records every hook call."""

    def __init__(self):
        self.updates, self.progress, self.evaluations, self.explore_calls = 0, [], [], 0

    def explore_action(self, obs, rng):
        self.explore_calls += 1
        return 3

    def exploit_action(self, obs):
        return 2

    def update(self, batch, progress):
        self.updates += 1
        self.progress.append(progress)
        return {"loss": 0.5}

    def after_evaluation(self, score, env_step):
        self.evaluations.append((score, env_step))
        return {"teacher_swapped": 0}


def envs(limit=50, n=2):
    return tuple(gym.wrappers.TimeLimit(ToyMaze(), limit) for _ in range(n))


def stage_rows(rows):
    return [r for r in rows if r["kind"] == "stage"]


def test_stages_at_every_multiple_of_f_and_counted_in_the_budget():
    """Algorithm 1's schedule: a stage at every t with t % F == 0 (t = 0 included), L steps each, inside
    the budget; exploration fills the rest of each period; no updates during stages by default."""
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=1000, eval_period=200, eval_steps=50, batch_size=8, learning_starts=10)
    rows = run_online(*envs(), learner, buffer, cfg, np.random.default_rng(0))
    stages = stage_rows(rows)
    assert [r["env_step"] for r in stages] == [200 * k + 50 for k in range(5)], "stages start at 0, 200, ..., 800"
    assert learner.explore_calls == 1000 - 5 * 50 and buffer.total_added == 1000
    assert cfg.stage_share == 0.25 and stages[-1]["exploration_steps"] == 800 - 4 * 50
    assert learner.updates == learner.explore_calls, "one update per exploration step, none during stages"
    assert len(learner.evaluations) == 5 and stages[0]["teacher_swapped"] == 0
    assert "loss" not in stages[0] and stages[1]["loss"] == 0.5, "the first stage precedes every update"


def test_updates_during_stages_when_asked():
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=400, eval_period=200, eval_steps=50, batch_size=8, learning_starts=10,
                     update_during_stages=True)
    rows = run_online(*envs(), learner, buffer, cfg, np.random.default_rng(0))
    assert learner.updates == 400 - 9, "one update per env step once 10 transitions are stored"
    assert stage_rows(rows)[-1]["updates"] == 200 + 50 - 9


def test_baselines_without_stages_only_explore():
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=300, eval_period=100, eval_steps=20, batch_size=8, evaluation_stages=False,
                     report_period=100, report_episodes=2)
    env, eval_env, report_env = envs(n=3)
    rows = run_online(env, eval_env, learner, buffer, cfg, np.random.default_rng(0), report_env=report_env)
    assert learner.explore_calls == 300 and learner.evaluations == [] and cfg.stage_share == 0.0
    assert [r["kind"] for r in rows] == ["report"] * 4 and [r["env_step"] for r in rows] == [0, 100, 200, 300]


def test_reporting_evaluations_are_complete_episodes_stored_nowhere():
    """Every report_period env steps (and at T): complete episodes of the exploitation policy (moving left
    into the wall: every episode runs to the time limit, return -limit); nothing is stored, no budget used."""
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=500, eval_period=200, eval_steps=50, batch_size=8, report_period=200,
                     report_episodes=3)
    env, eval_env, report_env = envs(limit=30, n=3)
    rows = run_online(env, eval_env, learner, buffer, cfg, np.random.default_rng(0), report_env=report_env)
    reports = report_rows(rows)
    assert [r["env_step"] for r in reports] == [0, 200, 400, 500], "every 200 steps and the last at T"
    assert all(r["eval_return"] == -30.0 and r["episodes"] == 3 for r in reports)
    assert buffer.total_added == 500 and learner.explore_calls == 500 - 3 * 50
    assert final_score(rows, 10) == -30.0


def test_final_score_is_the_mean_of_the_last_window_reports():
    rows = [{"kind": "report", "eval_return": float(k)} for k in range(12)] + [{"kind": "stage", "eval_return": 99.0}]
    assert final_score(rows, 10) == np.mean(np.arange(2, 12)) and final_score(rows, 1) == 11.0
    with pytest.raises(ValueError, match="report_period"):
        final_score(rows[-1:], 10)


def test_report_seeds_are_disjoint_across_evaluations_and_runs():
    seeds = [s for run in range(3) for k in range(60) for s in report_seeds(run, k, 10)]
    assert len(set(seeds)) == len(seeds)


def test_evaluate_episodes_runs_each_to_its_end():
    env = gym.wrappers.TimeLimit(ToyMaze(), 30)
    assert evaluate_episodes(env, lambda obs: 2, [0, 1]) == [-30.0, -30.0]


def test_updates_start_after_learning_starts_and_progress_is_monotone():
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=300, eval_period=100, eval_steps=20, batch_size=8, learning_starts=40)
    run_online(*envs(), learner, buffer, cfg, np.random.default_rng(0))
    # the first stage stores 20 transitions, so updates start at the 20th exploration step (buffer = 40)
    assert learner.updates == learner.explore_calls - 19
    assert np.all(np.diff(learner.progress) >= 0) and 0 < learner.progress[0] and learner.progress[-1] <= 1


def test_bad_config():
    with pytest.raises(ValueError, match="eval_period"):
        LoopConfig(total_steps=10, eval_period=0, eval_steps=5)
    with pytest.raises(ValueError, match="L < F"):
        LoopConfig(total_steps=100, eval_period=20, eval_steps=20)
    LoopConfig(total_steps=100, eval_period=20, eval_steps=20, evaluation_stages=False)  # no stages: L unused
    with pytest.raises(ValueError, match="report_env"):
        run_online(*envs(), CountingLearner(), ReplayBuffer(100, ToyMaze().obs_dim, None),
                   LoopConfig(total_steps=10, eval_period=5, eval_steps=2, report_period=5), np.random.default_rng(0))
