"""Advantage-Weighted Actor-Critic (AWAC; Nair et al., 2020): the AWAC column of the paper's Table 2, and a
backbone GDE can run on.

One update step, ``awac_update(batch, noise, nets, hyper, stats)``, with every gradient taken at the step's
starting parameters as in the official code (rail-berkeley/rlkit, ``awac_trainer.py``):

1. ``awac_critic_update``  each twin regresses y = r + gamma^n (1 - terminal) min(Q1', Q2')(s', a'), a' ~ pi(.|s')
                           (no entropy term: rlkit's mujoco example sets alpha = 0); before that step it takes
                           the advantage of every data action with the current critics,
                               A_i = min(Q1, Q2)(s_i, a_i) - min(Q1, Q2)(s_i, a~_i),  a~_i ~ pi(.|s_i)
                           (one policy sample as the value's action: rlkit's vf_K = 1); then the Polyak average;
2. ``awac_actor_step``     the advantage-weighted log-likelihood with weights softmax_i(A_i / beta) over the batch
                           (``losses.baselines.awac_actor_loss``), plus the L2 weight decay rlkit's policy
                           optimiser applies.

The actor is the project's tanh-mean Gaussian (``agents.actors``, GAUSSIAN): N(tanh(f(s)), sigma^2), a
state-independent log-std clipped to [-6, 0]. A policy sample is clip(tanh(f(s)) + sigma eps, -1, 1), as the
agent acts. Deviations from rlkit: the samples are clipped to [-1, 1] (rlkit's are not; CORL clamps them too);
the log-std is clipped where rlkit squashes it with a sigmoid; 2 x 256 networks and one batch size
(``config.AWACConfig``); rewards are scaled as the other backbones' (1000 / return spread, CORL's convention).
Why the batch softmax and not CORL's min(exp(A / lambda), 100): it is the AWAC authors' own weighting, and the
paper's Fig. 3 (AWAC's diverging Q on walker2d-medium) is about the authors' method; the choice changes how
strongly a few large advantages dominate a batch, not the critic. The noise (a' and a~) comes from the
agent's own generator, saved with its state.
"""
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import GAUSSIAN, ActorSpec, PolicyActions, actor_backward, gaussian_actor
from gde_ref.agents.critics import Twins, twin_min, twin_polyak, twin_regression_step
from gde_ref.config import AWACConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.baselines import awac_actor_loss_kernel
from gde_ref.losses.equations import gde_exploration_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, net_adam, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.distributions import gaussian_log_prob_kernel
from gde_ref.nn.kernels import kernel

AWACNets = namedtuple("AWACNets", ["critics", "actor"])
AWACNets.__doc__ = "AWAC's networks for the kernels: critics (TwinCritics) and actor (a Net)."
AWACHyper = namedtuple("AWACHyper", ["beta", "polyak", "critic_lr", "actor_lr", "weight_decay", "spec"])
AWACHyper.__doc__ = "AWAC's hyper-parameters for the kernels (from AWACConfig); spec: the actor's ActorSpec."
AWACNoise = namedtuple("AWACNoise", ["next", "policy"])
AWACNoise.__doc__ = "One step's randomness, eps ~ N(0, I) (B, A) each: for a' ~ pi(.|s') and for a~ ~ pi(.|s)."
STAT_NAMES = ("critic_loss", "actor_loss", "q_mean", "v_mean", "advantage_mean")
CRITIC_LOSS, ACTOR_LOSS, Q_MEAN, V_MEAN, ADVANTAGE_MEAN = range(len(STAT_NAMES))


# ------------------------------------------------------------------------------------------------
# kernels
# ------------------------------------------------------------------------------------------------
@kernel
def policy_sample(actor, obs, noise, spec):
    """a = clip(tanh(f(s)) + exp(log_std) eps, -1, 1) (B, A): a sample of the Gaussian actor, eps = noise."""
    mean, log_std, _ = gaussian_actor(actor, obs, spec)
    out = np.empty_like(mean)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            out[i, j] = min(max(mean[i, j] + np.exp(log_std[j]) * noise[i, j], -1.0), 1.0)
    return out


