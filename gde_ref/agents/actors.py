"""The actors and their steps, shared by every backbone and by GDE's exploration policy.

An actor is an MLP whose outputs f(s) give the mean action tanh(f(s)); an ``ActorSpec`` record says what
distribution it stands for:

    GAUSSIAN    N(tanh(f(s)), sigma^2), log sigma a learned state-independent vector stored after the
                MLP's parameters (``MLP(..., extra=act_dim)``), clipped to [log_std_min, log_std_max] (IQL)
    FIXED_STD   a deterministic actor a = tanh(f(s)) read as N(tanh(f(s)), fixed_std^2) (TD3+BC): acting
                adds N(0, fixed_std^2) noise, and a KL between two such actors is a scaled squared distance,
                KL(N(m_t, s^2) || N(m_b, s^2)) = |m_t - m_b|^2 / (2 s^2)
    SQUASHED    SAC's tanh(N(mu(s), sigma(s)^2)), outputs [mu | raw log-std] squashed into [log_std_min,
                log_std_max] (SAC, CQL); a KL between two is the KL of their pre-tanh Gaussians (exact: tanh is
                a bijection), each sample with its own std

Steps (one Adam step each, returning the loss):

    awr_step(actor, obs, actions, q, v, hyper)              Eq. 4, IQL's exploitation actor
    guided_awr_step(actor, teacher, obs, ..., kl_weight)    Eq. 4 + rho KL(pi_t || pi_e) (GDE w/o explore)
    exploration_step(explore, teacher, critics, obs, hyper) Eq. 5: -min(Q1, Q2)(s, pi_b(s)) + rho KL(pi_t || pi_b);
                                                            with rho = 0 the deterministic policy gradient (TD3)
    squashed_exploration_step(...)                          Eq. 5 for SQUASHED actors (Q at tanh(mu_b(s)))

``exploration_kernel(spec)`` picks Eq. 5's step for an actor; the squashed Gaussian's pieces
(``squashed_gaussian_policy``, its backward, ``squashed_kl``) serve SAC and CQL too; ``policy_action`` is the one
single-observation action kernel of every continuous actor.
"""
from collections import namedtuple

import numpy as np

from gde_ref.agents.critics import twin_min, twin_min_action_gradient
from gde_ref.losses.equations import awr_loss_kernel, gde_exploration_loss_kernel
from gde_ref.nn.bundle import concat_columns, n_mlp_params, net_adam, net_backward, net_forward
from gde_ref.nn.distributions import (bounded_log_std_backward_kernel, bounded_log_std_kernel, clip_log_std_kernel,
                                      gaussian_kl_kernel, gaussian_log_prob_kernel, squashed_gaussian_backward_kernel,
                                      squashed_gaussian_sample_kernel, tanh_mean_backward_kernel, tanh_mean_kernel)
from gde_ref.nn.kernels import kernel, mlp_forward_single

GAUSSIAN, FIXED_STD, SQUASHED = 0, 1, 2
ActorSpec = namedtuple("ActorSpec", ["kind", "log_std_min", "log_std_max", "fixed_std"])
ActorSpec.__doc__ = """What distribution an actor's outputs stand for: kind (GAUSSIAN, FIXED_STD or SQUASHED),
the log-std bounds (GAUSSIAN: clip; SQUASHED: smooth squashing) and fixed_std (FIXED_STD's sigma)."""
ExploreHyper = namedtuple("ExploreHyper", ["kl_weight", "lr", "spec"])
ExploreHyper.__doc__ = """Eq. 5's step: kl_weight rho, the exploration policy's Adam learning rate, its ActorSpec."""


