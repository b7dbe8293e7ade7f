"""QDagger (Agarwal et al. 2022, "Reincarnating Reinforcement Learning"), a Table 2 baseline on the IQL backbone.

The student is the offline IQL agent itself, fine-tuned by IQL's own losses on online samples only (as
``oniql``), with a distillation term to the teacher, the frozen offline policy:

    L(phi) = L_IQL-actor(phi) + lambda_t mean_i KL(pi_teacher(.|s_i) || pi_phi(.|s_i))   (``QDaggerFinetuner.update``)
    lambda_t = c max(1 - (score - R_rand) / (score_teacher - R_rand), 0)                    (``distillation_decay``)

The distillation term is exactly what ``agents.actors.guided_awr_step`` computes (Eq. 4 + rho KL(pi_t || pi_e),
the analytic KL between the two Gaussians, teacher first): ``IQLAgent.actor_step(..., teacher=, kl_weight=)``
is reused with kl_weight = lambda_t; no new kernel. The critics and V take IQL's own steps (Eq. 2, 3).

Where ours differs from the official code (google-research/reincarnating_rl, Atari only) and what we took:

* distillation: the official is KL(teacher || student) between Boltzmann policies softmax(Q / 0.1); for
  Gaussian actors we take KL(teacher || student) between the two Gaussians (same direction);
* coefficient c: GDE's 0.3 (App. B.5, "distillation loss weight"), read from ``config.kl_weight``
  (``--kl-weight``); the official gins use 3.0 (DQN) or 1.0 (Rainbow). GDE does not say whether it decays;
  we apply the official decay, which is QDagger's defining schedule;
* the score: the official normalises by (student - random) / (teacher - random) after each iteration's
  evaluation. Ours takes GDE's evaluation stages (row ``stages=True``: L steps of the exploitation policy
  every F steps, in the budget and stored in the buffer, as for GDE). The stage at t = 0 scores the offline
  policy, i.e. the teacher itself: it sets the teacher's score and leaves the decay at 1 (the official's
  first online evaluation comes after training). R_rand = 0 (CleanRL's form): the stage score is often
  a partial-episode return, which a full-episode random reference would not match;
* the official's guard is kept: once the decay reaches 0 it stays 0. Its cut-off after 1.5M / 2.5M Atari
  steps and its learning rate annealed with the decay (1e-4 -> 1e-5) are not used: the cut-off is an
  Atari step count with no analogue in our budgets, and IQL's learning rates are kept (GDE's backbone
  settings). The offline "persistence" phase is the offline IQL training itself.
"""
import numpy as np

from gde_ref.finetune.variants import NaiveFinetuner
from gde_ref.nn.bundle import frozen_net
from gde_ref.nn.checks import check_range, restore_arrays

DENOMINATOR_EPS = 1e-8   # the official's guard in (teacher - random + 1e-8)


def distillation_decay(score, teacher_score, random_score=0.0):
    """QDagger's decay of the distillation weight after an evaluation (Agarwal et al. 2022; the official
    ``record_score``):

        normalised = (score - R_rand) / (score_teacher - R_rand + 1e-8)
        decay      = max(1 - normalised, 0)

    1 while the student scores like a random policy, 0 once it matches the teacher (above 1 if it falls
    below random, as in the official code). A teacher no better than random (score_teacher <= R_rand) makes
    the normalisation meaningless (its sign flips); then decay = 0 if the student beats the teacher, else 1
    (which is the official's value whenever score_teacher = R_rand).
    """
    score, teacher_score, random_score = float(score), float(teacher_score), float(random_score)
    if not np.isfinite(score) or not np.isfinite(teacher_score) or not np.isfinite(random_score):
        raise ValueError(f"QDagger's decay needs finite scores, got student {score}, teacher {teacher_score}, "
                         f"random {random_score}")
    if teacher_score <= random_score:
        return 0.0 if score > teacher_score else 1.0
    normalised = (score - random_score) / (teacher_score - random_score + DENOMINATOR_EPS)
    return max(1.0 - normalised, 0.0)