@kernel
def awac_critic_update(batch, noise, nets, hyper, stats):
    """Step 1 (module docstring): the advantages A (B,) at the current critics, one Adam step of each twin
    towards r + discount min(Q1', Q2')(s', a'), the Polyak average. Returns A for the actor step."""
    c = nets.critics
    x = c.inputs
    n = x.shape[0]
    next_action = policy_sample(nets.actor, batch.next_obs, noise.next, hyper.spec)      # a' ~ pi(.|s')
    concat_columns(batch.next_obs, next_action, x)
    next_q = twin_min(c.q1_target, c.q2_target, x)[0]
    y = np.empty(n, x.dtype)
    for i in range(n):
        y[i] = batch.rewards[i] + batch.discounts[i] * next_q[i]
    concat_columns(batch.obs, policy_sample(nets.actor, batch.obs, noise.policy, hyper.spec), x)
    v = twin_min(c.q1, c.q2, x)[0]                                                         # min Q(s, a~)
    concat_columns(batch.obs, batch.actions, x)
    advantage = twin_min(c.q1, c.q2, x)[0] - v                                             # min Q(s, a) - V
    stats[CRITIC_LOSS], stats[Q_MEAN] = twin_regression_step(c, x, y, hyper.critic_lr)
    twin_polyak(c, hyper.polyak)
    stats[V_MEAN] = v.mean()
    stats[ADVANTAGE_MEAN] = advantage.mean()
    return advantage


@kernel
def awac_actor_step(actor, teacher, obs, actions, advantage, hyper, kl_weight):
    """Step 2: one Adam step of the actor on -sum_i softmax_i(A_i / beta) log pi(a_i|s_i), plus
    rho KL(pi_t || pi) when kl_weight > 0 (GDE's "w/o explore" ablation; ``teacher`` is read only then), plus
    weight_decay * params added to the gradient (not to the returned loss, as torch's weight_decay).
    Returns the loss."""
    mean, log_std, mask = gaussian_actor(actor, obs, hyper.spec)
    n, n_act = mean.shape
    d_mean, d_log_std = np.zeros_like(mean), np.zeros_like(log_std)
    loss = 0.0
    if kl_weight > 0.0:
        mean_t, log_std_t, _ = gaussian_actor(teacher, obs, hyper.spec)
        no_q, d_no_q = np.zeros(n, mean.dtype), np.empty(n, mean.dtype)
        loss += gde_exploration_loss_kernel(no_q, (mean, log_std), (mean_t, log_std_t), kl_weight, d_no_q, d_mean,
                                            d_log_std)
    logp, dlogp_dmean, dlogp_dlogstd = np.empty(n, mean.dtype), np.empty_like(mean), np.empty_like(mean)
    gaussian_log_prob_kernel(mean, log_std, actions, logp, dlogp_dmean, dlogp_dlogstd)
    d_logp = np.empty(n, mean.dtype)
    loss += awac_actor_loss_kernel(logp, advantage, hyper.beta, d_logp)
    for i in range(n):  # chain rule through log pi
        for j in range(n_act):
            d_mean[i, j] += d_logp[i] * dlogp_dmean[i, j]
            d_log_std[j] += d_logp[i] * dlogp_dlogstd[i, j]
    actor_backward(actor, obs, mean, d_mean, d_log_std, mask)
    for k in range(actor.params.shape[0]):
        actor.grads[k] += hyper.weight_decay * actor.params[k]
    net_adam(actor, hyper.actor_lr)
    return loss


@kernel
def awac_update(batch, noise, nets, hyper, stats):
    """One AWAC update step on a batch (critics, targets, actor); fills ``stats``."""
    advantage = awac_critic_update(batch, noise, nets, hyper, stats)
    stats[ACTOR_LOSS] = awac_actor_step(nets.actor, nets.actor, batch.obs, batch.actions, advantage, hyper, 0.0)


