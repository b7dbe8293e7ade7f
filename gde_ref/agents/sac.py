"""Soft Actor-Critic (Haarnoja et al., 2018, "Soft actor-critic algorithms and applications").

The FromScratch baseline of the paper (Section 5.1) and the agent that generates D4RL-protocol datasets.
One update step, in the order of the SAC paper's Algorithm 1 (``sac_update_kernel``):

1. ``critic_step``       each twin regresses the soft target (a' ~ pi(.|s'), target critics Q'_k):
                             y = r + discount * (min(Q1', Q2')(s', a') - alpha log pi(a'|s'))
                             L_Q = mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2
2. ``actor_step``        reparameterised a = tanh(mu(s) + sigma(s) eps), eps ~ N(0, I):
                             L_pi = mean [alpha log pi(a|s) - min(Q1, Q2)(s, a)]
                         with the *updated* critics; dL/da comes from the smaller twin's input gradient.
3. ``temperature_step``  L(alpha) = -mean alpha (log pi(a|s) + H_target), H_target = -|A| (paper B.3),
                         an Adam step on log alpha; log pi(a|s) is the actor step's (before its update).
4. Polyak averaging of the target critics.

The actor is an MLP [obs, *hidden, 2 |A|]: its first |A| outputs are the mean mu in the pre-tanh (u)
space, its last |A| the raw log-std, squashed smoothly into [log_std_min, log_std_max] (``bounded_log_std``).
Both the critic and the actor step use alpha = exp(log alpha) from before the temperature step.

Randomness: the two noise arrays eps' (for a') and eps (for a) are drawn in Python, in that order, from
the ``numpy.random.Generator`` given to ``update``; the kernel itself is a pure function of its arrays.
"""
import math

import numpy as np

from gde_ref.agents.iql import min_of_twins, twin_min_action_gradient
from gde_ref.config import SACConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.baselines import sac_actor_loss_kernel, sac_alpha_loss_kernel
from gde_ref.losses.equations import td_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import Net, concat_columns, frozen_net, net_adam, net_backward, net_forward, net_polyak, \
    trained_net
from gde_ref.nn.checks import check_array
from gde_ref.nn.distributions import (bounded_log_std_backward_kernel, bounded_log_std_kernel,
                                      squashed_gaussian_backward_kernel, squashed_gaussian_sample_kernel)
from gde_ref.nn.kernels import kernel, mlp_forward_single

STAT_NAMES = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean")


# ------------------------------------------------------------------------------------------------
# kernels: the pieces of one update step
# ------------------------------------------------------------------------------------------------
@kernel
def squashed_gaussian_policy(actor, obs, noise, log_std_min, log_std_max):
    """pi(.|s) at obs (B, n_obs) and the reparameterised sample a = tanh(mu + sigma * noise).

    Returns action (B, A), log pi(a|s) (B,), log_std (B, A) and the network's raw log-std output (B, A)
    (kept for the backward pass, which also needs this forward's activations in actor.acts).
    """
    out = net_forward(actor, obs)                  # (B, 2A): [mu | raw log-std]
    n, n_act = noise.shape
    mean = out[:, :n_act].copy()
    raw_log_std = out[:, n_act:].copy()
    log_std = np.empty_like(mean)
    bounded_log_std_kernel(raw_log_std, log_std_min, log_std_max, log_std)
    action, logp = np.empty_like(mean), np.empty(n, mean.dtype)
    squashed_gaussian_sample_kernel(mean, log_std, noise, action, logp)
    return action, logp, log_std, raw_log_std


@kernel
def actor_backward(actor, obs, action, log_std, raw_log_std, noise, d_action, d_logp, log_std_min, log_std_max):
    """Backpropagate dL/da (B, A) and dL/dlog pi (B,) through the sample, the log-std bound and the MLP
    into actor.grads (after ``squashed_gaussian_policy(actor, obs, ...)``)."""
    n, n_act = action.shape
    d_mean, d_log_std = np.empty_like(action), np.empty_like(action)
    squashed_gaussian_backward_kernel(action, log_std, noise, d_action, d_logp, d_mean, d_log_std)
    d_raw_log_std = np.empty_like(action)
    bounded_log_std_backward_kernel(raw_log_std, log_std_min, log_std_max, d_log_std, d_raw_log_std)
    d_out = np.empty((n, 2 * n_act), action.dtype)
    d_out[:, :n_act] = d_mean
    d_out[:, n_act:] = d_raw_log_std
    net_backward(actor, obs, d_out, True, False)


