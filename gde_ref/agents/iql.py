"""Implicit Q-Learning (Kostrikov et al., 2021): the backbone of GDE (paper Section 4.2.2).

One update step, in the paper's order (``iql_update_kernel``):

1. ``value_step``      Eq. 2: V_psi regresses the target critic's min(Q1', Q2')(s, a) with the expectile loss;
2. ``critic_step``     Eq. 3: Q1, Q2 regress r + gamma^n (1 - terminal) V_psi(s');
3. ``awr_actor_step``  Eq. 4: the actor maximises exp(lambda (Q' - V)) log pi(a|s) (weights clipped at 100);
4. Polyak averaging of the target critics.

The official code orders the actor before the critics; both read the target critic and the *updated*
V, so the order of steps 2 and 3 does not change the result.

The actor is a tanh-mean Gaussian with a state-independent log-std stored at the end of the actor's
parameter vector (``MLP(..., extra=act_dim)``), clipped to [log_std_min, log_std_max].
"""
import math

import numpy as np

from gde_ref.config import IQLConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.losses.equations import awr_loss_kernel, expectile_loss_kernel, iql_q_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import (concat_columns, frozen_net, n_mlp_params, net_adam, net_backward, net_forward,
                               net_polyak, trained_net)
from gde_ref.nn.checks import check_array
from gde_ref.nn.distributions import (clip_log_std_kernel, gaussian_log_prob_kernel, tanh_mean_backward_kernel,
                                      tanh_mean_kernel)
from gde_ref.nn.kernels import kernel, mlp_forward_single

def cosine_lr(lr, step, total):
    """IQL's actor learning-rate schedule: lr (1 + cos(pi step / total)) / 2, from lr at step 0 to 0."""
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


STAT_NAMES = ("value_loss", "critic_loss", "actor_loss", "q_mean", "v_mean", "advantage_mean")


# ------------------------------------------------------------------------------------------------
# kernels: the pieces of one update step
# ------------------------------------------------------------------------------------------------
@kernel
def gaussian_actor(actor, obs, log_std_min, log_std_max):
    """The actor's distribution at obs: (mean (B, A) = tanh(net(obs)), log_std (A,), d log_std / d param (A,))."""
    raw = net_forward(actor, obs)
    mean = np.empty_like(raw)
    tanh_mean_kernel(raw, mean)
    n_mlp = n_mlp_params(actor.layout)
    log_std, mask = np.empty(raw.shape[1], raw.dtype), np.empty(raw.shape[1], raw.dtype)
    clip_log_std_kernel(actor.params[n_mlp:], log_std_min, log_std_max, log_std, mask)
    return mean, log_std, mask


@kernel
def actor_backward(actor, obs, mean, d_mean, d_log_std, log_std_mask):
    """Backpropagate dL/dmean (B, A) and dL/dlog_std (A,) into actor.grads (MLP part and log-std)."""
    d_raw = np.empty_like(mean)
    tanh_mean_backward_kernel(mean, d_mean, d_raw)
    net_backward(actor, obs, d_raw, True, False)
    n_mlp = n_mlp_params(actor.layout)
    for j in range(d_log_std.shape[0]):
        actor.grads[n_mlp + j] = d_log_std[j] * log_std_mask[j]


@kernel
def min_of_twins(q1_net, q2_net, x):
    """(min(Q1(x), Q2(x)) as a (B,) array, Q1(x), Q2(x)): the twin-critic minimum, and the two outputs
    (views into the critics' activations) that ``twin_min_action_gradient`` needs to route gradients."""
    q1 = net_forward(q1_net, x)
    q2 = net_forward(q2_net, x)
    out = np.empty(x.shape[0], x.dtype)
    for i in range(x.shape[0]):
        out[i] = min(q1[i, 0], q2[i, 0])
    return out, q1, q2


@kernel
def twin_min_action_gradient(q1_net, q2_net, x, q1_out, q2_out, d_q_min, n_obs, d_action):
    """Backward of min(Q1, Q2)(s, a) to the action, after ``min_of_twins(q1_net, q2_net, x)``, x = [s, a].

    The min sends dL/dmin_i to the smaller twin of sample i only; both critics' input gradients are taken
    (no parameter gradients) and their action columns (x[:, n_obs:]) are ADDED to d_action (B, A).
    """
    n = x.shape[0]
    d_q1, d_q2 = np.zeros((n, 1), x.dtype), np.zeros((n, 1), x.dtype)
    for i in range(n):
        if q1_out[i, 0] <= q2_out[i, 0]:
            d_q1[i, 0] = d_q_min[i]
        else:
            d_q2[i, 0] = d_q_min[i]
    net_backward(q1_net, x, d_q1, False, True)
    net_backward(q2_net, x, d_q2, False, True)
    for i in range(n):
        for j in range(d_action.shape[1]):
            d_action[i, j] += q1_net.dx[i, n_obs + j] + q2_net.dx[i, n_obs + j]


