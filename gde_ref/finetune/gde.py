"""Guided Decoupled Exploration (paper Section 4.2.3, Algorithm 1): the three policies and their update.

    Initialise exploration mu, exploitation phi and teacher phi-bar policies from the offline actor.
    every step:
        update the critics by the backbone's critic loss        (IQL: Eq. 2, Eq. 3)
        update the exploitation policy by the backbone's actor loss   (IQL: Eq. 4)
        update the exploration policy by Eq. 5:
            L(mu) = -E[min(Q1, Q2)(s, pi_b(s))] + rho KL(pi_t(.|s) || pi_b(.|s))
    every F steps: if EvalPolicy(teacher) < EvalPolicy(exploitation): teacher <- exploitation

This module holds, in that order:

* ``GDELearner``, which owns the three policies: one update is the backbone's own fused update (IQL: Eq. 2-4)
  followed by ``agents.actors.exploration_step`` (Eq. 5), for any backbone of ``agents.backbones``;
* ``GDEFinetuner``, Algorithm 1's loop body for ``finetune.loop.run_online``: act with pi_b, one update
  per step with rho = rho_0 (1 - t / T), and the teacher swap after each evaluation stage;
* the Table 4 ablations as switches of ``GDEFinetuner`` (Section 5.5): ``exploit=False`` (no
  exploitation-policy update; pi_b is evaluated and the teacher follows its checkpoints),
  ``explore=False`` (pi_e collects the data and the KL term joins its actor loss, the backbone's ``actor_step``
  with a teacher),
  ``teacher=False`` (rho = 0).
"""
import numpy as np

from gde_ref.agents.actors import ExploreHyper, PolicyActions, exploration_kernel
from gde_ref.config import GDEConfig
from gde_ref.data.batch import Batch, MCBatch
from gde_ref.nn.bundle import frozen_net, trained_net
from gde_ref.nn.checks import check_range, restore_arrays, sub_state


class GDELearner:
    """GDE's three policies on a backbone (``agents.backbones``: IQL, TD3+BC, CQL).

    ``backbone.actor`` is the exploitation policy pi_e (phi), ``explore`` the exploration policy pi_b
    (mu) with its own Adam state, ``teacher_params`` the teacher pi_t (phi-bar). All three start from the
    offline actor (Algorithm 1, "Initialize"); pi_b's Adam state starts as a copy of the actor's (zero for
    a fresh agent; the offline optimiser's moments when fine-tuning continues them).
    """

    def __init__(self, backbone, config=None):
        self.backbone = backbone
        self.config = config or GDEConfig()
        self.explore = backbone.actor.copy()
        self.explore_adam = backbone.adam["actor"].copy()   # pi_b's optimiser continues the actor's
        self.teacher_params = backbone.actor.params.copy()
        self.stat_names = backbone.STAT_NAMES + ("explore_loss",)
        self.exploration_step = exploration_kernel(backbone.spec)   # Eq. 5 for this backbone's actor
        self._policies = {}

    def policies(self, batch_size):
        """(pi_b, pi_t) as the kernels see them: the exploration policy's trained Net and the teacher's frozen
        one (cached per batch size)."""
        r = self._policies.get(batch_size)
        if r is None:
            r = self._policies[batch_size] = (trained_net(self.explore, self.explore_adam, batch_size),
                                              frozen_net(self.teacher_params, self.backbone.actor, batch_size))
        return r

    def update(self, batch, kl_weight, actor_lr=None):
        """One GDE step on a ``gde_ref.data.Batch`` with KL weight rho = ``kl_weight``; returns statistics:
        the backbone's update (critics, pi_e), then Eq. 5 on pi_b with the updated critics."""
        bb = self.backbone
        batch = bb.check_batch(batch, "GDELearner.update")
        check_range("kl_weight (rho)", kl_weight, 0.0)
        n = batch.obs.shape[0]
        stats = np.zeros(len(self.stat_names))
        bb.step(batch, stats, actor_lr)                                                   # critics, pi_e
        explore, teacher = self.policies(n)
        stats[-1] = self.exploration_step(explore, teacher, bb.critics(n), batch.obs,      # Eq. 5
                                     ExploreHyper(kl_weight, self.config.exploration_lr, bb.spec))
        return dict(zip(self.stat_names, stats.tolist()))

    def update_guided_exploitation(self, batch, kl_weight):
        """The "w/o explore" ablation's step: the backbone's critics, then its actor loss + rho KL(pi_t || pi_e)."""
        bb = self.backbone
        batch = bb.check_batch(batch, "GDELearner.update_guided_exploitation")
        check_range("kl_weight (rho)", kl_weight, 0.0)
        stats = np.zeros(len(bb.STAT_NAMES))
        context = bb.critic_step(batch, stats)
        bb.actor_step(batch, context, stats, teacher=self.policies(batch.obs.shape[0])[1], kl_weight=kl_weight)
        return dict(zip(bb.STAT_NAMES, stats.tolist()))

    def update_teacher(self, params=None):
        """Teacher <- exploitation policy (phi-bar <- phi), or <- ``params`` (the "w/o exploit" ablation
        passes the exploration policy's); in place so compiled records stay valid."""
        self.teacher_params[:] = self.backbone.actor.params if params is None else params

    def state(self):
        """The backbone's state (``agent/...``), pi_b and its Adam state, the teacher; arrays by reference."""
        a = self.explore_adam
        return {**{f"agent/{k}": v for k, v in self.backbone.state().items()}, "gde/explore": self.explore.params,
                "gde/teacher": self.teacher_params, "gde/adam/explore/m": a.m, "gde/adam/explore/v": a.v,
                "gde/adam/explore/t": a.t}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: the backbone's, then pi_b, its Adam state and the teacher, in place."""
        self.backbone.load_state(sub_state(saved, "agent/"), what)
        restore_arrays(what, {k: v for k, v in self.state().items() if k.startswith("gde/")}, saved)


