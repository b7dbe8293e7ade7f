"""The one online interaction loop, shared by every fine-tuning method (maze and MuJoCo alike).

    evaluation stage at step 0: scores the offline exploitation policy (GDE: the teacher's score)
    while env_step < total_steps:
        act with the data-collecting policy, store the transition, update the learner
        every eval_period (F) steps: the evaluation stage
            the exploitation policy acts for eval_steps (L) steps in its own env; its transitions go
            into the buffer and count in the budget; its mean episode return is the evaluation score
            learner.after_evaluation(score) (GDE: maybe the teacher becomes the exploitation policy)
            log one row

A learner provides:
    explore_action(obs, rng) -> action      the data-collecting policy (GDE: the exploration policy)
    exploit_action(obs) -> action           the evaluated policy (GDE: the exploitation policy)
    update(batch, progress) -> dict         one update; progress = env_step / total_steps in [0, 1]
    after_evaluation(score, env_step) -> dict   extra log fields (may be empty)
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoopConfig:
    """Budgets of one online run; every count is in environment steps."""

    total_steps: int            # the online budget, evaluation-stage steps included
    eval_period: int            # F: an evaluation stage every F steps
    eval_steps: int             # L: steps of one evaluation stage (exploitation policy)
    batch_size: int = 256
    learning_starts: int = 0    # no updates before the buffer holds this many transitions
    updates_per_step: int = 1

    def __post_init__(self):
        if self.total_steps < 1 or self.eval_period < 1 or self.eval_steps < 1 or self.batch_size < 1:
            raise ValueError("total_steps, eval_period, eval_steps and batch_size must be >= 1, got "
                             f"{self.total_steps}, {self.eval_period}, {self.eval_steps}, {self.batch_size}")


def evaluation_stage(env, policy, steps, buffer, seed, on_step=None):
    """Run ``policy`` for exactly ``steps`` env steps from a fresh episode, storing every transition in
    ``buffer`` (None: store nothing, for a reporting-only evaluation).

    Returns (score, returns): score is the mean return of the episodes that ended (terminated or
    truncated) within the stage, or the partial return of the one running if none did.
    """
    obs, _ = env.reset(seed=seed)
    returns, running = [], 0.0
    for _ in range(steps):
        action = policy(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if buffer is not None:
            buffer.add(obs, action, reward, next_obs, terminated, truncated)
        if on_step is not None and buffer is not None:
            on_step("eval", obs, action, reward, next_obs, info)
        running += reward
        obs = next_obs
        if terminated or truncated:
            returns.append(running)
            running = 0.0
            obs, _ = env.reset()
    return (float(np.mean(returns)) if returns else running), returns


def run_online(env, eval_env, learner, buffer, config, rng, seed=0, on_step=None, on_log=None, progress=None):
    """Fine-tune ``learner`` online for ``config.total_steps`` environment steps; returns the log rows.

    env / eval_env: Gymnasium envs for data collection and for the evaluation stages (two instances,
    so an evaluation does not cut the running exploration episode). rng: numpy Generator for actions and
    batches. on_step(stage, obs, action, reward, next_obs, info): called for every stored transition.
    on_log(row): called with every log row. progress: a tqdm-like object with update(n) and set_postfix.
    """
    obs, _ = env.reset(seed=seed)
    env_step, rows, stats, n_evals = 0, [], {}, 0
    next_eval = 0  # the first stage scores the offline policy before any update
    while env_step < config.total_steps:
        if env_step >= next_eval:
            steps = min(config.eval_steps, config.total_steps - env_step)
            score, _ = evaluation_stage(eval_env, learner.exploit_action, steps, buffer, seed + 1000 + n_evals,
                                        on_step)
            env_step += steps
            n_evals += 1
            next_eval = env_step + config.eval_period
            if progress is not None:
                progress.update(steps)
                progress.set_postfix(score=f"{score:.1f}")
            row = {"env_step": env_step, "eval_return": score, **learner.after_evaluation(score, env_step),
                   **{k: float(v) for k, v in stats.items()}}
            rows.append(row)
            if on_log is not None:
                on_log(row)
            continue
        action = learner.explore_action(obs, rng)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        if on_step is not None:
            on_step("explore", obs, action, reward, next_obs, info)
        obs = next_obs if not (terminated or truncated) else env.reset()[0]
        env_step += 1
        if progress is not None:
            progress.update(1)
        if len(buffer) >= max(config.learning_starts, 1):
            for _ in range(config.updates_per_step):
                stats = learner.update(buffer.sample(config.batch_size, rng), min(env_step / config.total_steps, 1.0))
    return rows


def final_evaluation(eval_env, learner, steps, seed):
    """The exploitation policy's score at the end of a run, for reporting only: nothing is stored and
    these steps are not part of the budget (the budget's last evaluation stage may lie up to F steps
    before its end)."""
    return evaluation_stage(eval_env, learner.exploit_action, steps, None, seed)
