"""Guided Decoupled Exploration (paper Section 4.2.3, Algorithm 1): the three policies and their update.

    Initialise exploration mu, exploitation phi and teacher phi-bar policies from the offline actor.
    every step:
        update the critics by the backbone's critic loss        (IQL: Eq. 2, Eq. 3)
        update the exploitation policy by the backbone's actor loss   (IQL: Eq. 4)
        update the exploration policy by Eq. 5:
            L(mu) = -E[min(Q1, Q2)(s, pi_b(s))] + rho KL(pi_t(.|s) || pi_b(.|s))
    every F steps: if EvalPolicy(teacher) < EvalPolicy(exploitation): teacher <- exploitation

This module holds, in that order:

* the update step, ``gde_update_kernel``: the IQL step followed by ``exploration_actor_step`` (Eq. 5);
* ``GDELearner``, which owns the three policies and their parameters;
* ``GDEFinetuner``, Algorithm 1's loop body for ``finetune.loop.run_online``: act with pi_b, one update
  per step with rho = rho_0 (1 - t / T), and the teacher swap after each evaluation stage;
* the Table 4 ablations as switches of ``GDEFinetuner`` (Section 5.5): ``exploit=False`` (no
  exploitation-policy update; pi_b is evaluated and the teacher follows its checkpoints),
  ``explore=False`` (pi_e collects the data and the KL term joins its actor loss, ``guided_awr_actor_step``),
  ``teacher=False`` (rho = 0).
"""
import numpy as np

from gde_ref.agents.iql import STAT_NAMES as IQL_STAT_NAMES
from gde_ref.agents.iql import (IQLAgent, actor_backward, critic_step, gaussian_actor, iql_update_kernel,
                                min_of_twins, twin_min_action_gradient, value_step)
from gde_ref.config import GDEConfig
from gde_ref.data.batch import Batch, check_batch_arrays
from gde_ref.losses.equations import awr_loss_kernel, gde_exploration_loss_kernel
from gde_ref.nn.bundle import (concat_columns, frozen_net, n_mlp_params, net_adam, net_forward,
                               net_polyak, trained_net)
from gde_ref.nn.checks import check_range
from gde_ref.nn.distributions import gaussian_log_prob_kernel
from gde_ref.nn.kernels import kernel, mlp_forward_single

STAT_NAMES = IQL_STAT_NAMES + ("explore_loss",)


@kernel
def exploration_actor_step(explore, teacher, q1, q2, obs, obs_actions, kl_weight, log_std_min, log_std_max, lr):
    """Eq. 5: one Adam step of the exploration policy pi_b. Returns the loss.

    The action inside Q is pi_b's mean action tanh(net(s)) (deterministic, as in TD3); gradients reach
    it through the critics' input gradients, taken from whichever twin is smaller for each sample.
    """
    n = obs.shape[0]
    obs_dim = obs.shape[1]
    mean_b, log_std_b, mask_b = gaussian_actor(explore, obs, log_std_min, log_std_max)
    mean_t, log_std_t, _ = gaussian_actor(teacher, obs, log_std_min, log_std_max)
    concat_columns(obs, mean_b, obs_actions)
    q_pi, q1_out, q2_out = min_of_twins(q1, q2, obs_actions)
    d_q_pi = np.empty(n, obs.dtype)
    d_mean_b = np.empty_like(mean_b)
    d_log_std_b = np.empty_like(log_std_b)
    loss = gde_exploration_loss_kernel(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight,
                                       d_q_pi, d_mean_b, d_log_std_b)
    # -Q term: through the smaller twin back to its action input, added to the KL term's gradient
    twin_min_action_gradient(q1, q2, obs_actions, q1_out, q2_out, d_q_pi, obs_dim, d_mean_b)
    actor_backward(explore, obs, mean_b, d_mean_b, d_log_std_b, mask_b)
    net_adam(explore, lr)
    return loss


@kernel
def gde_update_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, actor,
                      explore, teacher, obs_actions, expectile, temperature, max_weight, polyak, critic_lr,
                      value_lr, actor_lr, explore_lr, kl_weight, log_std_min, log_std_max, stats):
    """One GDE update step: the IQL step (critics, V, exploitation actor, targets), then Eq. 5."""
    iql_update_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, actor,
                      obs_actions, expectile, temperature, max_weight, polyak, critic_lr, value_lr, actor_lr,
                      log_std_min, log_std_max, stats)
    stats[6] = exploration_actor_step(explore, teacher, q1, q2, obs, obs_actions, kl_weight,
                                      log_std_min, log_std_max, explore_lr)