# ------------------------------------------------------------------------------------------------
# Algorithm 1 in the shared loop
# ------------------------------------------------------------------------------------------------
class AgentInputs:
    """Raw environment data -> what the offline agent was trained on: states normalised by the dataset's
    mean/std (``ObsNormalizer``), rewards multiplied by the dataset's reward scale (IQL's convention).

    The buffer stores raw data and this happens when a batch is drawn. The scaling is linear, so it commutes
    with the buffer's n-step sums: scale * sum_k gamma^k r_k = sum_k gamma^k (scale * r_k).
    """

    def __init__(self, normalizer, reward_scale, dtype=np.float32):
        self.mean = np.asarray(normalizer.mean, dtype)
        self.std = np.asarray(normalizer.std, dtype)
        self.reward_scale = np.dtype(dtype).type(check_range("reward_scale", reward_scale, 0.0, low_open=True))
        self._obs = np.zeros(self.mean.shape, dtype)

    def obs(self, raw):
        """One normalised observation, in an internal buffer (valid until the next call)."""
        np.copyto(self._obs, raw, casting="same_kind")
        np.subtract(self._obs, self.mean, out=self._obs)
        np.divide(self._obs, self.std, out=self._obs)
        return self._obs

    def batch(self, raw):
        """A Batch of normalised states and scaled rewards (actions and discounts unchanged); an ``MCBatch``
        (Cal-QL) keeps its returns-to-go, scaled as the rewards (they are sums of rewards)."""
        out = Batch((raw.obs - self.mean) / self.std, raw.actions, raw.rewards * self.reward_scale,
                    raw.discounts, (raw.next_obs - self.mean) / self.std)
        return MCBatch(*out, raw.mc_returns * self.reward_scale) if isinstance(raw, MCBatch) else out