@kernel
def gaussian_actor(actor, obs, spec):
    """The actor's Gaussian at obs: (mean (B, A) = tanh(net(obs)), log_std (A,), d log_std / d param (A,)).

    GAUSSIAN: the clipped learned log-std (gradient mask 1 inside the bounds, 0 outside); FIXED_STD:
    log(fixed_std) for every dimension, with no parameter behind it (mask 0).
    """
    raw = net_forward(actor, obs)
    mean = np.empty_like(raw)
    tanh_mean_kernel(raw, mean)
    n_act = raw.shape[1]
    log_std, mask = np.empty(n_act, raw.dtype), np.zeros(n_act, raw.dtype)
    if spec.kind == GAUSSIAN:
        clip_log_std_kernel(actor.params[n_mlp_params(actor.layout):], spec.log_std_min, spec.log_std_max,
                            log_std, mask)
    else:
        log_std[:] = np.log(spec.fixed_std)
    return mean, log_std, mask


@kernel
def actor_backward(actor, obs, mean, d_mean, d_log_std, log_std_mask):
    """Backpropagate dL/dmean (B, A) and dL/dlog_std (A,) into actor.grads (MLP part, and the log-std
    parameters when the actor has them)."""
    d_raw = np.empty_like(mean)
    tanh_mean_backward_kernel(mean, d_mean, d_raw)
    net_backward(actor, obs, d_raw, True, False)
    n_mlp = n_mlp_params(actor.layout)
    for j in range(actor.params.shape[0] - n_mlp):
        actor.grads[n_mlp + j] = d_log_std[j] * log_std_mask[j]


@kernel
def weighted_log_likelihood(mean, log_std, actions, q, v, hyper, d_mean, d_log_std):
    """Eq. 4's loss -mean_i w_i log pi(a_i|s_i), w_i = min(exp(lambda (q_i - v_i)), max_weight), for the
    Gaussian N(mean (B, A), exp(log_std (A,))^2); ADDS its gradient to d_mean (B, A) and d_log_std (A,)."""
    n, n_act = mean.shape
    logp = np.empty(n, mean.dtype)
    dlogp_dmean, dlogp_dlogstd = np.empty_like(mean), np.empty_like(mean)
    gaussian_log_prob_kernel(mean, log_std, actions, logp, dlogp_dmean, dlogp_dlogstd)
    d_logp = np.empty(n, mean.dtype)
    loss = awr_loss_kernel(logp, q, v, hyper.awr_temperature, hyper.awr_max_weight, d_logp)
    for i in range(n):  # chain rule through log pi: dL/dmean = dL/dlogp * dlogp/dmean
        for j in range(n_act):
            d_mean[i, j] += d_logp[i] * dlogp_dmean[i, j]
            d_log_std[j] += d_logp[i] * dlogp_dlogstd[i, j]
    return loss


@kernel
def awr_step(actor, obs, actions, q, v, hyper):
    """Eq. 4: one Adam step (lr hyper.actor_lr) of the actor on the advantage-weighted log-likelihood of
    the batch's actions, with q = Q'(s, a) and v = V(s) held fixed. Returns the loss."""
    mean, log_std, mask = gaussian_actor(actor, obs, hyper.spec)
    d_mean, d_log_std = np.zeros_like(mean), np.zeros_like(log_std)
    loss = weighted_log_likelihood(mean, log_std, actions, q, v, hyper, d_mean, d_log_std)
    actor_backward(actor, obs, mean, d_mean, d_log_std, mask)
    net_adam(actor, hyper.actor_lr)
    return loss


