"""Conservative Q-Learning for continuous actions (Kumar et al., 2020): the C- backbone of the paper's Table 3.

CQL is SAC with a penalty on the critics. One update step, ``cql_update(batch, noise, nets, hyper, stats)``:

1. ``cql_critic_step``  each twin Q_k minimises
        mean_i (Q_k(s_i, a_i) - y_i)^2 + alpha_cql * mean_i [ logsumexp_j (Q_k(s_i, a_ij) - log mu(a_ij)) - Q_k(s_i, a_i) ]
   with y = r + gamma^n (1 - terminal) min(Q1', Q2')(s', a'), a' ~ pi(.|s') (no entropy in the backup), and
   the a_ij: M uniform actions (log mu = -|A| log 2), M samples of pi(.|s_i) and M of pi(.|s'_i), all
   evaluated at s_i, their log-densities held constant (CQL(H) with importance sampling,
   ``losses.baselines.cql_sampled_penalty``); then the targets' Polyak average;
2. SAC's actor step (``sac.actor_step``) and temperature step (``sac.temperature_step``).

Settings: the paper's alpha_cql = 5.0 (B.3), otherwise JaxCQL's defaults (``config.CQLConfig``). Deviations, all
from reusing our SAC: the steps run in its order (critics, then the actor on the updated critics) where the
official code takes all gradients at the same parameters; the temperature loss is SAC's -alpha (log pi + H)
(JaxCQL: log alpha in place of alpha); the log-std is SAC's smooth bound into [-5, 2] (JaxCQL: a scale and offset,
then a clip). None of them touches the penalty. The actor is SAC's squashed Gaussian (``agents.actors``, SQUASHED): GDE's Eq. 5 on it
uses the deterministic action tanh(mu(s)) and the KL between the pre-tanh Gaussians (``squashed_kl``).
One critic step evaluates each twin on B (1 + 3M) state-action pairs (M = 10: 31 B), which makes CQL about an
order of magnitude slower per update than IQL on a CPU.
"""
import math
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import (SQUASHED, ActorSpec, PolicyActions, squashed_backward, squashed_gaussian,
                                   squashed_gaussian_policy, squashed_kl)
from gde_ref.agents.critics import Twins, twin_descent_step, twin_forward, twin_min, twin_min_action_gradient, \
    twin_polyak
from gde_ref.agents.sac import actor_step, temperature_step
from gde_ref.config import CQLConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.baselines import cql_sampled_penalty_kernel, sac_actor_loss_kernel
from gde_ref.losses.equations import td_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, net_adam, scalar_net, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.distributions import squashed_gaussian_backward_kernel, squashed_gaussian_sample_kernel
from gde_ref.nn.kernels import kernel

CQLNets = namedtuple("CQLNets", ["critics", "actor", "temperature", "penalty_critics", "sampler"])
CQLNets.__doc__ = """CQL's networks for the kernels: critics (TwinCritics for B rows), actor, temperature (log alpha),
penalty_critics (the same twins for the B (1 + 3M) rows of the penalty) and sampler (the actor for B M rows)."""
CQLHyper = namedtuple("CQLHyper", ["cql_alpha", "polyak", "critic_lr", "actor_lr", "alpha_lr", "target_entropy",
                                   "log_std_min", "log_std_max", "spec"])
CQLNoise = namedtuple("CQLNoise", ["next", "at_obs", "at_next_obs", "uniform", "actor"])
CQLNoise.__doc__ = """One step's randomness: eps for a' ~ pi(.|s') (B, A); eps for the M samples of pi(.|s) and of
pi(.|s') (B M, A each); the uniform actions in [-1, 1] (B M, A); eps for the actor step (B, A)."""
STAT_NAMES = ("critic_loss", "cql_penalty", "actor_loss", "alpha_loss", "alpha", "q_mean")
CRITIC_LOSS, CQL_PENALTY, ACTOR_LOSS, ALPHA_LOSS, ALPHA, Q_MEAN = range(len(STAT_NAMES))


@kernel
def repeated_samples(sampler, obs, noise, hyper):
    """M samples of pi(.|s_i) for every state (row i M + j): (actions (B M, A), log pi (B M,))."""
    n, m = obs.shape[0], noise.shape[0] // obs.shape[0]
    rep = np.empty((n * m, obs.shape[1]), obs.dtype)
    for i in range(n):
        for j in range(m):
            rep[i * m + j] = obs[i]
    action, logp, _, _ = squashed_gaussian_policy(sampler, rep, noise, hyper)
    return action, logp