@kernel
def iql_critic_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, obs_actions,
                      expectile, polyak, critic_lr, value_lr, stats):
    """IQL's critic side alone (Eq. 2, Eq. 3, target update): ``iql_update_kernel`` without its actor step.

    For methods that train an actor of their own on the same critics (the "w/o explore" ablation, ReIQL).
    Fills stats[0, 1, 3, 4, 5] as ``iql_update_kernel`` does; returns (Q'(s, a) (B,), V(s) (B,)) for Eq. 4.
    """
    concat_columns(obs, actions, obs_actions)
    q_target = min_of_twins(q1_target, q2_target, obs_actions)[0]
    stats[0] = value_step(value, obs, q_target, expectile, value_lr)             # Eq. 2
    next_v = net_forward(value, next_obs)[:, 0].copy()
    stats[1], stats[3] = critic_step(q1, q2, obs_actions, rewards, discounts, next_v, critic_lr)  # Eq. 3
    v = net_forward(value, obs)[:, 0].copy()
    net_polyak(q1_target, q1, polyak)  # the actor steps read q_target (computed above) or Q1, Q2:
    net_polyak(q2_target, q2, polyak)  # moving the targets now changes nothing they see
    stats[4] = v.mean()
    stats[5] = (q_target - v).mean()
    return q_target, v


@kernel
def guided_awr_actor_step(actor, teacher, obs, actions, q_target, v, temperature, max_weight, kl_weight,
                          log_std_min, log_std_max, lr):
    """The "w/o explore" ablation (Section 5.5): Eq. 4 plus Eq. 5's KL term on the exploitation actor,

        L(phi) = -mean_i w_i log pi_e(a_i|s_i) + rho mean_i KL(pi_t(.|s_i) || pi_e(.|s_i)),   w_i = min(exp(lambda A_i), 100)

    One Adam step; returns the loss. The KL gradient comes from Eq. 5's kernel with its Q term set to 0.
    """
    mean, log_std, mask = gaussian_actor(actor, obs, log_std_min, log_std_max)
    mean_t, log_std_t, _ = gaussian_actor(teacher, obs, log_std_min, log_std_max)
    n, n_act = mean.shape
    logp = np.empty(n, mean.dtype)
    dlogp_dmean, dlogp_dlogstd = np.empty_like(mean), np.empty_like(mean)
    gaussian_log_prob_kernel(mean, log_std, actions, logp, dlogp_dmean, dlogp_dlogstd)
    d_logp = np.empty(n, mean.dtype)
    loss = awr_loss_kernel(logp, q_target, v, temperature, max_weight, d_logp)          # Eq. 4
    no_q, d_no_q = np.zeros(n, mean.dtype), np.empty(n, mean.dtype)
    d_mean, d_log_std = np.empty_like(mean), np.empty(n_act, mean.dtype)
    loss += gde_exploration_loss_kernel(no_q, mean, log_std, mean_t, log_std_t, kl_weight,  # rho KL
                                        d_no_q, d_mean, d_log_std)
    for i in range(n):
        for j in range(n_act):
            d_mean[i, j] += d_logp[i] * dlogp_dmean[i, j]
            d_log_std[j] += d_logp[i] * dlogp_dlogstd[i, j]
    actor_backward(actor, obs, mean, d_mean, d_log_std, mask)
    net_adam(actor, lr)
    return loss


@kernel
def guided_exploitation_update_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target,
                                      value, actor, teacher, obs_actions, expectile, temperature, max_weight,
                                      polyak, critic_lr, value_lr, actor_lr, kl_weight, log_std_min, log_std_max,
                                      stats):
    """One step of the "w/o explore" ablation: IQL's critics, then ``guided_awr_actor_step``."""
    q_target, v = iql_critic_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target,
                                    value, obs_actions, expectile, polyak, critic_lr, value_lr, stats)
    stats[2] = guided_awr_actor_step(actor, teacher, obs, actions, q_target, v, temperature, max_weight,
                                     kl_weight, log_std_min, log_std_max, actor_lr)


@kernel
def gaussian_action_kernel(params, layout, obs, hidden, noise, scale, log_std_min, log_std_max, action):
    """One observation (obs_dim,) of a tanh-mean Gaussian actor: writes into ``action`` (A,)

        clip(tanh(net(obs)) + scale * exp(clip(log_std)) * noise, -1, 1)

    scale = 0 gives the mean action; scale = t samples with the Fig. 2d temperature t. Allocates nothing.
    """
    raw = mlp_forward_single(params, layout, obs, hidden)
    n_mlp = n_mlp_params(layout)
    for j in range(action.shape[0]):
        log_std = min(max(params[n_mlp + j], log_std_min), log_std_max)
        a = np.tanh(raw[j]) + scale * np.exp(log_std) * noise[j]
        action[j] = min(max(a, -1.0), 1.0)


