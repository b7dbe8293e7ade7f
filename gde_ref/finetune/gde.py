"""Guided Decoupled Exploration (paper Section 4.2.3, Algorithm 1): the three policies and their update.

    Initialise exploration mu, exploitation phi and teacher phi-bar policies from the offline actor.
    every step:
        update the critics by the backbone's critic loss        (IQL: Eq. 2, Eq. 3)
        update the exploitation policy by the backbone's actor loss   (IQL: Eq. 4)
        update the exploration policy by Eq. 5:
            L(mu) = -E[min(Q1, Q2)(s, pi_b(s))] + rho KL(pi_t(.|s) || pi_b(.|s))
    every F steps: if EvalPolicy(teacher) < EvalPolicy(exploitation): teacher <- exploitation

This module holds the update step (``gde_update_kernel``: the IQL step followed by
``exploration_actor_step``) and the ``GDELearner`` that owns the three policies.
"""
import numpy as np

from gde_ref.agents.iql import STAT_NAMES as IQL_STAT_NAMES
from gde_ref.agents.iql import IQLAgent, actor_backward, gaussian_actor, iql_update_kernel
from gde_ref.config import GDEConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.equations import gde_exploration_loss_kernel
from gde_ref.nn import AdamState
from gde_ref.nn.bundle import concat_columns, frozen_net, net_adam, net_backward, net_forward, trained_net
from gde_ref.nn.checks import check_range
from gde_ref.nn.kernels import kernel

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
    q1_out = net_forward(q1, obs_actions)
    q2_out = net_forward(q2, obs_actions)
    q_pi = np.empty(n, obs.dtype)
    for i in range(n):
        q_pi[i] = min(q1_out[i, 0], q2_out[i, 0])
    d_q_pi = np.empty(n, obs.dtype)
    d_mean_b = np.empty_like(mean_b)
    d_log_std_b = np.empty_like(log_std_b)
    loss = gde_exploration_loss_kernel(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight,
                                       d_q_pi, d_mean_b, d_log_std_b)
    # -Q term: route dL/dq_pi to the smaller twin, then back through the critic to its action input
    d_q1, d_q2 = np.zeros((n, 1), obs.dtype), np.zeros((n, 1), obs.dtype)
    for i in range(n):
        if q1_out[i, 0] <= q2_out[i, 0]:
            d_q1[i, 0] = d_q_pi[i]
        else:
            d_q2[i, 0] = d_q_pi[i]
    net_backward(q1, obs_actions, d_q1, False, True)
    net_backward(q2, obs_actions, d_q2, False, True)
    for i in range(n):
        for j in range(mean_b.shape[1]):
            d_mean_b[i, j] += q1.dx[i, obs_dim + j] + q2.dx[i, obs_dim + j]
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


class GDELearner:
    """GDE's three policies on an IQL backbone.

    ``backbone.actor`` is the exploitation policy pi_e (phi), ``explore`` the exploration policy pi_b
    (mu) with its own Adam state, ``teacher_params`` the teacher pi_t (phi-bar). All three start from the
    offline actor (Algorithm 1, "Initialize").
    """

    def __init__(self, backbone: IQLAgent, config=None):
        self.backbone = backbone
        self.config = config or GDEConfig()
        self.explore = backbone.actor.copy()
        self.explore_adam = AdamState(self.explore.n_params, backbone.dtype)
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

    def update_teacher(self):
        """Teacher <- exploitation policy (phi-bar <- phi), in place so compiled bundles stay valid."""
        self.teacher_params[:] = self.backbone.actor.params