@kernel
def conservative_regression(q_out, y, log_density, cql_alpha, d_q):
    """One twin's loss on the penalty rows (B data rows, then 3M sampled rows per state): the TD loss of the
    data rows towards y plus ``cql_sampled_penalty_kernel``; fills d_q (B (1 + 3M), 1). Returns (td, penalty)."""
    n, k = log_density.shape
    td = td_loss_kernel(q_out[:n], y, d_q[:n, 0])
    q_samples, d_samples, d_data = np.empty((n, k), q_out.dtype), np.empty((n, k), q_out.dtype), np.empty(n, q_out.dtype)
    for i in range(n):
        for j in range(k):
            q_samples[i, j] = q_out[n + i * k + j]
    penalty = cql_sampled_penalty_kernel(q_samples, log_density, q_out[:n], cql_alpha, d_samples, d_data)
    for i in range(n):
        d_q[i, 0] += d_data[i]
        for j in range(k):
            d_q[n + i * k + j, 0] = d_samples[i, j]
    return td, penalty


@kernel
def penalty_rows(nets, batch, noise, hyper):
    """What step 1 regresses: the targets y (B,), the penalty rows' inputs (written into
    ``nets.penalty_critics.inputs``: B data rows, then per state M uniform, M pi(.|s), M pi(.|s') actions, all
    at s) and their log-densities (B, 3M). Returns (y, x, log_density)."""
    obs, c, big = batch.obs, nets.critics, nets.penalty_critics
    n, n_obs = obs.shape
    n_act = batch.actions.shape[1]
    next_action = squashed_gaussian_policy(nets.actor, batch.next_obs, noise.next, hyper)[0]
    concat_columns(batch.next_obs, next_action, c.inputs)
    next_q = twin_min(c.q1_target, c.q2_target, c.inputs)[0]
    y = np.empty(n, obs.dtype)
    for i in range(n):
        y[i] = batch.rewards[i] + batch.discounts[i] * next_q[i]
    a_obs, logp_obs = repeated_samples(nets.sampler, obs, noise.at_obs, hyper)
    a_next, logp_next = repeated_samples(nets.sampler, batch.next_obs, noise.at_next_obs, hyper)
    m = a_obs.shape[0] // n
    x, log_density = big.inputs, np.empty((n, 3 * m), obs.dtype)
    concat_columns(obs, batch.actions, x[:n])
    for i in range(n):              # per state: M uniform, M from pi(.|s), M from pi(.|s'), all at s
        for g in range(3):
            for j in range(m):
                row, k = n + i * 3 * m + g * m + j, i * m + j
                x[row, :n_obs] = obs[i]
                if g == 0:
                    x[row, n_obs:] = noise.uniform[k]
                    log_density[i, g * m + j] = -n_act * math.log(2.0)
                else:
                    x[row, n_obs:] = a_obs[k] if g == 1 else a_next[k]
                    log_density[i, g * m + j] = logp_obs[k] if g == 1 else logp_next[k]
    return y, x, log_density


@kernel
def cql_critic_step(nets, batch, noise, hyper):
    """Step 1 (module docstring): one Adam step of each twin. Returns (TD loss, penalty, mean Q1(s, a)), summed
    over the twins for the losses."""
    n, big = batch.obs.shape[0], nets.penalty_critics
    y, x, log_density = penalty_rows(nets, batch, noise, hyper)
    q1_out, q2_out = twin_forward(big, x)
    q_mean = q1_out[:n].mean()
    d_q1, d_q2 = np.empty((x.shape[0], 1), y.dtype), np.empty((x.shape[0], 1), y.dtype)
    td1, pen1 = conservative_regression(q1_out, y, log_density, hyper.cql_alpha, d_q1)
    td2, pen2 = conservative_regression(q2_out, y, log_density, hyper.cql_alpha, d_q2)
    twin_descent_step(big, x, d_q1, d_q2, hyper.critic_lr)
    return td1 + td2, pen1 + pen2, q_mean