class GDEFinetuner:
    """Algorithm 1 as a learner of ``finetune.loop.run_online``.

    explore_action: a sample of the exploration policy pi_b, its backbone's distribution (IQL: N(tanh(f_mu(s)),
                    std_mu^2) clipped to [-1, 1]; TD3+BC: its action plus N(0, 0.1^2); CQL: tanh(N(mu(s), sigma(s)^2)));
    exploit_action: the exploitation policy pi_e's mean action (what the evaluation stages score);
    update:         one GDE step on a batch of raw online transitions, rho = rho_0 (1 - t / T);
    after_evaluation: the teacher becomes pi_e only if pi_e's score beats the teacher's. The stage at
                    step 0 scores the offline policy, which is the teacher then, and so sets its score.

    Ablations (Table 4, Section 5.5): ``exploit=False``: pi_e is never updated; pi_b is evaluated and the
    teacher follows its checkpoints. ``explore=False``: pi_e collects the data (a sample of its Gaussian)
    and the KL term joins its actor loss; pi_b is unused. ``teacher=False``: rho = 0 throughout.
    """

    def __init__(self, learner: GDELearner, normalizer, reward_scale, config=None, exploit=True, explore=True,
                 teacher=True):
        if not (exploit or explore):
            raise ValueError("GDEFinetuner needs exploit=True or explore=True: without both policies "
                             "nothing is trained (use the 'offline' variant to only evaluate)")
        self.learner = learner
        self.config = config or learner.config
        self.kl_weight0 = check_range("kl_weight (rho)", self.config.kl_weight, 0.0)
        self.use_exploit, self.use_explore, self.use_teacher = bool(exploit), bool(explore), bool(teacher)
        self.kl_weight = self.kl_weight0 if teacher else 0.0
        self.inputs = AgentInputs(normalizer, reward_scale, learner.backbone.dtype)
        spec = learner.backbone.spec
        self.explore_policy = PolicyActions(learner.explore, spec)           # pi_b (mu)
        self.exploit_policy = PolicyActions(learner.backbone.actor, spec)    # pi_e (phi)
        self.teacher_score, self.swaps = None, 0

    def explore_action(self, obs, rng):
        """Algorithm 1: "Rollout pi_b to collect samples" (pi_e in the w/o-explore ablation)."""
        policy = self.explore_policy if self.use_explore else self.exploit_policy
        return policy.act(self.inputs.obs(obs), rng)

    def exploit_action(self, obs):
        """The evaluated policy's mean action: pi_e (pi_b in the w/o-exploit ablation)."""
        policy = self.exploit_policy if self.use_exploit else self.explore_policy
        return policy.act(self.inputs.obs(obs))

    def update(self, batch, progress):
        """Critics and pi_e by IQL's losses, then pi_b by Eq. 5 with rho = rho_0 (1 - progress)."""
        progress = check_range("progress", progress, 0.0, 1.0)
        self.kl_weight = self.kl_weight0 * (1.0 - progress) if self.use_teacher else 0.0
        batch = self.inputs.batch(batch)
        if not self.use_explore:
            return self.learner.update_guided_exploitation(batch, self.kl_weight)
        # w/o exploit: pi_e's Adam step at learning rate 0 leaves its parameters exactly as they are
        return self.learner.update(batch, self.kl_weight, actor_lr=None if self.use_exploit else 0.0)

    def after_evaluation(self, score, env_step):
        """Algorithm 1: if EvalPolicy(pi_t) < EvalPolicy(pi_e): phi-bar <- phi. Returns log fields.

        EvalPolicy(pi_t) is not measured again: the teacher's score is the stage return it had when it
        became the teacher, so ``teacher_score`` is the running maximum of the stage returns (the stage at
        step 0 scores the offline policy, the first teacher). Why: the paper's stage runs only the
        exploitation policy ("the teacher policy is updated to the current exploitation policy if it
        attains the highest cumulative rewards", Section 4.2.3), and re-evaluating the teacher would spend
        another L steps of the budget at every stage."""
        swapped = False
        if self.teacher_score is None:        # step 0: the evaluated policy is the teacher itself
            self.teacher_score = float(score)
        elif score > self.teacher_score:
            self.learner.update_teacher(None if self.use_exploit else self.learner.explore.params)
            self.teacher_score, swapped = float(score), True
            self.swaps += 1
        return {"teacher_score": self.teacher_score, "teacher_swapped": int(swapped), "kl_weight": self.kl_weight}

    def state(self):
        """Everything the learner carries from step to step: arrays by reference, and scalars."""
        return {**self.learner.state(), "teacher_score": self.teacher_score, "swaps": self.swaps,
                "kl_weight": self.kl_weight}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: the learner's (backbone, pi_b, teacher), then the scalars."""
        self.learner.load_state(saved, what)
        self.teacher_score, self.swaps, self.kl_weight = saved["teacher_score"], saved["swaps"], saved["kl_weight"]