@kernel
def value_step(value, obs, q_target, expectile, lr):
    """Eq. 2: one Adam step of V on the expectile loss against q_target (B,). Returns the loss."""
    v = net_forward(value, obs)[:, 0]
    d_v = np.empty((obs.shape[0], 1), obs.dtype)
    loss = expectile_loss_kernel(q_target, v, expectile, d_v[:, 0])
    net_backward(value, obs, d_v, True, False)
    net_adam(value, lr)
    return loss


@kernel
def critic_step(q1, q2, obs_actions, rewards, discounts, next_v, lr):
    """Eq. 3: one Adam step of each critic towards r + discount * V(s'). Returns the loss and mean Q1."""
    n = obs_actions.shape[0]
    q1_out = net_forward(q1, obs_actions)[:, 0]
    q2_out = net_forward(q2, obs_actions)[:, 0]
    d_q1, d_q2 = np.empty((n, 1), obs_actions.dtype), np.empty((n, 1), obs_actions.dtype)
    loss = iql_q_loss_kernel(q1_out, q2_out, rewards, discounts, next_v, d_q1[:, 0], d_q2[:, 0])
    q_mean = q1_out.mean()
    net_backward(q1, obs_actions, d_q1, True, False)
    net_adam(q1, lr)
    net_backward(q2, obs_actions, d_q2, True, False)
    net_adam(q2, lr)
    return loss, q_mean


@kernel
def awr_actor_step(actor, obs, actions, q_target, v, temperature, max_weight, log_std_min, log_std_max, lr):
    """Eq. 4: one Adam step of the actor on the advantage-weighted log-likelihood. Returns the loss."""
    mean, log_std, mask = gaussian_actor(actor, obs, log_std_min, log_std_max)
    n, n_act = mean.shape
    logp = np.empty(n, mean.dtype)
    dlogp_dmean, dlogp_dlogstd = np.empty_like(mean), np.empty_like(mean)
    gaussian_log_prob_kernel(mean, log_std, actions, logp, dlogp_dmean, dlogp_dlogstd)
    d_logp = np.empty(n, mean.dtype)
    loss = awr_loss_kernel(logp, q_target, v, temperature, max_weight, d_logp)
    d_log_std = np.zeros(n_act, mean.dtype)
    for i in range(n):  # chain rule through log pi: dL/dmean = dL/dlogp * dlogp/dmean
        for j in range(n_act):
            dlogp_dmean[i, j] *= d_logp[i]
            d_log_std[j] += d_logp[i] * dlogp_dlogstd[i, j]
    actor_backward(actor, obs, mean, dlogp_dmean, d_log_std, mask)
    net_adam(actor, lr)
    return loss


@kernel
def iql_update_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, actor,
                      obs_actions, expectile, temperature, max_weight, polyak, critic_lr, value_lr, actor_lr,
                      log_std_min, log_std_max, stats):
    """One IQL update step on a batch (paper Eq. 2-4 and the target update); fills ``stats`` (6,)."""
    concat_columns(obs, actions, obs_actions)
    q_target = min_of_twins(q1_target, q2_target, obs_actions)[0]        # Q_theta'(s, a), fixed this step
    stats[0] = value_step(value, obs, q_target, expectile, value_lr)           # Eq. 2
    next_v = net_forward(value, next_obs)[:, 0].copy()                         # V_psi(s') after its update
    stats[1], stats[3] = critic_step(q1, q2, obs_actions, rewards, discounts, next_v, critic_lr)  # Eq. 3
    v = net_forward(value, obs)[:, 0].copy()
    stats[2] = awr_actor_step(actor, obs, actions, q_target, v, temperature, max_weight,  # Eq. 4
                              log_std_min, log_std_max, actor_lr)
    net_polyak(q1_target, q1, polyak)
    net_polyak(q2_target, q2, polyak)
    stats[4] = v.mean()
    stats[5] = (q_target - v).mean()


@kernel
def mean_action_kernel(params, layout, obs, hidden, action):
    """Single observation: action = tanh(net(obs)) written into ``action`` (A,), with no allocation."""
    raw = mlp_forward_single(params, layout, obs, hidden)
    for j in range(action.shape[0]):
        action[j] = np.tanh(raw[j])


