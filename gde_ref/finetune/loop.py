"""The one online interaction loop, shared by every fine-tuning method (maze and MuJoCo alike).

Two evaluations, kept apart (paper Section 4.2.3 and Appendix B.1):

* **GDE's evaluation stage** (Algorithm 1: ``if t % F == 0``): at every env step t that is a multiple of
  F (t = 0 included: it scores the offline policy, which is the teacher then), the exploitation policy acts
  for L < F steps in its own env. Those steps go into the buffer and count in the budget T; their score
  decides the teacher swap (``learner.after_evaluation``). Only GDE and its ablations run it
  (``LoopConfig.evaluation_stages``); a baseline given it runs the same stages (an equal-data comparison).
* **The reporting evaluation**, the same for every method: every ``report_period`` env steps (t = 0 and
  t = T included) ``report_episodes`` complete episodes of the exploitation policy's deterministic action
  on a separately seeded env. Stored nowhere, not counted in the budget, it changes nothing in the run.
  The reported score is the mean of the last 10 (locomotion, B.1) or the last one (sparse rewards).

    t = 0
    while t < T:
        if t >= next_report: the reporting evaluation; log a "report" row
        if stages and t >= next_stage (= k F): evaluation stage of min(L, T - t) steps; t += those steps;
            learner.after_evaluation(score); log a "stage" row; next_stage = (k + 1) F
        else: act with the data-collecting policy, store the transition, t += 1, update the learner
    the last reporting evaluation at t = T

Updates: one per exploration step once the buffer holds ``learning_starts`` transitions. During a stage the
learner is not updated by default (``update_during_stages``): the policy that the stage scores is then
exactly the one the teacher becomes, as Algorithm 1's swap intends. Set it to update once per stage step too.

n-step returns: the exploration env and the stage env are two streams of the buffer ("explore" and
"stage"), so a return never mixes the two envs; a stage's unfinished steps are folded as a truncation when
the stage ends (``ReplayBuffer.end_stream``).

A learner provides:
    explore_action(obs, rng) -> action      the data-collecting policy (GDE: the exploration policy)
    exploit_action(obs) -> action           the evaluated policy (GDE: the exploitation policy)
    update(batch, progress) -> dict         one update; progress = env_step / total_steps in [0, 1]
    after_evaluation(score, env_step) -> dict   after a stage: extra log fields (may be empty)
and, optionally (the loop calls it only where a learner has it):
    end_episode(episode_return, episode_steps)  after an exploration episode ends (terminated or truncated):
                                            its undiscounted return and length (JSRL's curriculum, a
                                            learner that acts on the episode's step count or last action)

Resuming: the loop's own position is a ``LoopState``. ``run_online(..., state=s)`` continues from ``s``
(the caller restores the envs, learner, buffer and rng as they were when ``s`` was saved), and
``on_checkpoint(state)`` is called at the top of the loop, between two steps, every ``checkpoint_period``
env steps and once at the end: the moment at which everything can be saved and later continued exactly.
"""
from dataclasses import dataclass, field

import numpy as np

EXPLORE, STAGE = "explore", "stage"   # the buffer's two streams


@dataclass(frozen=True)
class LoopConfig:
    """Budgets and protocol of one online run; every count is in environment steps."""

    total_steps: int                # T: the online budget, evaluation-stage steps included
    eval_period: int                # F: an evaluation stage at every multiple of F (t = 0 included)
    eval_steps: int                 # L < F: steps of one evaluation stage (exploitation policy)
    batch_size: int = 256
    learning_starts: int = 0        # no updates before the buffer holds this many transitions
    updates_per_step: int = 1
    evaluation_stages: bool = True  # run GDE's evaluation stages (GDE and its ablations; baselines: False)
    update_during_stages: bool = False  # also update the learner once per stage step
    report_period: int = 0          # a reporting evaluation every report_period env steps (0: none)
    report_episodes: int = 5        # complete episodes per reporting evaluation
    reward_shift: float = 0.0       # the buffer stores r + reward_shift (sparse tasks: -1, IQL's r - 1); scores,
                                    #   episode returns and on_step see the env's own r

    def __post_init__(self):
        if min(self.total_steps, self.eval_period, self.eval_steps, self.batch_size, self.report_episodes) < 1:
            raise ValueError("total_steps, eval_period, eval_steps, batch_size and report_episodes must be >= 1, "
                             f"got {self.total_steps}, {self.eval_period}, {self.eval_steps}, {self.batch_size}, "
                             f"{self.report_episodes}")
        if self.evaluation_stages and self.eval_steps >= self.eval_period:
            raise ValueError(f"an evaluation stage (L = {self.eval_steps} steps) must be shorter than the period "
                             f"F = {self.eval_period} that it is part of: choose L < F")
        if self.report_period < 0 or self.learning_starts < 0 or self.updates_per_step < 0:
            raise ValueError("report_period, learning_starts and updates_per_step must be >= 0, got "
                             f"{self.report_period}, {self.learning_starts}, {self.updates_per_step}")

    @property
    def stage_share(self):
        """The share of the budget spent in evaluation stages (L / F when F divides T; 0 without stages)."""
        if not self.evaluation_stages:
            return 0.0
        starts = range(0, self.total_steps, self.eval_period)
        return sum(min(self.eval_steps, self.total_steps - t) for t in starts) / self.total_steps


