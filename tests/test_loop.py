"""The shared online loop: budget accounting, evaluation stages, buffer contents, learner hooks."""
import gymnasium as gym
import numpy as np
import pytest

from gde_ref.data.buffer import ReplayBuffer
from gde_ref.envs.maze import ToyMaze
from gde_ref.finetune.loop import LoopConfig, evaluation_stage, final_evaluation, run_online


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


def envs(limit=50):
    return gym.wrappers.TimeLimit(ToyMaze(), limit), gym.wrappers.TimeLimit(ToyMaze(), limit)


def test_evaluation_steps_count_in_the_budget():
    """Exploration + evaluation steps add up to exactly the budget; a first stage at step 0 (it scores the
    offline policy), then one every F exploration steps."""
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=1000, eval_period=200, eval_steps=50, batch_size=8, learning_starts=10)
    rows = run_online(*envs(), learner, buffer, cfg, np.random.default_rng(0))
    n_eval = len(rows)
    assert learner.explore_calls + 50 * n_eval == 1000
    assert buffer.total_added == 1000, "every step, evaluation stages included, is stored"
    assert [r["env_step"] for r in rows] == [50 + 250 * k for k in range(n_eval)]
    assert n_eval == 4  # stages end at 50, 300, 550 and 800; the budget ends after 200 more exploration steps
    assert len(learner.evaluations) == n_eval and rows[0]["teacher_swapped"] == 0
    assert "loss" not in rows[0] and rows[1]["loss"] == 0.5, "the first stage precedes every update"


def test_updates_start_after_learning_starts_and_progress_is_monotone():
    learner = CountingLearner()
    buffer = ReplayBuffer(10_000, ToyMaze().obs_dim, None)
    cfg = LoopConfig(total_steps=300, eval_period=100, eval_steps=20, batch_size=8, learning_starts=40)
    run_online(*envs(), learner, buffer, cfg, np.random.default_rng(0))
    # the first stage stores 20 transitions, so updates start at the 20th exploration step (buffer = 40)
    assert learner.updates == learner.explore_calls - 19
    assert np.all(np.diff(learner.progress) >= 0) and 0 < learner.progress[0] and learner.progress[-1] <= 1


def test_evaluation_stage_scores_completed_episodes():
    """Moving left into the wall forever: every episode is truncated at the limit with return -limit."""
    env = gym.wrappers.TimeLimit(ToyMaze(), 30)
    buffer = ReplayBuffer(1000, ToyMaze().obs_dim, None)
    score, returns = evaluation_stage(env, lambda obs: 2, 75, buffer, seed=0)
    assert returns == [-30.0, -30.0] and score == -30.0 and len(buffer) == 75
    score, returns = final_evaluation(env, CountingLearner(), 20, seed=0)
    assert returns == [] and score == -20.0, "no completed episode: the partial return"


def test_bad_config():
    with pytest.raises(ValueError, match="eval_period"):
        LoopConfig(total_steps=10, eval_period=0, eval_steps=5)
