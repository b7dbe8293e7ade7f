"""Implicit Q-Learning (Kostrikov et al., 2021): the backbone of GDE (paper Section 4.2.2).

One update step, ``iql_update(batch, nets, hyper, stats)``, in the paper's order:

1. ``value_step``   Eq. 2: V_psi regresses the target critics' min(Q1', Q2')(s, a) with the expectile loss;
2. ``critic_step``  Eq. 3: Q1, Q2 regress r + gamma^n (1 - terminal) V_psi(s');
3. the targets' Polyak average (``twin_polyak``);
4. ``awr_step``     Eq. 4: the actor maximises exp(lambda (Q' - V)) log pi(a|s) (weights clipped at 100).

Steps 1-3 are ``iql_critic_update``, the backbone's critic update; step 4 its actor update. The official code
orders the actor first; it reads the target critics and the *updated* V, so the order changes nothing.

The actor is a tanh-mean Gaussian with a state-independent log-std stored at the end of the actor's
parameter vector (``MLP(..., extra=act_dim)``), clipped to [log_std_min, log_std_max] (``agents.actors``).
"""
import math
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import GAUSSIAN, ActorSpec, PolicyActions, awr_step, guided_awr_step
from gde_ref.agents.critics import Twins, twin_descent_step, twin_forward, twin_min, twin_polyak
from gde_ref.config import IQLConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.equations import expectile_loss_kernel, iql_q_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, net_adam, net_backward, net_forward, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.kernels import kernel

IQLNets = namedtuple("IQLNets", ["critics", "value", "actor"])
IQLNets.__doc__ = "IQL's networks for the kernels: critics (TwinCritics), value and actor (Nets)."
IQLHyper = namedtuple("IQLHyper", ["expectile", "awr_temperature", "awr_max_weight", "polyak", "critic_lr",
                                   "value_lr", "actor_lr", "spec"])
IQLHyper.__doc__ = "IQL's hyper-parameters for the kernels (from IQLConfig); spec: the actor's ActorSpec."
STAT_NAMES = ("value_loss", "critic_loss", "actor_loss", "q_mean", "v_mean", "advantage_mean")
VALUE_LOSS, CRITIC_LOSS, ACTOR_LOSS, Q_MEAN, V_MEAN, ADVANTAGE_MEAN = range(len(STAT_NAMES))


