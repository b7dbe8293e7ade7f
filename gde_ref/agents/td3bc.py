"""TD3+BC (Fujimoto & Gu, 2021): the T- backbone of the paper's Table 3.

One update step, ``td3bc_update(batch, noise, nets, hyper, stats, actor_turn)``, as the official code:

1. ``critic_step``  each twin regresses y = r + gamma^n (1 - terminal) min(Q1', Q2')(s', a~), with the smoothed
                    target action a~ = clip(pi'(s') + clip(0.2 eps, -0.5, 0.5), -1, 1), eps ~ N(0, I);
2. on every ``policy_freq``-th step (``actor_turn``):
   ``actor_step``   L = -lambda mean Q1(s, pi(s)) + mean (pi(s) - a)^2, lambda = alpha / mean |Q1(s, pi(s))|
                    (detached); then the Polyak average of the critics' and the actor's targets.

The actor is deterministic, pi(s) = tanh(f(s)). As a distribution (``agents.actors``, FIXED_STD) it is
N(pi(s), sigma^2) with sigma = ``exploration_std`` (TD3's exploration noise, 0.1): online it acts with that
noise, and Eq. 5's KL between two such policies is rho |pi_t(s) - pi_b(s)|^2 / (2 sigma^2), a scaled squared
distance to the teacher (``actors.exploration_step`` computes it with the same Gaussian KL as for IQL).

Deviations from the official code: weights are initialised as IQL's (orthogonal, gain sqrt(2)) instead of
PyTorch's default; rewards are scaled as IQL's locomotion data (1000 / return spread, as CORL's TD3+BC).
The target-smoothing noise comes from the agent's own generator, saved with its state.
"""
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import FIXED_STD, ActorSpec, PolicyActions, actor_backward, gaussian_actor
from gde_ref.agents.critics import Twins, twin_min, twin_regression_step, twin_polyak
from gde_ref.config import TD3BCConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.baselines import td3bc_actor_loss_kernel
from gde_ref.losses.equations import gde_exploration_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, frozen_net, net_adam, net_backward, net_forward, net_polyak, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.kernels import kernel

TD3BCNets = namedtuple("TD3BCNets", ["critics", "actor", "actor_target"])
TD3BCNets.__doc__ = "TD3+BC's networks for the kernels: critics (TwinCritics), actor and its target (Nets)."
TD3BCHyper = namedtuple("TD3BCHyper", ["alpha", "policy_noise", "noise_clip", "polyak", "critic_lr", "actor_lr",
                                       "spec"])
STAT_NAMES = ("critic_loss", "actor_loss", "q_mean")
CRITIC_LOSS, ACTOR_LOSS, Q_MEAN = range(len(STAT_NAMES))


@kernel
def smoothed_target_action(actor_target, next_obs, noise, hyper):
    """a~ = clip(tanh(f'(s')) + clip(policy_noise * eps, -noise_clip, noise_clip), -1, 1), (B, A)."""
    raw = net_forward(actor_target, next_obs)
    out = np.empty_like(raw)
    for i in range(raw.shape[0]):
        for j in range(raw.shape[1]):
            eps = min(max(hyper.policy_noise * noise[i, j], -hyper.noise_clip), hyper.noise_clip)
            out[i, j] = min(max(np.tanh(raw[i, j]) + eps, -1.0), 1.0)
    return out


@kernel
def critic_step(critics, actor_target, batch, noise, hyper):
    """Step 1: one Adam step of each twin towards r + discount min(Q1', Q2')(s', a~). Returns (loss, mean Q1)."""
    x = critics.inputs
    n = x.shape[0]
    next_action = smoothed_target_action(actor_target, batch.next_obs, noise, hyper)
    concat_columns(batch.next_obs, next_action, x)
    next_q = twin_min(critics.q1_target, critics.q2_target, x)[0]
    y = np.empty(n, x.dtype)
    for i in range(n):
        y[i] = batch.rewards[i] + batch.discounts[i] * next_q[i]
    concat_columns(batch.obs, batch.actions, x)
    return twin_regression_step(critics, x, y, hyper.critic_lr)