# ------------------------------------------------------------------------------------------------
# the agent
# ------------------------------------------------------------------------------------------------
class IQLAgent:
    """IQL's networks, optimiser states and update step.

    Networks: twin critics ``q1``, ``q2`` ([obs+act, 256, 256, 1]) and their targets (parameter copies
    ``q1_target``, ``q2_target``), the value ``value`` ([obs, 256, 256, 1]) and the exploitation actor
    ``actor`` ([obs, 256, 256, act] + a log-std per action dimension).
    """

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        self.config = config or IQLConfig()
        self.obs_dim, self.act_dim, self.dtype = int(obs_dim), int(act_dim), np.dtype(dtype)
        rng = np.random.default_rng(seed)
        hidden = list(self.config.hidden)
        self.q1 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.q2 = MLP([obs_dim + act_dim, *hidden, 1], rng, dtype)
        self.value = MLP([obs_dim, *hidden, 1], rng, dtype)
        self.actor = MLP([obs_dim, *hidden, act_dim], rng, dtype, extra=act_dim)
        self.q1_target, self.q2_target = self.q1.params.copy(), self.q2.params.copy()
        self.adam = {name: AdamState(getattr(self, name).n_params, dtype) for name in ("q1", "q2", "value", "actor")}
        self._bundles = {}
        self._act_hidden = np.zeros(int(self.actor.layout[:, 1].sum()), dtype)
        self._action = np.zeros(act_dim, dtype)

    def bundles(self, batch_size):
        """The kernels' view of every network for a batch size (cached: the same arrays every step)."""
        b = self._bundles.get(batch_size)
        if b is None:
            b = {name: trained_net(getattr(self, name), self.adam[name], batch_size)
                 for name in ("q1", "q2", "value", "actor")}
            b["q1_target"] = frozen_net(self.q1_target, self.q1, batch_size)
            b["q2_target"] = frozen_net(self.q2_target, self.q2, batch_size)
            b["obs_actions"] = np.zeros((batch_size, self.obs_dim + self.act_dim), self.dtype)
            self._bundles[batch_size] = b
        return b

    def update(self, batch, actor_lr=None):
        """One IQL step on a ``gde_ref.data.Batch``; returns a dict of losses and value statistics."""
        obs, actions, rewards, discounts, next_obs = check_batch_arrays(
            "IQLAgent.update", batch, self.obs_dim, self.act_dim, self.dtype)
        c = self.config
        b = self.bundles(obs.shape[0])
        stats = np.zeros(len(STAT_NAMES))
        iql_update_kernel(obs, actions, rewards, discounts, next_obs, b["q1"], b["q2"], b["q1_target"],
                          b["q2_target"], b["value"], b["actor"], b["obs_actions"], c.expectile,
                          c.awr_temperature, c.awr_max_weight, c.polyak, c.critic_lr, c.value_lr,
                          c.actor_lr if actor_lr is None else actor_lr, c.log_std_min, c.log_std_max, stats)
        return dict(zip(STAT_NAMES, stats.tolist()))

    def log_std(self):
        """The actor's clipped log-std (A,)."""
        return np.clip(self.actor.views["extra"], self.config.log_std_min, self.config.log_std_max)

    def act(self, obs, rng=None, temperature=1.0):
        """Action for one observation (obs_dim,): the mean tanh(net(obs)) (evaluation), or, with ``rng``,
        a sample from N(mean, (temperature * std)^2) clipped to [-1, 1] (the paper's Fig. 2d temperature t).

        ``obs`` must already be normalised with the training data's statistics (``ObsNormalizer``); for raw
        observations use ``gde_ref.load_policy(RUN).act``. Returns a new array (the training loop's
        allocation-free path is ``finetune.gde.PolicyActions``).
        """
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != self.dtype:
            check_array("IQLAgent.act obs", obs, ndim=1, dtype=self.dtype, shape=(self.obs_dim,))
        mean_action_kernel(self.actor.params, self.actor.layout, obs, self._act_hidden, self._action)
        if rng is None:
            return self._action.copy()
        noise = rng.standard_normal(self.act_dim).astype(self.dtype)
        return np.clip(self._action + temperature * np.exp(self.log_std()) * noise, -1.0, 1.0)

    NETWORKS = ("q1", "q2", "value", "actor")

    def state_arrays(self):
        """Every parameter vector (networks and targets) by name, for a checkpoint."""
        out = {name: getattr(self, name).params for name in self.NETWORKS}
        out.update(q1_target=self.q1_target, q2_target=self.q2_target)
        return out

    def load_state_arrays(self, arrays):
        """Copy parameter vectors saved by ``state_arrays`` into this agent (same sizes required)."""
        for name in self.NETWORKS + ("q1_target", "q2_target"):
            target = getattr(self, name).params if name in self.NETWORKS else getattr(self, name)
            if name not in arrays or arrays[name].shape != target.shape:
                got = arrays[name].shape if name in arrays else "nothing"
                raise ValueError(f"checkpoint's {name} has {got}, this agent needs {target.shape}: it was saved "
                                 "for other observation/action sizes or hidden layers")
            target[:] = arrays[name]

    def q_values(self, obs, actions):
        """min(Q1, Q2)(s, a) for a batch, with the current critics (no gradient)."""
        obs = check_array("q_values obs", obs, ndim=2, dtype=self.dtype, shape=(None, self.obs_dim))
        actions = check_array("q_values actions", actions, ndim=2, dtype=self.dtype, shape=(obs.shape[0], self.act_dim))
        x = np.concatenate([obs, actions], axis=1)
        return np.minimum(self.q1.forward(x), self.q2.forward(x))[:, 0]