def cosine_lr(lr, step, total):
    """IQL's actor learning-rate schedule: lr (1 + cos(pi step / total)) / 2, from lr at step 0 to 0."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


# ------------------------------------------------------------------------------------------------
# kernels: one function per equation, then the update that composes them
# ------------------------------------------------------------------------------------------------
@kernel
def value_step(value, obs, q_target, hyper):
    """Eq. 2: one Adam step of V on the expectile loss against q_target (B,). Returns the loss."""
    v = net_forward(value, obs)[:, 0]
    d_v = np.empty((obs.shape[0], 1), obs.dtype)
    loss = expectile_loss_kernel(q_target, v, hyper.expectile, d_v[:, 0])
    net_backward(value, obs, d_v, True, False)
    net_adam(value, hyper.value_lr)
    return loss


@kernel
def critic_step(critics, batch, next_v, hyper):
    """Eq. 3: one Adam step of each critic towards r + discount * V(s'), with critics.inputs = [s, a].
    Returns the loss and mean Q1(s, a)."""
    x = critics.inputs
    n = x.shape[0]
    q1_out, q2_out = twin_forward(critics, x)
    d_q1, d_q2 = np.empty((n, 1), x.dtype), np.empty((n, 1), x.dtype)
    loss = iql_q_loss_kernel(q1_out, q2_out, batch.rewards, batch.discounts, next_v, d_q1[:, 0], d_q2[:, 0])
    q_mean = q1_out.mean()
    twin_descent_step(critics, x, d_q1, d_q2, hyper.critic_lr)
    return loss, q_mean


@kernel
def iql_critic_update(batch, nets, hyper, stats):
    """IQL's critic update: Eq. 2, Eq. 3, the target update. Returns (Q'(s, a), V(s)), each (B,), for Eq. 4."""
    c = nets.critics
    concat_columns(batch.obs, batch.actions, c.inputs)
    q_target = twin_min(c.q1_target, c.q2_target, c.inputs)[0]                        # Q_theta'(s, a)
    stats[VALUE_LOSS] = value_step(nets.value, batch.obs, q_target, hyper)              # Eq. 2
    next_v = net_forward(nets.value, batch.next_obs)[:, 0].copy()                       # V_psi(s'), updated
    stats[CRITIC_LOSS], stats[Q_MEAN] = critic_step(c, batch, next_v, hyper)            # Eq. 3
    v = net_forward(nets.value, batch.obs)[:, 0].copy()
    twin_polyak(c, hyper.polyak)   # the actor step reads q_target (above), so moving the targets now is safe
    stats[V_MEAN] = v.mean()
    stats[ADVANTAGE_MEAN] = (q_target - v).mean()
    return q_target, v


@kernel
def iql_update(batch, nets, hyper, stats):
    """One IQL update step on a batch (paper Eq. 2-4 and the target update); fills ``stats``."""
    q_target, v = iql_critic_update(batch, nets, hyper, stats)                          # Eq. 2, Eq. 3
    stats[ACTOR_LOSS] = awr_step(nets.actor, batch.obs, batch.actions, q_target, v, hyper)  # Eq. 4


# ------------------------------------------------------------------------------------------------
# the agent
# ------------------------------------------------------------------------------------------------
class IQLAgent:
    """IQL's networks, optimiser states and update step; a backbone (``agents.backbones``).

    Networks: twin critics ``q1``, ``q2`` ([obs+act, 256, 256, 1]) and their targets (parameter copies
    ``q1_target``, ``q2_target``), the value ``value`` ([obs, 256, 256, 1]) and the exploitation actor
    ``actor`` ([obs, 256, 256, act] + a log-std per action dimension).
    """

    name = "iql"
    STAT_NAMES = STAT_NAMES

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = c = config or IQLConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        rng = np.random.default_rng(seed)
        self.twins = Twins(obs_dim, act_dim, c.hidden, rng, dtype)
        self.value = MLP([obs_dim, *c.hidden, 1], rng, dtype)
        self.actor = MLP([obs_dim, *c.hidden, act_dim], rng, dtype, extra=act_dim)
        self.adam = {**self.twins.adam, "value": AdamState(self.value.n_params, dtype),
                     "actor": AdamState(self.actor.n_params, dtype)}
        self.spec = ActorSpec(GAUSSIAN, c.log_std_min, c.log_std_max, 0.0)
        self.hyper = IQLHyper(c.expectile, c.awr_temperature, c.awr_max_weight, c.polyak, c.critic_lr, c.value_lr,
                              c.actor_lr, self.spec)
        self._nets = {}
        self._policy = PolicyActions(self.actor, self.spec)

    q1 = property(lambda self: self.twins.q1)
    q2 = property(lambda self: self.twins.q2)
    q1_target = property(lambda self: self.twins.q1_target)
    q2_target = property(lambda self: self.twins.q2_target)

    def nets(self, batch_size):
        """The kernels' ``IQLNets`` for a batch size (cached: the same arrays every step)."""
        r = self._nets.get(batch_size)
        if r is None:
            r = self._nets[batch_size] = IQLNets(self.twins.record(batch_size),
                                                 trained_net(self.value, self.adam["value"], batch_size),
                                                 trained_net(self.actor, self.adam["actor"], batch_size))
        return r

    def critics(self, batch_size):
        """The twin critics' record (for Eq. 5's Q term)."""
        return self.twins.record(batch_size)

    def check_batch(self, batch, who="IQLAgent.update"):
        """``batch`` validated for this agent (dimensions, dtype), C-contiguous."""
        return check_batch_arrays(who, batch, self.obs_dim, self.act_dim, self.dtype)

    def offline_actor_lr(self, step, total):
        """The actor's learning rate at offline step ``step`` of ``total``: IQL's cosine decay."""
        return cosine_lr(self.config.actor_lr, step, total)

    # -- the backbone contract's updates (on a checked batch, statistics into ``stats``) ----------
    def step(self, batch, stats, actor_lr=None):
        """The fused update: critics (Eq. 2, 3, targets) then the actor (Eq. 4), one compiled call."""
        hyper = self.hyper if actor_lr is None else self.hyper._replace(actor_lr=actor_lr)
        iql_update(batch, self.nets(batch.obs.shape[0]), hyper, stats)

    def critic_step(self, batch, stats):
        """The critic half alone (Eq. 2, 3, targets); returns what ``actor_step`` needs: (Q'(s, a), V(s))."""
        return iql_critic_update(batch, self.nets(batch.obs.shape[0]), self.hyper, stats)

    def actor_step(self, batch, context, stats, teacher=None, kl_weight=0.0):
        """Eq. 4 on the actor, plus rho KL(teacher || actor) when ``teacher`` (a Net) is given."""
        q_target, v = context
        actor = self.nets(batch.obs.shape[0]).actor
        if teacher is None:
            stats[ACTOR_LOSS] = awr_step(actor, batch.obs, batch.actions, q_target, v, self.hyper)
        else:
            stats[ACTOR_LOSS] = guided_awr_step(actor, teacher, batch.obs, batch.actions, q_target, v, self.hyper,
                                                kl_weight)

    def update(self, batch, actor_lr=None):
        """One IQL step on a ``gde_ref.data.Batch``; returns a dict of losses and value statistics."""
        batch = self.check_batch(batch)
        stats = np.zeros(len(STAT_NAMES))
        self.step(batch, stats, actor_lr)
        return dict(zip(STAT_NAMES, stats.tolist()))

    # -- acting -------------------------------------------------------------------------------
    def log_std(self):
        """The actor's clipped log-std (A,)."""
        return np.clip(self.actor.views["extra"], self.config.log_std_min, self.config.log_std_max)

    def act(self, obs, rng=None, temperature=1.0):
        """Action for one observation (obs_dim,): the mean tanh(net(obs)) (evaluation), or, with ``rng``,
        a sample from N(mean, (temperature * std)^2) clipped to [-1, 1] (the paper's Fig. 2d temperature t).

        ``obs`` must already be normalised with the training data's statistics (``ObsNormalizer``); for raw
        observations use ``gde_ref.load_policy(RUN).act``. Returns a new array (the training loop's
        allocation-free path is ``agents.actors.PolicyActions``).
        """
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("IQLAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        return self._policy.act(obs, rng, temperature).copy()

    # -- state --------------------------------------------------------------------------------
    def state(self):
        """Every array of the agent by name, by reference: parameters, targets, Adam m, v and t."""
        out = {**self.twins.state(), "value": self.value.params, "actor": self.actor.params}
        for name in ("value", "actor"):
            adam = self.adam[name]
            out.update({f"adam/{name}/m": adam.m, f"adam/{name}/v": adam.v, f"adam/{name}/t": adam.t})
        return out

    def load_state(self, saved, what="checkpoint"):
        """Copy a ``state()`` (e.g. from an .npz) into this agent, in place; every name and shape must match."""
        restore_arrays(what, self.state(), saved)

    def q_values(self, obs, actions):
        """min(Q1, Q2)(s, a) for a batch, with the current critics (no gradient)."""
        obs = check_array("q_values obs", obs, ndim=2, dtype=self.dtype, shape=(None, self.obs_dim))
        actions = check_array("q_values actions", actions, ndim=2, dtype=self.dtype, shape=(obs.shape[0], self.act_dim))
        return self.twins.q_min(obs, actions)