@kernel
def guided_awr_step(actor, teacher, obs, actions, q, v, hyper, kl_weight):
    """The "w/o explore" ablation (Section 5.5): Eq. 4 plus Eq. 5's KL term on the exploitation actor,

        L(phi) = -mean_i w_i log pi_e(a_i|s_i) + rho mean_i KL(pi_t(.|s_i) || pi_e(.|s_i)).

    One Adam step; returns the loss. The KL gradient comes from Eq. 5's kernel with its Q term set to 0.
    """
    mean_t, log_std_t, _ = gaussian_actor(teacher, obs, hyper.spec)
    mean, log_std, mask = gaussian_actor(actor, obs, hyper.spec)
    n, n_act = mean.shape
    no_q, d_no_q = np.zeros(n, mean.dtype), np.empty(n, mean.dtype)
    d_mean, d_log_std = np.empty_like(mean), np.empty(n_act, mean.dtype)
    loss = gde_exploration_loss_kernel(no_q, (mean, log_std), (mean_t, log_std_t), kl_weight,  # rho KL
                                       d_no_q, d_mean, d_log_std)
    loss += weighted_log_likelihood(mean, log_std, actions, q, v, hyper, d_mean, d_log_std)   # Eq. 4
    actor_backward(actor, obs, mean, d_mean, d_log_std, mask)
    net_adam(actor, hyper.actor_lr)
    return loss


@kernel
def exploration_step(explore, teacher, critics, obs, hyper):
    """Eq. 5: one Adam step of the exploration policy pi_b on

        L(mu) = -mean_i min(Q1, Q2)(s_i, pi_b(s_i)) + rho mean_i KL(pi_t(.|s_i) || pi_b(.|s_i)).

    The action inside Q is pi_b's mean action tanh(net(s)) (deterministic, as in TD3); gradients reach it
    through the critics' input gradients, taken from whichever twin is smaller for each sample. With rho = 0
    (and the actor as its own 'teacher') it is TD3's deterministic policy-gradient step. Returns the loss.
    For GAUSSIAN and FIXED_STD actors; SQUASHED ones (CQL) take ``squashed_exploration_step``
    (``exploration_kernel`` picks the one for an actor).
    """
    n = obs.shape[0]
    mean_b, log_std_b, mask_b = gaussian_actor(explore, obs, hyper.spec)
    mean_t, log_std_t, _ = gaussian_actor(teacher, obs, hyper.spec)
    x = critics.inputs
    concat_columns(obs, mean_b, x)
    q_pi, q1_out, q2_out = twin_min(critics.q1, critics.q2, x)
    d_q_pi = np.empty(n, obs.dtype)
    d_mean_b = np.empty_like(mean_b)
    d_log_std_b = np.empty_like(log_std_b)
    loss = gde_exploration_loss_kernel(q_pi, (mean_b, log_std_b), (mean_t, log_std_t), hyper.kl_weight,
                                       d_q_pi, d_mean_b, d_log_std_b)
    # -Q term: through the smaller twin back to its action input, added to the KL term's gradient
    twin_min_action_gradient(critics.q1, critics.q2, x, q1_out, q2_out, d_q_pi, d_mean_b)
    actor_backward(explore, obs, mean_b, d_mean_b, d_log_std_b, mask_b)
    net_adam(explore, hyper.lr)
    return loss


# ------------------------------------------------------------------------------------------------
# the squashed Gaussian (SAC, CQL): pi(.|s) = tanh(N(mu(s), sigma(s)^2)), outputs [mu | raw log-std]
# ------------------------------------------------------------------------------------------------
@kernel
def squashed_gaussian_policy(actor, obs, noise, hyper):
    """pi(.|s) at obs (B, n_obs) and the reparameterised sample a = tanh(mu + sigma * noise).

    Returns action (B, A), log pi(a|s) (B,), log_std (B, A) and the network's raw log-std output (B, A)
    (kept for the backward pass, which also needs this forward's activations in actor.acts).
    """
    out = net_forward(actor, obs)                  # (B, 2A): [mu | raw log-std]
    n, n_act = noise.shape
    mean = out[:, :n_act].copy()
    raw_log_std = out[:, n_act:].copy()
    log_std = np.empty_like(mean)
    bounded_log_std_kernel(raw_log_std, hyper.log_std_min, hyper.log_std_max, log_std)
    action, logp = np.empty_like(mean), np.empty(n, mean.dtype)
    squashed_gaussian_sample_kernel(mean, log_std, noise, action, logp)
    return action, logp, log_std, raw_log_std