class GDELearner:
    """GDE's three policies on an IQL backbone.

    ``backbone.actor`` is the exploitation policy pi_e (phi), ``explore`` the exploration policy pi_b
    (mu) with its own Adam state, ``teacher_params`` the teacher pi_t (phi-bar). All three start from the
    offline actor (Algorithm 1, "Initialize"); pi_b's Adam state starts as a copy of the actor's (zero for
    a fresh agent; the offline optimiser's moments when fine-tuning continues them).
    """

    def __init__(self, backbone: IQLAgent, config=None):
        self.backbone = backbone
        self.config = config or GDEConfig()
        self.explore = backbone.actor.copy()
        self.explore_adam = backbone.adam["actor"].copy()   # pi_b's optimiser continues the actor's
        self.teacher_params = backbone.actor.params.copy()
        self._bundles = {}

    def bundles(self, batch_size):
        b = self._bundles.get(batch_size)
        if b is None:
            b = dict(self.backbone.bundles(batch_size))
            b["explore"] = trained_net(self.explore, self.explore_adam, batch_size)
            b["teacher"] = frozen_net(self.teacher_params, self.backbone.actor, batch_size)
            self._bundles[batch_size] = b
        return b

    def update(self, batch, kl_weight, actor_lr=None):
        """One GDE step on a ``gde_ref.data.Batch`` with KL weight rho = ``kl_weight``; returns statistics."""
        ag = self.backbone
        obs, actions, rewards, discounts, next_obs = check_batch_arrays(
            "GDELearner.update", batch, ag.obs_dim, ag.act_dim, ag.dtype)
        check_range("kl_weight (rho)", kl_weight, 0.0)
        c, b = ag.config, self.bundles(obs.shape[0])
        stats = np.zeros(len(STAT_NAMES))
        gde_update_kernel(obs, actions, rewards, discounts, next_obs, b["q1"], b["q2"], b["q1_target"],
                          b["q2_target"], b["value"], b["actor"], b["explore"], b["teacher"], b["obs_actions"],
                          c.expectile, c.awr_temperature, c.awr_max_weight, c.polyak, c.critic_lr, c.value_lr,
                          c.actor_lr if actor_lr is None else actor_lr, self.config.exploration_lr, kl_weight,
                          c.log_std_min, c.log_std_max, stats)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def update_guided_exploitation(self, batch, kl_weight):
        """The "w/o explore" ablation's step: IQL's critics, then Eq. 4 + rho KL(pi_t || pi_e) on pi_e."""
        ag = self.backbone
        obs, actions, rewards, discounts, next_obs = check_batch_arrays(
            "GDELearner.update_guided_exploitation", batch, ag.obs_dim, ag.act_dim, ag.dtype)
        check_range("kl_weight (rho)", kl_weight, 0.0)
        c, b = ag.config, self.bundles(obs.shape[0])
        stats = np.zeros(len(STAT_NAMES))
        guided_exploitation_update_kernel(obs, actions, rewards, discounts, next_obs, b["q1"], b["q2"],
                                          b["q1_target"], b["q2_target"], b["value"], b["actor"], b["teacher"],
                                          b["obs_actions"], c.expectile, c.awr_temperature, c.awr_max_weight,
                                          c.polyak, c.critic_lr, c.value_lr, c.actor_lr, kl_weight,
                                          c.log_std_min, c.log_std_max, stats)
        return dict(zip(STAT_NAMES[:-1], stats[:-1].tolist()))

    def update_teacher(self, params=None):
        """Teacher <- exploitation policy (phi-bar <- phi), or <- ``params`` (the "w/o exploit" ablation
        passes the exploration policy's); in place so compiled bundles stay valid."""
        self.teacher_params[:] = self.backbone.actor.params if params is None else params


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
        """A Batch of normalised states and scaled rewards (actions and discounts unchanged)."""
        return Batch((raw.obs - self.mean) / self.std, raw.actions, raw.rewards * self.reward_scale,
                     raw.discounts, (raw.next_obs - self.mean) / self.std)


class PolicyActions:
    """Single-observation actions of a tanh-mean Gaussian actor (``IQLAgent.actor``, ``GDELearner.explore``),
    in the style of ``IQLAgent.act`` but without allocating: the returned action is an internal buffer."""

    def __init__(self, actor, config):
        self.actor, self.log_std_min, self.log_std_max = actor, config.log_std_min, config.log_std_max
        n_act = int(actor.layout[-1, 1])
        self._hidden = np.zeros(int(actor.layout[:, 1].sum()), actor.params.dtype)
        self._noise, self._zeros = np.zeros(n_act), np.zeros(n_act)
        self._action = np.zeros(n_act, actor.params.dtype)

    def act(self, obs, rng=None, temperature=1.0):
        """The mean action tanh(f(obs)), or with ``rng`` a sample of N(mean, (temperature * std)^2)
        clipped to [-1, 1]. ``obs``: a normalised observation (obs_dim,) of the actor's dtype."""
        noise = self._zeros if rng is None else rng.standard_normal(out=self._noise)
        gaussian_action_kernel(self.actor.params, self.actor.layout, obs, self._hidden, noise,
                               0.0 if rng is None else float(temperature), self.log_std_min, self.log_std_max,
                               self._action)
        return self._action


class GDEFinetuner:
    """Algorithm 1 as a learner of ``finetune.loop.run_online``.

    explore_action: a sample of the exploration policy pi_b, N(tanh(f_mu(s)), std_mu^2) clipped to [-1, 1];
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
        c = learner.backbone.config
        self.explore_policy = PolicyActions(learner.explore, c)           # pi_b (mu)
        self.exploit_policy = PolicyActions(learner.backbone.actor, c)    # pi_e (phi)
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