@kernel
def actor_step(actor, teacher, critics, batch, hyper, kl_weight):
    """Step 2: one Adam step of the actor on TD3+BC's loss, plus rho KL(pi_t || pi) (a scaled squared distance
    to the teacher, module docstring) when kl_weight > 0 (GDE's "w/o explore" ablation). Returns the loss."""
    obs = batch.obs
    n, n_obs = obs.shape
    mean, log_std, mask = gaussian_actor(actor, obs, hyper.spec)          # pi(s) = tanh(f(s))
    n_act = mean.shape[1]
    x = critics.inputs
    concat_columns(obs, mean, x)
    q_pi = net_forward(critics.q1, x)[:, 0]
    d_q, d_mean = np.empty((n, 1), x.dtype), np.empty_like(mean)
    loss = td3bc_actor_loss_kernel(q_pi, mean, batch.actions, hyper.alpha, d_q[:, 0], d_mean)
    net_backward(critics.q1, x, d_q, False, True)                          # dQ1/da, Q1 only
    for i in range(n):
        for j in range(n_act):
            d_mean[i, j] += critics.q1.dx[i, n_obs + j]
    d_log_std = np.zeros_like(log_std)
    if kl_weight > 0.0:
        mean_t, log_std_t, _ = gaussian_actor(teacher, obs, hyper.spec)
        no_q, d_no_q, d_kl = np.zeros(n, x.dtype), np.empty(n, x.dtype), np.empty_like(mean)
        loss += gde_exploration_loss_kernel(no_q, (mean, log_std), (mean_t, log_std_t), kl_weight, d_no_q, d_kl,
                                            d_log_std)
        for i in range(n):
            for j in range(n_act):
                d_mean[i, j] += d_kl[i, j]
    actor_backward(actor, obs, mean, d_mean, d_log_std, mask)
    net_adam(actor, hyper.actor_lr)
    return loss


@kernel
def targets_step(nets, polyak):
    """The Polyak average of the critics' and the actor's targets (on actor turns)."""
    twin_polyak(nets.critics, polyak)
    net_polyak(nets.actor_target, nets.actor, polyak)


@kernel
def td3bc_update(batch, noise, nets, hyper, stats, actor_turn):
    """One TD3+BC step: the critics, and on an actor turn the actor and the targets; fills ``stats``."""
    stats[CRITIC_LOSS], stats[Q_MEAN] = critic_step(nets.critics, nets.actor_target, batch, noise, hyper)
    if actor_turn:
        stats[ACTOR_LOSS] = actor_step(nets.actor, nets.actor_target, nets.critics, batch, hyper, 0.0)
        targets_step(nets, hyper.polyak)


