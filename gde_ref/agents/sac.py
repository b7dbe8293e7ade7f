"""Soft Actor-Critic (Haarnoja et al., 2018, "Soft actor-critic algorithms and applications").

The FromScratch baseline of the paper (Section 5.1) and the agent that generates D4RL-protocol datasets.
One update step, ``sac_update(batch, noise, nets, hyper, stats)``, in the order of the SAC paper's Algorithm 1:

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
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import (SQUASHED, ActorSpec, PolicyActions, policy_action, squashed_actor_backward,
                                   squashed_gaussian_policy)
from gde_ref.agents.critics import Twins, twin_min, twin_min_action_gradient, twin_polyak, twin_regression_step
from gde_ref.config import SACConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.baselines import sac_actor_loss_kernel, sac_alpha_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, net_adam, scalar_net, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.kernels import kernel

SACNets = namedtuple("SACNets", ["critics", "actor", "temperature"])
SACNets.__doc__ = "SAC's networks for the kernels: critics (TwinCritics), actor, temperature (log alpha as a Net)."
SACHyper = namedtuple("SACHyper", ["polyak", "critic_lr", "actor_lr", "alpha_lr", "target_entropy", "log_std_min",
                                   "log_std_max"])
STAT_NAMES = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean")
CRITIC_LOSS, ACTOR_LOSS, ALPHA_LOSS, ALPHA, ENTROPY, Q_MEAN = range(len(STAT_NAMES))


# ------------------------------------------------------------------------------------------------
# kernels: the pieces of one update step
# ------------------------------------------------------------------------------------------------
@kernel
def critic_step(critics, actor, batch, noise_next, alpha, hyper):
    """One Adam step of each critic towards the soft target y (module docstring, step 1).

    Returns the loss (sum of the two twins' mean squared errors) and the mean of Q1(s, a).
    """
    n = batch.obs.shape[0]
    x = critics.inputs
    next_action, next_logp, _, _ = squashed_gaussian_policy(actor, batch.next_obs, noise_next, hyper)
    concat_columns(batch.next_obs, next_action, x)
    next_q = twin_min(critics.q1_target, critics.q2_target, x)[0]       # min(Q1', Q2')(s', a')
    y = np.empty(n, x.dtype)
    for i in range(n):
        y[i] = batch.rewards[i] + batch.discounts[i] * (next_q[i] - alpha * next_logp[i])
    concat_columns(batch.obs, batch.actions, x)
    return twin_regression_step(critics, x, y, hyper.critic_lr)


@kernel
def actor_step(actor, critics, obs, noise, alpha, hyper):
    """One Adam step of the actor on L_pi (module docstring, step 2). Returns (loss, log pi(a|s) (B,)).

    The critics are not trained here: only their input gradient dQ/da is taken, from the smaller twin.
    """
    n = obs.shape[0]
    sample = squashed_gaussian_policy(actor, obs, noise, hyper)
    action, logp = sample[0], sample[1]
    concat_columns(obs, action, critics.inputs)
    q_min, q1_out, q2_out = twin_min(critics.q1, critics.q2, critics.inputs)
    d_logp, d_q_min = np.empty(n, obs.dtype), np.empty(n, obs.dtype)
    loss = sac_actor_loss_kernel(logp, q_min, alpha, d_logp, d_q_min)
    d_action = np.zeros_like(action)
    twin_min_action_gradient(critics.q1, critics.q2, critics.inputs, q1_out, q2_out, d_q_min, d_action)
    squashed_actor_backward(actor, obs, sample, noise, d_action, d_logp, hyper)
    net_adam(actor, hyper.actor_lr)
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
def sac_update(batch, noise, nets, hyper, stats):
    """One SAC update step on a batch (critics, actor, temperature, targets); noise (2, B, A) holds eps'
    (for a' ~ pi(.|s')) and eps (for a ~ pi(.|s)); fills ``stats``."""
    alpha = np.exp(nets.temperature.params[0])
    stats[CRITIC_LOSS], stats[Q_MEAN] = critic_step(nets.critics, nets.actor, batch, noise[0], alpha, hyper)
    stats[ACTOR_LOSS], logp = actor_step(nets.actor, nets.critics, batch.obs, noise[1], alpha, hyper)
    stats[ALPHA_LOSS] = temperature_step(nets.temperature, logp, hyper.target_entropy, hyper.alpha_lr)
    twin_polyak(nets.critics, hyper.polyak)
    stats[ALPHA] = alpha
    stats[ENTROPY] = -logp.mean()


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

    name = "sac"
    STAT_NAMES = STAT_NAMES

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = c = config or SACConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        self.target_entropy = -float(act_dim) if c.target_entropy is None else float(c.target_entropy)
        rng = np.random.default_rng(seed)
        self.twins = Twins(obs_dim, act_dim, c.hidden, rng, dtype)
        self.actor = MLP([obs_dim, *c.hidden, 2 * act_dim], rng, dtype)
        self.adam = {**self.twins.adam, "actor": AdamState(self.actor.n_params, dtype)}
        self.log_alpha = np.array([math.log(c.initial_alpha)], dtype)
        self.alpha_adam = AdamState(1, dtype)
        self._alpha_grad = np.zeros(1, dtype)
        self.spec = ActorSpec(SQUASHED, c.log_std_min, c.log_std_max, 0.0)
        self.hyper = SACHyper(c.polyak, c.critic_lr, c.actor_lr, c.alpha_lr, self.target_entropy, c.log_std_min,
                              c.log_std_max)
        self._nets, self._noise = {}, {}
        self._policy = PolicyActions(self.actor, self.spec)
        self._act_noise = np.zeros(act_dim, dtype)

    q1 = property(lambda self: self.twins.q1)
    q2 = property(lambda self: self.twins.q2)
    q1_target = property(lambda self: self.twins.q1_target)
    q2_target = property(lambda self: self.twins.q2_target)

    @property
    def alpha(self):
        """The current temperature alpha = exp(log alpha)."""
        return float(np.exp(self.log_alpha[0]))

    def nets(self, batch_size):
        """The kernels' ``SACNets`` for a batch size (cached: the same arrays every step)."""
        r = self._nets.get(batch_size)
        if r is None:
            r = self._nets[batch_size] = SACNets(self.twins.record(batch_size),
                                                 trained_net(self.actor, self.adam["actor"], batch_size),
                                                 scalar_net(self.log_alpha, self._alpha_grad, self.alpha_adam))
            self._noise[batch_size] = np.zeros((2, batch_size, self.act_dim), self.dtype)
        return r

    def update(self, batch, rng):
        """One SAC step on a ``gde_ref.data.Batch``; returns a dict of losses and statistics.

        ``rng`` (numpy.random.Generator) draws eps' for a' ~ pi(.|s') and then eps for a ~ pi(.|s),
        each (B, A) standard normal in the agent's dtype.
        """
        batch = check_batch_arrays("SACAgent.update", batch, self.obs_dim, self.act_dim, self.dtype)
        _check_rng("SACAgent.update", rng)
        n = batch.obs.shape[0]
        nets = self.nets(n)
        noise = self._noise[n]
        rng.standard_normal(out=noise[0], dtype=self.dtype)
        rng.standard_normal(out=noise[1], dtype=self.dtype)
        stats = np.zeros(len(STAT_NAMES))
        sac_update(batch, noise, nets, self.hyper, stats)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def act(self, obs, rng=None):
        """Action in [-1, 1]^A for one observation (obs_dim,): the mean tanh(mu(s)) when ``rng`` is None
        (evaluation), else a sample tanh(mu + sigma eps) with eps drawn from ``rng`` (exploration), in the
        agent's dtype (as the datasets were generated).

        The action is written into an internal buffer, valid until the next call (copy it to keep it).
        """
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("SACAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        if rng is None:
            self._act_noise[:] = 0.0
        else:
            _check_rng("SACAgent.act", rng)
            rng.standard_normal(out=self._act_noise, dtype=self.dtype)
        p = self._policy   # the noise is in the agent's dtype, so is the arithmetic: scale 1 of that dtype
        policy_action(p.actor.params, p.actor.layout, obs, p._hidden, self._act_noise, self.dtype.type(1.0),
                      self.spec, p._action)
        return p._action

    def state(self):
        """Every array by name, by reference: parameters, targets, log alpha, Adam m, v and t."""
        a, t = self.adam["actor"], self.alpha_adam
        return {**self.twins.state(), "actor": self.actor.params, "log_alpha": self.log_alpha,
                "adam/actor/m": a.m, "adam/actor/v": a.v, "adam/actor/t": a.t,
                "adam/log_alpha/m": t.m, "adam/log_alpha/v": t.v, "adam/log_alpha/t": t.t}

    def load_state(self, saved, what="checkpoint"):
        """Copy a ``state()`` into this agent, in place; every name and shape must match."""
        restore_arrays(what, self.state(), saved)


def _check_rng(name, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} needs rng, a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