@kernel
def critic_step(q1, q2, q1_target, q2_target, actor, obs, actions, rewards, discounts, next_obs, noise_next,
                obs_actions, alpha, log_std_min, log_std_max, lr):
    """One Adam step of each critic towards the soft target y (module docstring, step 1).

    Returns the loss (sum of the two twins' mean squared errors) and the mean of Q1(s, a).
    ``obs_actions`` (B, n_obs + A) is scratch for the critics' inputs.
    """
    n = obs.shape[0]
    next_action, next_logp, _, _ = squashed_gaussian_policy(actor, next_obs, noise_next, log_std_min, log_std_max)
    concat_columns(next_obs, next_action, obs_actions)
    next_q = min_of_twins(q1_target, q2_target, obs_actions)[0]       # min(Q1', Q2')(s', a')
    y = np.empty(n, obs.dtype)
    for i in range(n):
        y[i] = rewards[i] + discounts[i] * (next_q[i] - alpha * next_logp[i])
    concat_columns(obs, actions, obs_actions)
    d_q1, d_q2 = np.empty((n, 1), obs.dtype), np.empty((n, 1), obs.dtype)
    q1_out = net_forward(q1, obs_actions)[:, 0]
    loss = td_loss_kernel(q1_out, y, d_q1[:, 0])
    q_mean = q1_out.mean()
    net_backward(q1, obs_actions, d_q1, True, False)
    net_adam(q1, lr)
    loss += td_loss_kernel(net_forward(q2, obs_actions)[:, 0], y, d_q2[:, 0])
    net_backward(q2, obs_actions, d_q2, True, False)
    net_adam(q2, lr)
    return loss, q_mean


@kernel
def actor_step(actor, q1, q2, obs, noise, obs_actions, alpha, log_std_min, log_std_max, lr):
    """One Adam step of the actor on L_pi (module docstring, step 2). Returns (loss, log pi(a|s) (B,)).

    The critics are not trained here: only their input gradient dQ/da is taken, from the smaller twin.
    """
    n, obs_dim = obs.shape
    action, logp, log_std, raw_log_std = squashed_gaussian_policy(actor, obs, noise, log_std_min, log_std_max)
    concat_columns(obs, action, obs_actions)
    q_min, q1_out, q2_out = min_of_twins(q1, q2, obs_actions)
    d_logp, d_q_min = np.empty(n, obs.dtype), np.empty(n, obs.dtype)
    loss = sac_actor_loss_kernel(logp, q_min, alpha, d_logp, d_q_min)
    d_action = np.zeros_like(action)
    twin_min_action_gradient(q1, q2, obs_actions, q1_out, q2_out, d_q_min, obs_dim, d_action)
    actor_backward(actor, obs, action, log_std, raw_log_std, noise, d_action, d_logp, log_std_min, log_std_max)
    net_adam(actor, lr)
    return loss, logp


@kernel
def temperature_step(temperature, logp, target_entropy, lr):
    """One Adam step of log alpha on L(alpha) (module docstring, step 3). Returns the loss.

    ``temperature`` is a one-parameter Net: params = [log alpha], with its gradient and Adam state.
    """
    loss, grad = sac_alpha_loss_kernel(temperature.params[0], logp, target_entropy)
    temperature.grads[0] = grad
    net_adam(temperature, lr)
    return loss


@kernel
def sac_update_kernel(obs, actions, rewards, discounts, next_obs, noise_next, noise, q1, q2, q1_target, q2_target,
                      actor, temperature, obs_actions, polyak, critic_lr, actor_lr, alpha_lr, target_entropy,
                      log_std_min, log_std_max, stats):
    """One SAC update step on a batch (critics, actor, temperature, targets); fills ``stats`` (6,)."""
    alpha = np.exp(temperature.params[0])
    stats[0], stats[5] = critic_step(q1, q2, q1_target, q2_target, actor, obs, actions, rewards, discounts,
                                     next_obs, noise_next, obs_actions, alpha, log_std_min, log_std_max, critic_lr)
    stats[1], logp = actor_step(actor, q1, q2, obs, noise, obs_actions, alpha, log_std_min, log_std_max, actor_lr)
    stats[2] = temperature_step(temperature, logp, target_entropy, alpha_lr)
    net_polyak(q1_target, q1, polyak)
    net_polyak(q2_target, q2, polyak)
    stats[3] = alpha
    stats[4] = -logp.mean()


@kernel
def sac_action_kernel(params, layout, obs, hidden, noise, log_std_min, log_std_max, log_std, action):
    """One observation: action = tanh(mu + sigma * noise) (A,); noise = 0 gives the mean action tanh(mu).

    ``hidden``: activations scratch; ``log_std`` (1, A) scratch. Nothing is allocated.
    """
    out = mlp_forward_single(params, layout, obs, hidden)
    n_act = action.shape[0]
    bounded_log_std_kernel(out[n_act:].reshape((1, n_act)), log_std_min, log_std_max, log_std)
    for j in range(n_act):
        action[j] = np.tanh(out[j] + np.exp(log_std[0, j]) * noise[j])