class TD3BCAgent:
    """TD3+BC's networks, optimiser states, noise generator and update step; a backbone (``agents.backbones``).

    Networks: twin critics ``q1``, ``q2`` ([obs+act, 256, 256, 1]) and their targets, the deterministic actor
    ``actor`` ([obs, 256, 256, act], tanh output) and its target ``actor_target``. ``updates`` counts critic
    steps (the actor moves on every ``policy_freq``-th).
    """

    name = "td3bc"
    STAT_NAMES = STAT_NAMES

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = c = config or TD3BCConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(init_seed)
        self.twins = Twins(obs_dim, act_dim, c.hidden, rng, dtype)
        self.actor = MLP([obs_dim, *c.hidden, act_dim], rng, dtype)
        self.actor_target = self.actor.params.copy()
        self.adam = {**self.twins.adam, "actor": AdamState(self.actor.n_params, dtype)}
        self.spec = ActorSpec(FIXED_STD, 0.0, 0.0, c.exploration_std)
        self.hyper = TD3BCHyper(c.alpha, c.policy_noise, c.noise_clip, c.polyak, c.critic_lr, c.actor_lr, self.spec)
        self.noise_rng = np.random.default_rng(noise_seed)
        self.updates = 0
        self._nets, self._noise = {}, {}
        self._policy = PolicyActions(self.actor, self.spec)

    q1 = property(lambda self: self.twins.q1)
    q2 = property(lambda self: self.twins.q2)

    def nets(self, batch_size):
        """The kernels' ``TD3BCNets`` for a batch size (cached: the same arrays every step)."""
        r = self._nets.get(batch_size)
        if r is None:
            r = self._nets[batch_size] = TD3BCNets(self.twins.record(batch_size),
                                                   trained_net(self.actor, self.adam["actor"], batch_size),
                                                   frozen_net(self.actor_target, self.actor, batch_size))
            self._noise[batch_size] = np.zeros((batch_size, self.act_dim), self.dtype)
        return r

    def critics(self, batch_size):
        return self.twins.record(batch_size)

    def check_batch(self, batch, who="TD3BCAgent.update"):
        return check_batch_arrays(who, batch, self.obs_dim, self.act_dim, self.dtype)

    def offline_actor_lr(self, step, total):
        """TD3+BC keeps its actor learning rate constant."""
        return self.config.actor_lr

    def _draw_noise(self, n):
        nets = self.nets(n)
        self.noise_rng.standard_normal(out=self._noise[n], dtype=self.dtype)
        self.updates += 1
        return nets, self._noise[n], self.updates % self.config.policy_freq == 0

    def step(self, batch, stats, actor_lr=None):
        """The fused update: critics, and every ``policy_freq``-th step the actor and the targets."""
        nets, noise, actor_turn = self._draw_noise(batch.obs.shape[0])
        hyper = self.hyper if actor_lr is None else self.hyper._replace(actor_lr=actor_lr)
        td3bc_update(batch, noise, nets, hyper, stats, actor_turn)

    def critic_step(self, batch, stats):
        """The critics alone; returns whether this step is an actor turn (for ``actor_step``)."""
        nets, noise, actor_turn = self._draw_noise(batch.obs.shape[0])
        stats[CRITIC_LOSS], stats[Q_MEAN] = critic_step(nets.critics, nets.actor_target, batch, noise, self.hyper)
        return actor_turn

    def actor_step(self, batch, context, stats, teacher=None, kl_weight=0.0):
        """On an actor turn (``context``): the actor's loss (+ rho KL to ``teacher``), then the targets."""
        if not context:
            return
        nets = self.nets(batch.obs.shape[0])
        stats[ACTOR_LOSS] = actor_step(nets.actor, nets.actor_target if teacher is None else teacher, nets.critics,
                                       batch, self.hyper, 0.0 if teacher is None else float(kl_weight))
        targets_step(nets, self.hyper.polyak)

    def update(self, batch, actor_lr=None):
        """One TD3+BC step on a ``gde_ref.data.Batch``; returns a dict of losses and statistics."""
        batch = self.check_batch(batch)
        stats = np.full(len(STAT_NAMES), np.nan)
        self.step(batch, stats, actor_lr)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def act(self, obs, rng=None, temperature=1.0):
        """The action tanh(f(obs)) for one normalised observation, or with ``rng`` plus N(0, (t sigma)^2) noise,
        clipped to [-1, 1]. Returns a new array."""
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("TD3BCAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        return self._policy.act(obs, rng, temperature).copy()

    def state(self):
        """Every array by name (by reference), the noise generator's state and the update count."""
        a = self.adam["actor"]
        return {**self.twins.state(), "actor": self.actor.params, "actor_target": self.actor_target,
                "adam/actor/m": a.m, "adam/actor/v": a.v, "adam/actor/t": a.t,
                "noise_rng": self.noise_rng.bit_generator.state, "updates": self.updates}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: arrays in place, then the generator and the count."""
        restore_arrays(what, {k: v for k, v in self.state().items() if isinstance(v, np.ndarray)}, saved)
        self.noise_rng.bit_generator.state = saved["noise_rng"]
        self.updates = int(saved["updates"])

    def q_values(self, obs, actions):
        """min(Q1, Q2)(s, a) for a batch (no gradient)."""
        return self.twins.q_min(obs, actions)