@dataclass
class LoopState:
    """The loop's position in a run (what a checkpoint needs besides learner, buffer, envs and rng)."""

    obs: np.ndarray                 # the exploration env's current observation
    env_step: int = 0               # t: env steps used, evaluation stages included
    stage_steps: int = 0            # env steps spent in evaluation stages
    updates: int = 0                # learner updates made
    next_stage: int = 0             # the next evaluation stage starts at the first step >= this
    n_stages: int = 0               # evaluation stages done (their env seeds are seed + 1000 + n_stages)
    next_report: int = 0            # the next reporting evaluation is at the first loop top with env_step >= this
    n_reports: int = 0              # reporting evaluations done
    next_checkpoint: int = 0        # on_checkpoint is called at the first loop top with env_step >= this
    episode_return: float = 0.0     # the running exploration episode's return so far
    episode_steps: int = 0          # and its steps so far
    stats: dict = field(default_factory=dict)   # the last update's statistics (logged with the next row)
    rows: list = field(default_factory=list)    # the log rows so far

    @property
    def exploration_steps(self):
        return self.env_step - self.stage_steps


def report_seeds(seed, n_report, episodes):
    """The env seeds of reporting evaluation number ``n_report`` of a run seeded ``seed``: ``episodes``
    seeds of their own, disjoint from every other evaluation's and from the stages' (seed + 1000 + k)."""
    base = 1_000_000 * (seed + 1) + n_report * episodes
    return [base + j for j in range(episodes)]


def evaluate_episodes(env, policy, seeds):
    """One complete episode of ``policy`` per seed in ``seeds`` (the env's time limit ends it); nothing is
    stored. Returns the undiscounted episode returns."""
    returns = []
    for s in seeds:
        obs, _ = env.reset(seed=int(s))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns


def _stage(env, learner, buffer, steps, seed, s, config, rng, on_step):
    """One evaluation stage of exactly ``steps`` env steps from a fresh episode; every transition is stored
    in the buffer's stage stream, folded as a truncation at the end. Returns (score, episode returns): the
    mean return of the episodes that ended in the stage, or the partial return of the running one if none did."""
    obs, _ = env.reset(seed=seed)
    returns, running = [], 0.0
    for _ in range(steps):
        action = learner.exploit_action(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(obs, action, reward + config.reward_shift, next_obs, terminated, truncated, stream=STAGE)
        if on_step is not None:
            on_step("eval", obs, action, reward, next_obs, info)
        running += reward
        obs = next_obs
        s.env_step += 1
        s.stage_steps += 1
        if config.update_during_stages:
            _update(learner, buffer, config, rng, s)
        if terminated or truncated:
            returns.append(running)
            running = 0.0
            obs, _ = env.reset()
    buffer.end_stream(STAGE)
    return (float(np.mean(returns)) if returns else running), returns


def _update(learner, buffer, config, rng, s):
    if len(buffer) >= max(config.learning_starts, 1):
        for _ in range(config.updates_per_step):
            s.stats = learner.update(buffer.sample(config.batch_size, rng), min(s.env_step / config.total_steps, 1.0))
            s.updates += 1


def _log(s, row, on_log):
    s.rows.append(row)
    if on_log is not None:
        on_log(row)


def _report(report_env, learner, config, seed, s, on_log):
    returns = evaluate_episodes(report_env, learner.exploit_action,
                                report_seeds(seed, s.n_reports, config.report_episodes))
    s.n_reports += 1
    s.next_report = (s.env_step // config.report_period + 1) * config.report_period
    _log(s, {"kind": "report", "env_step": s.env_step, "exploration_steps": s.exploration_steps,
             "updates": s.updates, "eval_return": float(np.mean(returns)),
             "eval_return_std": float(np.std(returns)), "episodes": len(returns)}, on_log)


class RunInterrupted(RuntimeError):
    """The run stopped at a safe point before its end (Ctrl-C, or a test), after a checkpoint was written;
    ``env_step``: where it stopped."""

    def __init__(self, message, env_step):
        super().__init__(message)
        self.env_step = env_step


def run_online(env, eval_env, learner, buffer, config, rng, seed=0, on_step=None, on_log=None, progress=None,
               state=None, on_checkpoint=None, checkpoint_period=0, report_env=None, stop=None):
    """Fine-tune ``learner`` online for ``config.total_steps`` environment steps; returns the log rows.

    env / eval_env / report_env: Gymnasium envs for data collection, the evaluation stages and the reporting
    evaluations (three instances: neither evaluation cuts the running exploration episode; report_env is
    needed when ``config.report_period`` > 0). rng: numpy Generator for actions and batches.
    on_step(stage, obs, action, reward, next_obs, info): called for every stored transition ("explore" or
    "eval"). on_log(row): called with every log row as it is made ("report" and "stage" rows, ``kind``).
    progress: a tqdm-like object with update(n) and set_postfix. state: a ``LoopState`` to continue from
    (None: a new run, ``env`` is reset with ``seed``). on_checkpoint(state): called every
    ``checkpoint_period`` env steps (0: never) and at the end. stop(): asked at every loop top (between two
    steps, a safe point); when it says True the loop calls on_checkpoint and raises ``RunInterrupted``.
    """
    if config.report_period > 0 and report_env is None:
        raise ValueError("report_period > 0 needs a report_env: a separate env for the reporting evaluations")
    if state is None:
        state = LoopState(obs=env.reset(seed=seed)[0], next_checkpoint=checkpoint_period)
    s = state
    while s.env_step < config.total_steps:
        if stop is not None and stop():
            if on_checkpoint is not None:
                on_checkpoint(s)
            raise RunInterrupted(f"stopped at env step {s.env_step}", s.env_step)
        if on_checkpoint is not None and checkpoint_period > 0 and s.env_step >= s.next_checkpoint:
            s.next_checkpoint = (s.env_step // checkpoint_period + 1) * checkpoint_period
            on_checkpoint(s)
        if config.report_period > 0 and s.env_step >= s.next_report:
            _report(report_env, learner, config, seed, s, on_log)
        if config.evaluation_stages and s.env_step >= s.next_stage:
            steps = min(config.eval_steps, config.total_steps - s.env_step)
            score, _ = _stage(eval_env, learner, buffer, steps, seed + 1000 + s.n_stages, s, config, rng, on_step)
            s.n_stages += 1
            s.next_stage = (s.env_step // config.eval_period + 1) * config.eval_period
            if progress is not None:
                progress.update(steps)
            _log(s, {"kind": "stage", "env_step": s.env_step, "exploration_steps": s.exploration_steps,
                     "updates": s.updates, "eval_return": score, **learner.after_evaluation(score, s.env_step),
                     **{k: float(v) for k, v in s.stats.items()}}, on_log)
            continue
        action = learner.explore_action(s.obs, rng)
        next_obs, reward, terminated, truncated, info = env.step(action)
        buffer.add(s.obs, action, reward + config.reward_shift, next_obs, terminated, truncated, stream=EXPLORE)
        if on_step is not None:
            on_step("explore", s.obs, action, reward, next_obs, info)
        s.episode_return += float(reward)
        s.episode_steps += 1
        if terminated or truncated:
            if hasattr(learner, "end_episode"):
                learner.end_episode(s.episode_return, s.episode_steps)
            s.episode_return, s.episode_steps = 0.0, 0
        s.obs = next_obs if not (terminated or truncated) else env.reset()[0]
        s.env_step += 1
        if progress is not None:
            progress.update(1)
        _update(learner, buffer, config, rng, s)
    if config.report_period > 0 and not (s.rows and s.rows[-1]["kind"] == "report"
                                         and s.rows[-1]["env_step"] == s.env_step):
        _report(report_env, learner, config, seed, s, on_log)   # the last reporting evaluation, at t = T
    if on_checkpoint is not None:
        on_checkpoint(s)
    return s.rows


def report_rows(rows):
    """The reporting evaluations among a run's log rows."""
    return [r for r in rows if r["kind"] == "report"]


def final_score(rows, window):
    """The reported score of a run (B.1): the mean of the last ``window`` reporting evaluations' returns
    (10 for locomotion; 1, the last one, for sparse-reward tasks)."""
    reports = report_rows(rows)
    if not reports:
        raise ValueError("the run has no reporting evaluation: give it a report_period > 0")
    return float(np.mean([r["eval_return"] for r in reports[-window:]]))
