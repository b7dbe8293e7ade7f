"""Jump-Start RL (Uchendu et al., 2023, "Jump-Start Reinforcement Learning", ICML): the JSRL column of the
paper's Table 2, as a learner of the shared loop ``finetune.loop.run_online`` (row "jsrl" of ``finetune.algos``).

Every exploration episode is a combined rollout: the guide pi^g (the offline actor, frozen, its mean action)
acts for the first h steps, the exploration policy pi^e (an IQL learner, updated by IQL's own losses on every
batch) for the rest. Both segments go into the buffer. A curriculum shrinks h from about the guide's episode
length H_1 to 0 in n stages (``curriculum``), advancing when the combined rollouts' return holds up
(``advance``). Per episode::

    stage 0 (measuring H_1):  the guide plays the first ``h1_episodes`` episodes alone; H_1 = their mean length
    stage k = 1..n:           steps t < h_k by the guide, t >= h_k by pi^e (a sample of its Gaussian);
                              after each episode: if advance(...) then k <- k + 1 (never past k = n, h_n = 0)

Settings, and whose they are:

    GDE (App. B.3)    n = 10 curriculum stages (the only JSRL setting GDE gives)
    JSRL paper        H_1 = the guide's mean episode length; h_k = H_1 - k H_1 / n; the advance rule (a moving
                      average of the last 5 evaluations within a tolerance of the best previous moving average);
                      pi^e trained by IQL's online update; batches of 75% online / 25% offline transitions
    ours              the defaults of ``JSRLConfig`` marked "ours" below

Where ours differs from the JSRL paper (each a ``JSRLConfig`` field where it is a choice):

* The advance signal is the return of the combined exploration episodes themselves (the loop's
  ``end_episode`` hook), a moving average over ``window`` = 5 of them; JSRL evaluates the combined policy
  every 10k steps outside the budget. Ours costs no env step and needs no evaluation stage, so the row runs
  none by default (given ``--evaluation-stages`` it runs GDE's stages as an equal-data comparison; their score
  is logged and never moves the curriculum). The episodes are noisier than JSRL's evaluations (pi^e samples).
* "Best previous moving average": the running maximum of every moving average computed since stage 1 (over
  all stages). The window restarts at each advance, so a decision uses the current stage's episodes only.
* Tolerance 5% (Table 11's best cell; the paper states no default). For a negative best we use
  best - tolerance |best|, which is best (1 - tolerance) for a positive one.
* H_1 is measured on the first 3 exploration episodes, played by the guide alone (JSRL: 100 evaluation
  episodes outside the budget). They cost env steps but are not wasted: they are guide data, as 90% of stage 1
  is. ``h1_from="dataset"`` takes instead the offline dataset's mean episode length (no env step, but the
  behaviour policy's length, not the guide's).
* Warm start by default (``warm_start``): pi^e is the offline agent itself (actor, critics, V, targets and
  Adam states continued), as every other method of the comparison fine-tunes the offline agent, and a
  cold-start IQL learner cannot learn much in a 50k-step budget. JSRL's Table 1 used a cold start
  (``warm_start=False``: a fresh IQL agent of the same configuration).
* The online buffer holds ``GDEConfig.buffer_size`` transitions (the project's setting; JSRL: 100k).
* ``exploit_action`` (what the evaluations score): pi^e's mean action alone, the policy that is deployed once
  the curriculum reaches h = 0; the loop's reporting evaluation does not know an episode's step count, which
  the combined policy would need. With the warm start it is the offline policy at t = 0.
"""
import math
from dataclasses import dataclass

import numpy as np

from gde_ref.agents.actors import PolicyActions
from gde_ref.agents.backbones import make_backbone
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.mixed import MixedBuffer, offline_replay
from gde_ref.finetune.context import need_offline
from gde_ref.finetune.gde import AgentInputs
from gde_ref.finetune.variants import NO_TEACHER_LOG
from gde_ref.nn.checks import check_range, restore_arrays, sub_state

H1_SOURCES = ("guide", "dataset")