@kernel
def squashed_actor_backward(actor, obs, sample, noise, d_action, d_logp, hyper):
    """Backpropagate dL/da (B, A) and dL/dlog pi (B,) through the sample, the log-std bound and the MLP
    into actor.grads, after ``sample = squashed_gaussian_policy(actor, obs, noise, hyper)``."""
    action, _, log_std, raw_log_std = sample
    d_mean, d_log_std = np.empty_like(action), np.empty_like(action)
    squashed_gaussian_backward_kernel(action, log_std, noise, d_action, d_logp, d_mean, d_log_std)
    squashed_backward(actor, obs, raw_log_std, d_mean, d_log_std, hyper)


@kernel
def squashed_gaussian(actor, obs, spec):
    """The pre-tanh Gaussian of a SQUASHED actor at obs: (mu (B, A), log_std (B, A), raw log-std (B, A))."""
    out = net_forward(actor, obs)
    n_act = out.shape[1] // 2
    mu, raw = out[:, :n_act].copy(), out[:, n_act:].copy()
    log_std = np.empty_like(mu)
    bounded_log_std_kernel(raw, spec.log_std_min, spec.log_std_max, log_std)
    return mu, log_std, raw


@kernel
def squashed_kl(teacher, student, kl_weight, d_mu, d_log_std):
    """rho mean_i KL(N(mu_t(s_i), sigma_t(s_i)^2) || N(mu(s_i), sigma(s_i)^2)) between the pre-tanh Gaussians
    (tanh is a bijection, so this is the KL of the squashed policies), teacher = (mu_t, log_std_t), student =
    (mu, log_std), each (B, A). ADDS its gradient w.r.t. mu and log_std to d_mu, d_log_std; returns the term."""
    (mu_t, log_std_t), (mu, log_std) = teacher, student
    n, n_act = mu.shape
    kl, d_m, d_l = np.empty(1, mu.dtype), np.empty((1, n_act), mu.dtype), np.empty((1, n_act), mu.dtype)
    total = 0.0
    for i in range(n):   # one row at a time: each sample has its own std
        gaussian_kl_kernel(mu_t[i:i + 1], log_std_t[i], mu[i:i + 1], log_std[i], kl, d_m, d_l)
        total += kl[0]
        for j in range(n_act):
            d_mu[i, j] += kl_weight / n * d_m[0, j]
            d_log_std[i, j] += kl_weight / n * d_l[0, j]
    return kl_weight * total / n


@kernel
def squashed_backward(actor, obs, raw_log_std, d_mu, d_log_std, bounds):
    """Backpropagate dL/dmu and dL/dlog_std (B, A) through the log-std bound (``bounds``: any record with
    log_std_min, log_std_max) and the MLP into actor.grads."""
    n, n_act = d_mu.shape
    d_raw = np.empty_like(d_mu)
    bounded_log_std_backward_kernel(raw_log_std, bounds.log_std_min, bounds.log_std_max, d_log_std, d_raw)
    d_out = np.empty((n, 2 * n_act), d_mu.dtype)
    d_out[:, :n_act] = d_mu
    d_out[:, n_act:] = d_raw
    net_backward(actor, obs, d_out, True, False)