# ------------------------------------------------------------------------------------------------
# the agent
# ------------------------------------------------------------------------------------------------
class SACAgent:
    """SAC's networks, optimiser states, temperature and update step.

    Networks: twin critics ``q1``, ``q2`` ([obs+act, *hidden, 1]) and their targets (parameter copies
    ``q1_target``, ``q2_target``), the actor ``actor`` ([obs, *hidden, 2 act]: mean and raw log-std).
    ``log_alpha`` (1,) is the log-temperature, trained by Adam (``alpha_adam``) towards the target entropy.
    Actions live in [-1, 1]^A: rescale them to the environment's bounds outside.
    """

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = config or SACConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        c = self.config
        self.target_entropy = -float(act_dim) if c.target_entropy is None else float(c.target_entropy)
        rng = np.random.default_rng(seed)
        hidden = list(c.hidden)
        self.q1 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.q2 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.actor = MLP([obs_dim, *hidden, 2 * act_dim], rng, dtype)
        self.q1_target, self.q2_target = self.q1.params.copy(), self.q2.params.copy()
        self.adam = {name: AdamState(getattr(self, name).n_params, dtype) for name in ("q1", "q2", "actor")}
        self.log_alpha = np.array([math.log(c.initial_alpha)], dtype)
        self.alpha_adam = AdamState(1, dtype)
        self._alpha_grad = np.zeros(1, dtype)
        self._bundles = {}
        self._act_hidden = np.zeros(int(self.actor.layout[:, 1].sum()), dtype)
        self._act_log_std = np.zeros((1, act_dim), dtype)
        self._act_noise = np.zeros(act_dim, dtype)
        self._action = np.zeros(act_dim, dtype)

    @property
    def alpha(self):
        """The current temperature alpha = exp(log alpha)."""
        return float(np.exp(self.log_alpha[0]))

    def bundles(self, batch_size):
        """The kernels' view of every network for a batch size (cached: the same arrays every step)."""
        b = self._bundles.get(batch_size)
        if b is None:
            b = {name: trained_net(getattr(self, name), self.adam[name], batch_size) for name in ("q1", "q2", "actor")}
            b["q1_target"] = frozen_net(self.q1_target, self.q1, batch_size)
            b["q2_target"] = frozen_net(self.q2_target, self.q2, batch_size)
            empty = np.zeros(0, self.dtype)  # log alpha as a one-parameter Net: no layers, no activations
            b["temperature"] = Net(self.log_alpha, np.zeros((0, 5), np.int64), self._alpha_grad, self.alpha_adam.m,
                                   self.alpha_adam.v, self.alpha_adam.t, empty, empty, np.zeros((0, 0), self.dtype))
            b["obs_actions"] = np.zeros((batch_size, self.obs_dim + self.act_dim), self.dtype)
            b["noise"] = np.zeros((2, batch_size, self.act_dim), self.dtype)
            self._bundles[batch_size] = b
        return b

    def update(self, batch, rng):
        """One SAC step on a ``gde_ref.data.Batch``; returns a dict of losses and statistics.

        ``rng`` (numpy.random.Generator) draws eps' for a' ~ pi(.|s') and then eps for a ~ pi(.|s),
        each (B, A) standard normal in the agent's dtype.
        """
        obs, actions, rewards, discounts, next_obs = check_batch_arrays(
            "SACAgent.update", batch, self.obs_dim, self.act_dim, self.dtype)
        _check_rng("SACAgent.update", rng)
        c = self.config
        b = self.bundles(obs.shape[0])
        noise = b["noise"]
        rng.standard_normal(out=noise[0], dtype=self.dtype)
        rng.standard_normal(out=noise[1], dtype=self.dtype)
        stats = np.zeros(len(STAT_NAMES))
        sac_update_kernel(obs, actions, rewards, discounts, next_obs, noise[0], noise[1], b["q1"], b["q2"],
                          b["q1_target"], b["q2_target"], b["actor"], b["temperature"], b["obs_actions"], c.polyak,
                          c.critic_lr, c.actor_lr, c.alpha_lr, self.target_entropy, c.log_std_min, c.log_std_max,
                          stats)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def act(self, obs, rng=None):
        """Action in [-1, 1]^A for one observation (obs_dim,): the mean tanh(mu(s)) when ``rng`` is None
        (evaluation), else a sample tanh(mu + sigma eps) with eps drawn from ``rng`` (exploration).

        The action is written into an internal buffer, valid until the next call (copy it to keep it).
        """
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("SACAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        if rng is None:
            self._act_noise[:] = 0.0
        else:
            _check_rng("SACAgent.act", rng)
            rng.standard_normal(out=self._act_noise, dtype=self.dtype)
        c = self.config
        sac_action_kernel(self.actor.params, self.actor.layout, obs, self._act_hidden, self._act_noise,
                          c.log_std_min, c.log_std_max, self._act_log_std, self._action)
        return self._action


def _check_rng(name, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} needs rng, a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