# ------------------------------------------------------------------------------------------------
# the agent
# ------------------------------------------------------------------------------------------------
class AWACAgent:
    """AWAC's networks, optimiser states, noise generator and update step; a backbone (``agents.backbones``).

    Networks: twin critics ``q1``, ``q2`` ([obs+act, 256, 256, 1]) and their targets, and the actor ``actor``
    ([obs, 256, 256, act] + a log-std per action dimension). Offline pretraining and fine-tuning run the same
    update (AWAC's point: one method for both phases); ``gde-ref finetune --algo awac`` keeps the offline
    data in the buffer as rlkit does.
    """

    name = "awac"
    STAT_NAMES = STAT_NAMES

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = c = config or AWACConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        rng = np.random.default_rng(init_seed)
        self.twins = Twins(obs_dim, act_dim, c.hidden, rng, dtype)
        self.actor = MLP([obs_dim, *c.hidden, act_dim], rng, dtype, extra=act_dim)
        self.adam = {**self.twins.adam, "actor": AdamState(self.actor.n_params, dtype)}
        self.spec = ActorSpec(GAUSSIAN, c.log_std_min, c.log_std_max, 0.0)
        self.hyper = AWACHyper(c.beta, c.polyak, c.critic_lr, c.actor_lr, c.policy_weight_decay, self.spec)
        self.noise_rng = np.random.default_rng(noise_seed)
        self._nets, self._noise = {}, {}
        self._policy = PolicyActions(self.actor, self.spec)

    q1 = property(lambda self: self.twins.q1)
    q2 = property(lambda self: self.twins.q2)

    def nets(self, batch_size):
        """The kernels' ``AWACNets`` for a batch size (cached; its noise arrays are made beside them)."""
        r = self._nets.get(batch_size)
        if r is None:
            r = self._nets[batch_size] = AWACNets(self.twins.record(batch_size),
                                                  trained_net(self.actor, self.adam["actor"], batch_size))
            shape = (batch_size, self.act_dim)
            self._noise[batch_size] = AWACNoise(np.zeros(shape, self.dtype), np.zeros(shape, self.dtype))
        return r

    def critics(self, batch_size):
        """The twin critics' record (for Eq. 5's Q term)."""
        return self.twins.record(batch_size)

    def check_batch(self, batch, who="AWACAgent.update"):
        """``batch`` validated for this agent (dimensions, dtype), C-contiguous."""
        return check_batch_arrays(who, batch, self.obs_dim, self.act_dim, self.dtype)

    def offline_actor_lr(self, step, total):
        """AWAC keeps its actor learning rate constant (rlkit has no schedule)."""
        return self.config.actor_lr

    def _draw(self, n):
        """The step's noise, drawn in AWACNoise's field order from the agent's generator."""
        nets, noise = self.nets(n), self._noise[n]
        self.noise_rng.standard_normal(out=noise.next, dtype=self.dtype)
        self.noise_rng.standard_normal(out=noise.policy, dtype=self.dtype)
        return nets, noise

    # -- the backbone contract's updates (on a checked batch, statistics into ``stats``) ----------
    def step(self, batch, stats, actor_lr=None):
        """The fused update: critics (with the advantages), targets, actor; one compiled call."""
        nets, noise = self._draw(batch.obs.shape[0])
        hyper = self.hyper if actor_lr is None else self.hyper._replace(actor_lr=actor_lr)
        awac_update(batch, noise, nets, hyper, stats)

    def critic_step(self, batch, stats):
        """The critics and their targets alone; returns the advantages A (B,) for ``actor_step``."""
        nets, noise = self._draw(batch.obs.shape[0])
        return awac_critic_update(batch, noise, nets, self.hyper, stats)

    def actor_step(self, batch, context, stats, teacher=None, kl_weight=0.0):
        """The advantage-weighted actor step on ``context`` (the advantages), plus rho KL(teacher || actor)
        when ``teacher`` (a Net) is given."""
        actor = self.nets(batch.obs.shape[0]).actor
        stats[ACTOR_LOSS] = awac_actor_step(actor, actor if teacher is None else teacher, batch.obs, batch.actions,
                                            context, self.hyper, 0.0 if teacher is None else float(kl_weight))

    def update(self, batch, actor_lr=None):
        """One AWAC step on a ``gde_ref.data.Batch``; returns a dict of losses and value statistics."""
        batch = self.check_batch(batch)
        stats = np.zeros(len(STAT_NAMES))
        self.step(batch, stats, actor_lr)
        return dict(zip(STAT_NAMES, stats.tolist()))

    # -- acting -------------------------------------------------------------------------------
    def act(self, obs, rng=None, temperature=1.0):
        """The mean action tanh(f(obs)) for one normalised observation (evaluation, as rlkit), or with ``rng``
        a sample clip(mean + temperature sigma eps, -1, 1) (exploration: the policy's own Gaussian). New array."""
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("AWACAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        return self._policy.act(obs, rng, temperature).copy()

    # -- state --------------------------------------------------------------------------------
    def state(self):
        """Every array by name (by reference): parameters, targets, Adam m, v, t; and the noise generator's state."""
        a = self.adam["actor"]
        return {**self.twins.state(), "actor": self.actor.params, "adam/actor/m": a.m, "adam/actor/v": a.v,
                "adam/actor/t": a.t, "noise_rng": self.noise_rng.bit_generator.state}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: arrays in place (every name and shape must match), then the generator."""
        if "noise_rng" not in saved:
            raise ValueError(f"{what} has no noise_rng: it is not an AWAC agent's state")
        restore_arrays(what, {k: v for k, v in self.state().items() if isinstance(v, np.ndarray)}, saved)
        self.noise_rng.bit_generator.state = saved["noise_rng"]

    def q_values(self, obs, actions):
        """min(Q1, Q2)(s, a) for a batch, with the current critics (no gradient)."""
        obs = check_array("q_values obs", obs, ndim=2, dtype=self.dtype, shape=(None, self.obs_dim))
        actions = check_array("q_values actions", actions, ndim=2, dtype=self.dtype, shape=(obs.shape[0], self.act_dim))
        return self.twins.q_min(obs, actions)
