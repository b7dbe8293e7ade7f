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

Resuming: the loop's own position is a ``LoopState``. ``run_online(..., state=s)`` continues from ``s``
(the caller restores the envs, learner, buffer and rng as they were when ``s`` was saved), and
``on_checkpoint(state)`` is called at the top of the loop, between two steps, every ``checkpoint_period``
env steps and once at the end: the moment at which everything can be saved and later continued exactly.
"""
from dataclasses import dataclass, field

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


@dataclass
class LoopState:
    """The loop's position in a run (what a checkpoint needs besides learner, buffer, envs and rng)."""

    obs: np.ndarray                 # the exploration env's current observation
    env_step: int = 0               # env steps used, evaluation stages included
    next_eval: int = 0              # the next evaluation stage starts at the first step >= this
    n_evals: int = 0                # evaluation stages done (their env seeds are seed + 1000 + n_evals)
    next_checkpoint: int = 0        # on_checkpoint is called at the first loop top with env_step >= this
    stats: dict = field(default_factory=dict)   # the last update's statistics (logged with the next row)
    rows: list = field(default_factory=list)    # the log rows so far


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


def run_online(env, eval_env, learner, buffer, config, rng, seed=0, on_step=None, on_log=None, progress=None,
               state=None, on_checkpoint=None, checkpoint_period=0):
    """Fine-tune ``learner`` online for ``config.total_steps`` environment steps; returns the log rows.

    env / eval_env: Gymnasium envs for data collection and for the evaluation stages (two instances,
    so an evaluation does not cut the running exploration episode). rng: numpy Generator for actions and
    batches. on_step(stage, obs, action, reward, next_obs, info): called for every stored transition.
    on_log(row): called with every log row. progress: a tqdm-like object with update(n) and set_postfix.
    state: a ``LoopState`` to continue from (None: a new run, ``env`` is reset with ``seed``).
    on_checkpoint(state): called every ``checkpoint_period`` env steps (0: never) and at the end.
    """
    if state is None:
        state = LoopState(obs=env.reset(seed=seed)[0], next_checkpoint=checkpoint_period)
    s = state
    while s.env_step < config.total_steps:
        if on_checkpoint is not None and checkpoint_period > 0 and s.env_step >= s.next_checkpoint:
            s.next_checkpoint = (s.env_step // checkpoint_period + 1) * checkpoint_period
            on_checkpoint(s)
        if s.env_step >= s.next_eval:
            steps = min(config.eval_steps, config.total_steps - s.env_step)
            score, _ = evaluation_stage(eval_env, learner.exploit_action, steps, buffer, seed + 1000 + s.n_evals,
                                        on_step)
            s.env_step += steps
            s.n_evals += 1
            s.next_eval = s.env_step + config.eval_period
            if progress is not None:
                progress.update(steps)
                progress.set_postfix(score=f"{score:.1f}")
            row = {"env_step": s.env_step, "eval_return": score, **learner.after_evaluation(score, s.env_step),
                   **{k: float(v) for k, v in s.stats.items()}}
            s.rows.append(row)
            if on_log is not None:
                on_log(row)
            continue
        action = learner.explore_action(s.obs, rng)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(s.obs, action, reward, next_obs, terminated, truncated)
        if on_step is not None:
            on_step("explore", s.obs, action, reward, next_obs, info)
        s.obs = next_obs if not (terminated or truncated) else env.reset()[0]
        s.env_step += 1
        if progress is not None:
            progress.update(1)
        if len(buffer) >= max(config.learning_starts, 1):
            for _ in range(config.updates_per_step):
                s.stats = learner.update(buffer.sample(config.batch_size, rng),
                                         min(s.env_step / config.total_steps, 1.0))
    if on_checkpoint is not None:
        on_checkpoint(s)
    return s.rows


def final_evaluation(eval_env, learner, steps, seed):
    """The exploitation policy's score at the end of a run, for reporting only: nothing is stored and
    these steps are not part of the budget (the budget's last evaluation stage may lie up to F steps
    before its end)."""
    return evaluation_stage(eval_env, learner.exploit_action, steps, None, seed)
