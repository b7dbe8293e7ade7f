"""A slow, obviously-correct NumPy version of one AWAC step (Nair et al., 2020), written from the equations of
rlkit's awac_trainer.py as gde_ref.agents.awac documents them, in float64.

Each loss is a function of one network's parameters (for central differences) that also returns what its
backward pass needs; ``awac_step`` chains them: the advantages and the critics' gradients at the starting
parameters, the critics' Adam steps, the Polyak averages, then the actor's step on those advantages.
"""
from collections import namedtuple

import numpy as np

from reference_steps import LOG_2PI, Recorder, adam, backward, forward, layers_size

Noise = namedtuple("Noise", ["next", "policy"])
RECORDER = Recorder()   # reference_steps' products log; unread here


def _fwd(params, sizes, x):
    return forward(params, sizes, x, RECORDER)


def _bwd(params, sizes, acts, d_out):
    return backward(params, sizes, acts, d_out, RECORDER)


class RefAWAC:
    """Plain float64 copies of an AWACAgent's networks, targets and Adam states."""

    def __init__(self, agent):
        self.cfg = agent.config
        self.sizes = {"q": agent.q1.sizes, "pi": agent.actor.sizes}
        self.n_mlp = layers_size(agent.actor.sizes)
        self.p = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params,
                  "q1t": agent.twins.q1_target, "q2t": agent.twins.q2_target}
        self.p = {k: v.astype(np.float64) for k, v in self.p.items()}          # copies
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = {k: 0 for k in self.p}

    def step(self, name, grads, lr):
        self.t[name] = adam(self.p[name], grads, self.m[name], self.v2[name], self.t[name], lr)

    def q(self, name, obs, actions, params=None):
        """All activations of critic ``name`` (q1, q2, q1t, q2t) at [obs, actions]."""
        return _fwd(self.p[name] if params is None else params, self.sizes["q"], np.concatenate([obs, actions], 1))

    def q_min(self, obs, actions, target=False):
        t = "t" if target else ""
        return np.minimum(self.q("q1" + t, obs, actions)[-1], self.q("q2" + t, obs, actions)[-1])[:, 0]


def gaussian(ppi, nets, obs):
    """(actor activations, mean tanh(f(s)) (B, A), clipped log-std (A,), its mask (A,))."""
    acts = _fwd(ppi, nets.sizes["pi"], obs)
    raw = ppi[nets.n_mlp:]
    lo, hi = nets.cfg.log_std_min, nets.cfg.log_std_max
    return acts, np.tanh(acts[-1]), np.clip(raw, lo, hi), ((raw >= lo) & (raw <= hi)).astype(float)


def sample(nets, obs, eps):
    """a = clip(tanh(f(s)) + exp(log_std) eps, -1, 1) with the current actor."""
    _, mean, ls, _ = gaussian(nets.p["pi"], nets, obs)
    return np.clip(mean + np.exp(ls) * eps, -1.0, 1.0)


def advantage(nets, b, noise):
    """(A = min Q(s, a) - min Q(s, a~), a~ = sample(s); V = min Q(s, a~)) with the current critics."""
    v = nets.q_min(b.obs, sample(nets, b.obs, noise.policy))
    return nets.q_min(b.obs, b.actions) - v, v


def critic_loss(pq1, pq2, nets, b, noise):
    """L_Q = mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2,  y = r + discount min(Q1', Q2')(s', a'), a' = sample(s')."""
    y = b.rewards + b.discounts * nets.q_min(b.next_obs, sample(nets, b.next_obs, noise.next), target=True)
    a1, a2 = nets.q("q1", b.obs, b.actions, pq1), nets.q("q2", b.obs, b.actions, pq2)
    e1, e2 = a1[-1][:, 0] - y, a2[-1][:, 0] - y
    n = len(y)
    return np.mean(e1 ** 2) + np.mean(e2 ** 2), a1, a2, 2 * e1 / n, 2 * e2 / n


def softmax_weights(adv, beta):
    z = np.exp((adv - adv.max()) / beta)
    return z / z.sum()


def actor_loss(ppi, nets, b, adv, teacher=None, kl_weight=0.0):
    """L = -sum_i softmax_i(A / beta) log pi(a_i|s_i) [+ rho mean_i KL(pi_t(.|s_i) || pi(.|s_i))], A held fixed.
    Returns (loss, activations, dL/d(actor output), dL/dlog_std (masked)); weight decay is not part of it."""
    acts, mean, ls, mask = gaussian(ppi, nets, b.obs)
    sig2 = np.exp(2 * ls)
    logp = np.sum(-0.5 * (b.actions - mean) ** 2 / sig2 - ls - 0.5 * LOG_2PI, axis=1)
    w = softmax_weights(adv, nets.cfg.beta)
    loss = -np.sum(w * logp)
    d_mean = -w[:, None] * (b.actions - mean) / sig2
    d_ls = np.sum(-w[:, None] * ((b.actions - mean) ** 2 / sig2 - 1), 0)
    if teacher is not None:
        _, mean_t, ls_t, _ = gaussian(teacher, nets, b.obs)
        n = len(w)
        ratio = (np.exp(2 * ls_t) + (mean_t - mean) ** 2) / sig2
        loss += kl_weight * np.mean(np.sum(ls - ls_t + 0.5 * ratio - 0.5, 1))
        d_mean = d_mean + kl_weight / n * (mean - mean_t) / sig2
        d_ls = d_ls + kl_weight / n * np.sum(1 - ratio, 0)
    return loss, acts, d_mean * (1 - mean ** 2), d_ls * mask


def actor_grads(nets, b, adv, teacher=None, kl_weight=0.0):
    """(loss, the flat gradient of the actor's parameters: the loss's plus weight_decay * params)."""
    loss, acts, d_out, d_ls = actor_loss(nets.p["pi"], nets, b, adv, teacher, kl_weight)
    g, _ = _bwd(nets.p["pi"], nets.sizes["pi"], acts, d_out)
    return loss, np.concatenate([g, d_ls]) + nets.cfg.policy_weight_decay * nets.p["pi"]


def critic_half(nets, b, noise):
    """The critic half: advantages first, then the critics' steps and the Polyak averages. Returns (stats, A)."""
    c = nets.cfg
    adv, v = advantage(nets, b, noise)
    q_loss, a1, a2, d1, d2 = critic_loss(nets.p["q1"], nets.p["q2"], nets, b, noise)
    stats = {"critic_loss": q_loss, "q_mean": np.mean(a1[-1]), "v_mean": v.mean(), "advantage_mean": adv.mean()}
    g1, _ = _bwd(nets.p["q1"], nets.sizes["q"], a1, d1[:, None])
    g2, _ = _bwd(nets.p["q2"], nets.sizes["q"], a2, d2[:, None])
    nets.step("q1", g1, c.critic_lr)
    nets.step("q2", g2, c.critic_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - c.polyak) * nets.p[name + "t"] + c.polyak * nets.p[name]
    return stats, adv


def awac_step(nets, b, noise, teacher=None, kl_weight=0.0):
    """One AWAC step with noise (Noise of (B, A) arrays); returns the stats named as AWACAgent.update's."""
    stats, adv = critic_half(nets, b, noise)
    stats["actor_loss"], g = actor_grads(nets, b, adv, teacher, kl_weight)
    nets.step("pi", g, nets.cfg.actor_lr)
    return stats