def build_qdagger(ctx):
    """The ``qdagger`` row's learner (a ``finetune.context.FinetuneContext``): c = ``config.kl_weight``."""
    if ctx.action_temperature != 1.0:
        raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to qdagger")
    return QDaggerFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.config.kl_weight)


class QDaggerFinetuner(NaiveFinetuner):
    """QDagger on the IQL backbone, a learner of ``finetune.loop.run_online`` (run with evaluation stages).

    explore_action: a sample of the student's Gaussian (as oniql); exploit_action: its mean action;
    update: IQL's critic step, then Eq. 4 + lambda_t KL(pi_teacher || pi_student) on the actor;
    after_evaluation: the first stage sets the teacher's score, each later one recomputes the decay.

    coefficient: c (GDE's 0.3); random_score: R_rand of the normalisation (0: CleanRL's form).
    """

    def __init__(self, agent, normalizer, reward_scale, coefficient=0.3, random_score=0.0):
        if getattr(agent, "name", None) != "iql":
            raise ValueError(f"QDaggerFinetuner is defined on the iql backbone, not {getattr(agent, 'name', agent)!r}")
        super().__init__(agent, normalizer, reward_scale)
        self.coefficient = check_range("QDagger's distillation coefficient (kl_weight)", coefficient, 0.0)
        self.random_score = check_range("random_score", random_score)
        self.teacher_params = agent.actor.params.copy()       # the frozen offline policy
        self.loss_decay, self.teacher_score = 1.0, None
        self._teachers = {}

    @property
    def kl_weight(self):
        """lambda_t = c * decay, the distillation weight now."""
        return self.coefficient * self.loss_decay

    def teacher(self, batch_size):
        """The teacher as the kernels see it: a frozen Net (cached per batch size)."""
        net = self._teachers.get(batch_size)
        if net is None:
            net = self._teachers[batch_size] = frozen_net(self.teacher_params, self.agent.actor, batch_size)
        return net

    def update(self, batch, progress):
        """IQL's critics (Eq. 2, 3, targets), then the actor on Eq. 4 + lambda_t KL(pi_teacher || pi_student)
        (``guided_awr_step``; plain Eq. 4 once lambda_t = 0)."""
        ag = self.agent
        batch = ag.check_batch(self.inputs.batch(batch), "QDagger update")
        stats = np.zeros(len(ag.STAT_NAMES))
        context = ag.critic_step(batch, stats)
        weight = self.kl_weight
        ag.actor_step(batch, context, stats, teacher=self.teacher(batch.obs.shape[0]) if weight > 0 else None,
                      kl_weight=weight)
        return dict(zip(ag.STAT_NAMES, stats.tolist()))

    def after_evaluation(self, score, env_step):
        """The stage at t = 0 scores the offline policy, the teacher: its score is kept and the decay stays 1.
        Each later stage scores the student: decay <- ``distillation_decay`` while it is above 0 (the official's
        guard: at 0 it is never recomputed). Returns the log fields."""
        if self.teacher_score is None:
            self.teacher_score = float(score)
        elif self.loss_decay > 0:
            self.loss_decay = distillation_decay(score, self.teacher_score, self.random_score)
        return {"teacher_score": self.teacher_score, "teacher_swapped": 0, "kl_weight": self.kl_weight}

    def state(self):
        """The agent's state, the teacher's parameters, the decay and the teacher's score."""
        return {**super().state(), "qdagger/teacher": self.teacher_params, "loss_decay": self.loss_decay,
                "teacher_score": self.teacher_score}

    def load_state(self, saved, what="checkpoint"):
        super().load_state(saved, what)
        restore_arrays(what, {"qdagger/teacher": self.teacher_params}, saved)
        if "loss_decay" not in saved or "teacher_score" not in saved:
            raise ValueError(f"{what} has no QDagger decay or teacher score: it was saved by another algorithm")
        self.loss_decay = float(saved["loss_decay"])
        self.teacher_score = None if saved["teacher_score"] is None else float(saved["teacher_score"])