@kernel
def guided_soft_actor_step(actor, teacher, critics, obs, noise, alpha, hyper, kl_weight):
    """SAC's actor loss plus rho KL(pi_t || pi) between the pre-tanh Gaussians (GDE's "w/o explore" ablation on
    CQL): one Adam step; returns the loss and log pi(a|s) (B,) for the temperature step."""
    n = obs.shape[0]
    mu_t, log_std_t, _ = squashed_gaussian(teacher, obs, hyper.spec)
    mu, log_std, raw = squashed_gaussian(actor, obs, hyper.spec)
    action, logp = np.empty_like(mu), np.empty(n, mu.dtype)
    squashed_gaussian_sample_kernel(mu, log_std, noise, action, logp)
    concat_columns(obs, action, critics.inputs)
    q_min, q1_out, q2_out = twin_min(critics.q1, critics.q2, critics.inputs)
    d_logp, d_q_min = np.empty(n, obs.dtype), np.empty(n, obs.dtype)
    loss = sac_actor_loss_kernel(logp, q_min, alpha, d_logp, d_q_min)
    d_action = np.zeros_like(action)
    twin_min_action_gradient(critics.q1, critics.q2, critics.inputs, q1_out, q2_out, d_q_min, d_action)
    d_mu, d_log_std = np.empty_like(mu), np.empty_like(mu)
    squashed_gaussian_backward_kernel(action, log_std, noise, d_action, d_logp, d_mu, d_log_std)
    loss += squashed_kl((mu_t, log_std_t), (mu, log_std), kl_weight, d_mu, d_log_std)
    squashed_backward(actor, obs, raw, d_mu, d_log_std, hyper.spec)
    net_adam(actor, hyper.actor_lr)
    return loss, logp


@kernel
def cql_update(batch, noise, nets, hyper, stats):
    """One CQL update step (critics with the penalty, targets, actor, temperature); fills ``stats``."""
    alpha = np.exp(nets.temperature.params[0])
    stats[CRITIC_LOSS], stats[CQL_PENALTY], stats[Q_MEAN] = cql_critic_step(nets, batch, noise, hyper)
    twin_polyak(nets.critics, hyper.polyak)
    stats[ACTOR_LOSS], logp = actor_step(nets.actor, nets.critics, batch.obs, noise.actor, alpha, hyper)
    stats[ALPHA_LOSS] = temperature_step(nets.temperature, logp, hyper.target_entropy, hyper.alpha_lr)
    stats[ALPHA] = alpha