@kernel
def squashed_exploration_step(explore, teacher, critics, obs, hyper):
    """Eq. 5 for SQUASHED actors (CQL): the Q term at pi_b's deterministic action tanh(mu_b(s)), the KL between
    the pre-tanh Gaussians with their state-dependent stds (``squashed_kl``). One Adam step; returns the loss."""
    n = obs.shape[0]
    mu_b, log_std_b, raw_b = squashed_gaussian(explore, obs, hyper.spec)
    mu_t, log_std_t, _ = squashed_gaussian(teacher, obs, hyper.spec)
    action = np.tanh(mu_b)
    x = critics.inputs
    concat_columns(obs, action, x)
    q_pi, q1_out, q2_out = twin_min(critics.q1, critics.q2, x)
    d_q_pi = np.full(n, -1.0 / n, obs.dtype)
    d_action = np.zeros_like(action)
    twin_min_action_gradient(critics.q1, critics.q2, x, q1_out, q2_out, d_q_pi, d_action)
    d_mu = np.empty_like(action)
    for i in range(n):
        for j in range(action.shape[1]):
            d_mu[i, j] = d_action[i, j] * (1.0 - action[i, j] * action[i, j])   # through tanh
    d_log_std = np.zeros_like(log_std_b)
    loss = -q_pi.mean() + squashed_kl((mu_t, log_std_t), (mu_b, log_std_b), hyper.kl_weight, d_mu, d_log_std)
    squashed_backward(explore, obs, raw_b, d_mu, d_log_std, hyper.spec)
    net_adam(explore, hyper.lr)
    return loss


def exploration_kernel(spec):
    """Eq. 5's step for an actor of this ``ActorSpec``: ``exploration_step``, or ``squashed_exploration_step``
    for SQUASHED actors (chosen here, in Python, so that each compiles only what its actors use)."""
    return squashed_exploration_step if spec.kind == SQUASHED else exploration_step


@kernel
def policy_action(params, layout, obs, hidden, noise, scale, spec, action):
    """One observation (obs_dim,) of any continuous actor, written into ``action`` (A,); allocates nothing.

        GAUSSIAN:   clip(tanh(f(s)) + scale * exp(clip(log_std)) * noise, -1, 1)
        FIXED_STD:  clip(tanh(f(s)) + scale * fixed_std * noise, -1, 1)
        SQUASHED:   tanh(mu(s) + scale * exp(bounded(raw log-std(s))) * noise)

    scale = 0 gives the mean action; 1 a sample of the actor's distribution; t the Fig. 2d temperature.
    ``hidden``: activation scratch of sum(widths) floats.
    """
    out = mlp_forward_single(params, layout, obs, hidden)
    n_act = action.shape[0]
    if spec.kind == SQUASHED:   # the log-std goes through ``action`` (as bounded_log_std_kernel's output)
        bounded_log_std_kernel(out[n_act:].reshape((1, n_act)), spec.log_std_min, spec.log_std_max,
                               action.reshape((1, n_act)))
        for j in range(n_act):
            action[j] = np.tanh(out[j] + scale * np.exp(action[j]) * noise[j])
        return
    n_mlp = n_mlp_params(layout)
    for j in range(n_act):
        if spec.kind == GAUSSIAN:
            std = np.exp(min(max(params[n_mlp + j], spec.log_std_min), spec.log_std_max))
        else:
            std = spec.fixed_std
        a = np.tanh(out[j]) + scale * std * noise[j]
        action[j] = min(max(a, -1.0), 1.0)


class PolicyActions:
    """Single-observation actions of an actor (an MLP) described by ``spec``, without allocating: the
    returned action is an internal buffer, valid until the next call."""

    def __init__(self, actor, spec):
        self.actor, self.spec = actor, spec
        n_act = int(actor.layout[-1, 1]) // (2 if spec.kind == SQUASHED else 1)
        self._hidden = np.zeros(int(actor.layout[:, 1].sum()), actor.params.dtype)
        self._noise, self._zeros = np.zeros(n_act), np.zeros(n_act)
        self._action = np.zeros(n_act, actor.params.dtype)

    def act(self, obs, rng=None, temperature=1.0):
        """The mean action, or with ``rng`` a sample with the std multiplied by ``temperature``.
        ``obs``: a normalised observation (obs_dim,) of the actor's dtype."""
        noise = self._zeros if rng is None else rng.standard_normal(out=self._noise)
        policy_action(self.actor.params, self.actor.layout, obs, self._hidden, noise,
                      0.0 if rng is None else float(temperature), self.spec, self._action)
        return self._action