@dataclass(frozen=True)
class JSRLConfig:
    """JSRL's settings (see the module docstring for whose each is)."""

    n_stages: int = 10              # n: curriculum stages, h_n = 0 (GDE B.3)
    window: int = 5                 # moving average over the last ``window`` episode returns (JSRL: 5 evaluations)
    tolerance: float = 0.05         # advance within this fraction of the best previous moving average (ours)
    h1_from: str = "guide"          # H_1 from "guide" episodes (ours) or the offline "dataset"'s episodes
    h1_episodes: int = 3            # guide-only episodes that measure H_1 (ours; JSRL: 100 evaluations)
    warm_start: bool = True         # pi^e starts as the offline agent (ours; JSRL Table 1: cold start)
    offline_fraction: float = 0.25  # offline share of every batch (JSRL: 25% offline / 75% online)

    def __post_init__(self):
        if min(self.n_stages, self.window, self.h1_episodes) < 1:
            raise ValueError(f"JSRL's n_stages, window and h1_episodes must be >= 1, got {self.n_stages}, "
                             f"{self.window}, {self.h1_episodes}")
        check_range("JSRL's tolerance", self.tolerance, 0.0)
        check_range("JSRL's offline_fraction", self.offline_fraction, 0.0, 1.0)
        if self.h1_from not in H1_SOURCES:
            raise ValueError(f"JSRL's h1_from must be one of {', '.join(H1_SOURCES)}, got {self.h1_from!r}")


def curriculum(h1, n_stages):
    """The guide-step sequence (h_1, ..., h_n) of JSRL's curriculum (JSRL Sec. 4.2, App. A.2.1):

        h_k = H_1 - k H_1 / n,   k = 1..n,   rounded half up to whole steps;   so h_n = 0

    H_1 (``h1``): the guide's mean episode length (> 0); n (``n_stages``): GDE's 10 stages. With n = 10 the
    guide plays 90%, 80%, ..., 10% of H_1, then no step."""
    h1 = check_range("H_1 (the guide's mean episode length)", h1, 0.0, low_open=True)
    if int(n_stages) != n_stages or n_stages < 1:
        raise ValueError(f"the curriculum needs n_stages >= 1 (a whole number), got {n_stages}")
    n = int(n_stages)
    return [int(math.floor(h1 - k * h1 / n + 0.5)) for k in range(1, n + 1)]


def advance(returns, best, window, tolerance):
    """JSRL's advance rule (App. A.2.1), after an episode of the current curriculum stage; returns
    (advance, best').

        m     = mean of the last ``window`` returns of this stage (no decision, (False, best), before it has them)
        advance  iff  best is not None  and  m >= best - tolerance |best|
        best' = m if best is None else max(best, m)

    ``returns``: this stage's episode returns so far; ``best``: the best moving average before this one (None
    before the first); ``tolerance``: a fraction (0.05 = 5%)."""
    if window < 1 or tolerance < 0:
        raise ValueError(f"the advance rule needs window >= 1 and tolerance >= 0, got {window}, {tolerance}")
    if len(returns) < window:
        return False, best
    m = float(np.mean(returns[-window:]))
    if best is None:
        return False, m
    return m >= best - tolerance * abs(best), max(best, m)