class CQLAgent:
    """CQL's networks, optimiser states, temperature, noise generator and update step; a backbone
    (``agents.backbones``). Networks as ``SACAgent``'s: twin critics and targets, the squashed-Gaussian actor
    ([obs, *hidden, 2 act]), log alpha."""

    name = "cql"
    STAT_NAMES = STAT_NAMES

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = c = config or CQLConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(init_seed)
        self.twins = Twins(obs_dim, act_dim, c.hidden, rng, dtype)
        self.actor = MLP([obs_dim, *c.hidden, 2 * act_dim], rng, dtype)
        self.adam = {**self.twins.adam, "actor": AdamState(self.actor.n_params, dtype)}
        self.log_alpha = np.array([math.log(c.initial_alpha)], dtype)
        self.alpha_adam, self._alpha_grad = AdamState(1, dtype), np.zeros(1, dtype)
        self.spec = ActorSpec(SQUASHED, c.log_std_min, c.log_std_max, 0.0)
        self.hyper = CQLHyper(c.cql_alpha, c.polyak, c.critic_lr, c.actor_lr, c.alpha_lr, -float(act_dim),
                              c.log_std_min, c.log_std_max, self.spec)
        self.noise_rng = np.random.default_rng(noise_seed)
        self._nets, self._noise = {}, {}
        self._policy = PolicyActions(self.actor, self.spec)

    q1 = property(lambda self: self.twins.q1)
    q2 = property(lambda self: self.twins.q2)

    def nets(self, batch_size):
        """The kernels' ``CQLNets`` for a batch size (cached; its noise arrays are made beside them)."""
        r = self._nets.get(batch_size)
        if r is None:
            b, m, a = batch_size, self.config.n_actions, self.act_dim
            r = self._nets[b] = CQLNets(self.twins.record(b), trained_net(self.actor, self.adam["actor"], b),
                                        scalar_net(self.log_alpha, self._alpha_grad, self.alpha_adam),
                                        self.twins.record(b * (1 + 3 * m)),
                                        trained_net(self.actor, self.adam["actor"], b * m))
            z = lambda rows: np.zeros((rows, a), self.dtype)  # noqa: E731
            self._noise[b] = CQLNoise(z(b), z(b * m), z(b * m), z(b * m), z(b))
        return r

    def critics(self, batch_size):
        return self.twins.record(batch_size)

    def check_batch(self, batch, who="CQLAgent.update"):
        return check_batch_arrays(who, batch, self.obs_dim, self.act_dim, self.dtype)

    def offline_actor_lr(self, step, total):
        """CQL keeps its actor learning rate constant."""
        return self.config.actor_lr

    def _draw(self, n):
        """The step's noise, drawn in CQLNoise's field order from the agent's generator."""
        nets, noise = self.nets(n), self._noise[n]
        for name in ("next", "at_obs", "at_next_obs"):
            self.noise_rng.standard_normal(out=getattr(noise, name), dtype=self.dtype)
        self.noise_rng.random(out=noise.uniform, dtype=self.dtype)
        noise.uniform[...] = 2.0 * noise.uniform - 1.0
        self.noise_rng.standard_normal(out=noise.actor, dtype=self.dtype)
        return nets, noise

    def _hyper(self, actor_lr):
        return self.hyper if actor_lr is None else self.hyper._replace(actor_lr=actor_lr)

    def step(self, batch, stats, actor_lr=None):
        """The fused update: critics (TD + penalty), targets, actor, temperature; one compiled call."""
        nets, noise = self._draw(batch.obs.shape[0])
        cql_update(batch, noise, nets, self._hyper(actor_lr), stats)

    def critic_step(self, batch, stats):
        """The critics and their targets alone; returns the step's noise for ``actor_step``."""
        nets, noise = self._draw(batch.obs.shape[0])
        stats[CRITIC_LOSS], stats[CQL_PENALTY], stats[Q_MEAN] = cql_critic_step(nets, batch, noise, self.hyper)
        twin_polyak(nets.critics, self.hyper.polyak)
        return noise

    def actor_step(self, batch, context, stats, teacher=None, kl_weight=0.0):
        """SAC's actor step (+ rho KL to ``teacher``), then the temperature step."""
        nets, alpha = self.nets(batch.obs.shape[0]), np.exp(self.log_alpha[0])
        if teacher is None:
            stats[ACTOR_LOSS], logp = actor_step(nets.actor, nets.critics, batch.obs, context.actor, alpha, self.hyper)
        else:
            stats[ACTOR_LOSS], logp = guided_soft_actor_step(nets.actor, teacher, nets.critics, batch.obs,
                                                             context.actor, alpha, self.hyper, float(kl_weight))
        stats[ALPHA_LOSS] = temperature_step(nets.temperature, logp, self.hyper.target_entropy, self.hyper.alpha_lr)
        stats[ALPHA] = alpha

    def update(self, batch, actor_lr=None):
        """One CQL step on a ``gde_ref.data.Batch``; returns a dict of losses and statistics."""
        batch = self.check_batch(batch)
        stats = np.zeros(len(STAT_NAMES))
        self.step(batch, stats, actor_lr)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def act(self, obs, rng=None, temperature=1.0):
        """tanh(mu(obs)) for one normalised observation, or with ``rng`` a sample tanh(mu + t sigma eps). New array."""
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("CQLAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        return self._policy.act(obs, rng, temperature).copy()

    def state(self):
        """Every array by name (by reference), and the noise generator's state."""
        a, t = self.adam["actor"], self.alpha_adam
        return {**self.twins.state(), "actor": self.actor.params, "log_alpha": self.log_alpha,
                "adam/actor/m": a.m, "adam/actor/v": a.v, "adam/actor/t": a.t,
                "adam/log_alpha/m": t.m, "adam/log_alpha/v": t.v, "adam/log_alpha/t": t.t,
                "noise_rng": self.noise_rng.bit_generator.state}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: arrays in place, then the generator."""
        restore_arrays(what, {k: v for k, v in self.state().items() if isinstance(v, np.ndarray)}, saved)
        self.noise_rng.bit_generator.state = saved["noise_rng"]

    def q_values(self, obs, actions):
        return self.twins.q_min(obs, actions)