class JSRLFinetuner:
    """JSRL as a loop learner: the guide for the first h steps of every exploration episode, pi^e after.

    explore_action: the guide's mean action while the episode's step t < h (the whole episode while H_1 is
                    measured), else a sample of pi^e's Gaussian (IQL: N(tanh(f(s)), std^2) clipped to [-1, 1]);
    exploit_action: pi^e's mean action;
    update:         IQL's update of pi^e (critics, V, actor) on one batch;
    end_episode:    the curriculum's bookkeeping (H_1, then the advance rule).

    agent: the offline IQL agent (the guide is a frozen copy of its actor; with ``warm_start`` it is also pi^e,
    updated in place); normalizer, reward_scale: the offline data's; offline: the raw dataset, for
    ``h1_from="dataset"``; seed: the cold-start learner's initialisation (seed + 1: not the offline agent's).
    """

    # the curriculum's position (saved with the checkpoint): H_1, the stage k, stage 0's episode lengths, this
    # stage's last returns, the best moving average, the running episode's step t, the exploration steps so far,
    # and each advance as [exploration steps, new h]
    SCALARS = ("h1", "stage", "lengths", "returns", "best", "episode_step", "explore_steps", "advances")

    def __init__(self, agent, normalizer, reward_scale, config=None, seed=0, offline=None):
        self.config = c = config or JSRLConfig()
        self.guide_actor = agent.actor.copy()        # pi^g: never updated
        self.guide = PolicyActions(self.guide_actor, agent.spec)
        self.agent = agent if c.warm_start else make_backbone(agent.name, agent.obs_dim, agent.act_dim, agent.config,
                                                              seed + 1)
        self.policy = PolicyActions(self.agent.actor, self.agent.spec)   # pi^e
        self.inputs = AgentInputs(normalizer, reward_scale, agent.dtype)
        self.h1, self.hs, self.stage = None, [], 0   # stage 0: H_1 being measured; k: h = hs[k - 1]
        self.lengths, self.returns, self.best = [], [], None
        self.episode_step, self.explore_steps, self.advances = 0, 0, []
        if c.h1_from == "dataset":
            lengths = getattr(offline, "episode_lengths", None)
            if lengths is None or len(lengths) == 0:
                raise ValueError("JSRL with h1_from='dataset' takes H_1 from the offline dataset's episodes: pass "
                                 "the offline dataset (offline=...) with its episode_lengths")
            self._start(float(np.mean(lengths)))

    @property
    def guide_steps(self):
        """h of the current stage: the guide plays steps t < h of each episode; None while H_1 is measured."""
        return None if self.stage == 0 else self.hs[self.stage - 1]

    def _start(self, h1):
        self.h1, self.hs, self.stage = float(h1), curriculum(h1, self.config.n_stages), 1

    def explore_action(self, obs, rng):
        h = self.guide_steps
        x = self.inputs.obs(obs)
        action = self.guide.act(x) if h is None or self.episode_step < h else self.policy.act(x, rng)
        self.episode_step += 1
        self.explore_steps += 1
        return action

    def exploit_action(self, obs):
        return self.policy.act(self.inputs.obs(obs))

    def update(self, batch, progress):
        return self.agent.update(self.inputs.batch(batch))

    def end_episode(self, episode_return, episode_steps):
        """After an exploration episode: stage 0 collects the guide's episode lengths (H_1 = their mean after
        ``h1_episodes``); a stage k < n adds the return and advances by ``advance``; at h = 0 nothing changes."""
        if episode_steps != self.episode_step:
            raise RuntimeError(f"JSRL counted {self.episode_step} steps in this episode, the loop {episode_steps}: "
                               "every exploration step must go through explore_action")
        self.episode_step = 0
        c = self.config
        if self.stage == 0:
            self.lengths.append(int(episode_steps))
            if len(self.lengths) == c.h1_episodes:
                self._start(float(np.mean(self.lengths)))
            return
        if self.stage == c.n_stages:
            return
        self.returns = (self.returns + [float(episode_return)])[-c.window:]
        go, self.best = advance(self.returns, self.best, c.window, c.tolerance)
        if go:
            self.stage += 1
            self.returns = []
            self.advances.append([self.explore_steps, self.guide_steps])

    def after_evaluation(self, score, env_step):
        """An evaluation stage (only with --evaluation-stages) never moves the curriculum; logs its stage."""
        return {**NO_TEACHER_LOG, "jsrl_stage": self.stage}

    def state(self):
        """pi^e's agent (``agent/...``), the guide's parameters and the curriculum's position (scalars)."""
        return {**{f"agent/{k}": v for k, v in self.agent.state().items()}, "jsrl/guide": self.guide_actor.params,
                **{f"jsrl/{k}": _plain(getattr(self, k)) for k in self.SCALARS}}

    def load_state(self, saved, what="checkpoint"):
        missing = [k for k in self.SCALARS if f"jsrl/{k}" not in saved]
        if missing:
            raise ValueError(f"{what} has no JSRL curriculum state ({', '.join(missing)}): it was saved by another "
                             "algorithm")
        if saved["jsrl/stage"] > self.config.n_stages:
            raise ValueError(f"{what} is at curriculum stage {saved['jsrl/stage']}, past this JSRL's "
                             f"n_stages = {self.config.n_stages}")
        self.agent.load_state(sub_state(saved, "agent/"), what)
        restore_arrays(what, {"jsrl/guide": self.guide_actor.params}, saved)
        for k in self.SCALARS:
            setattr(self, k, _plain(saved[f"jsrl/{k}"]))
        self.hs = [] if self.h1 is None else curriculum(self.h1, self.config.n_stages)


def _plain(x):
    """A copy of a scalar or (nested) list, as JSON gives it back: lists of plain numbers."""
    return [_plain(v) for v in x] if isinstance(x, (list, tuple)) else x


def build_jsrl(ctx, config=None):
    """The row's learner: ``JSRLFinetuner`` on ``ctx.agent`` (a ``finetune.context.FinetuneContext``)."""
    if ctx.action_temperature != 1.0:
        raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to JSRL")
    return JSRLFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, config, ctx.seed, ctx.offline)


def jsrl_buffer(ctx, config=None):
    """The row's buffer: the offline transitions (one-step) and ``config.buffer_size`` online ones (n-step,
    n = ``ctx.config.n_step``), kept apart; every batch is ``offline_fraction`` offline (``data.mixed``)."""
    c = config or JSRLConfig()
    need_offline(ctx, f"samples {c.offline_fraction:.0%} of every batch from the offline data")
    ag = ctx.agent
    online = ReplayBuffer(ctx.config.buffer_size, ag.obs_dim, ag.act_dim, ctx.config.n_step, ag.config.discount)
    return MixedBuffer(offline_replay(ctx.offline, ag.obs_dim, ag.act_dim, ag.config.discount), online,
                       c.offline_fraction)
