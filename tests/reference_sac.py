"""A slow, obviously-correct NumPy version of one SAC step, written from the equations (float64).

Each loss is a function of one network's parameters (for central differences) that also returns what
its backward pass needs; ``sac_step`` chains them in the kernel's order: critics, actor, temperature, Polyak.
"""
import numpy as np

from reference_steps import Recorder, adam, backward, forward

LOG_2PI = np.log(2 * np.pi)


class RefSAC:
    """Plain float64 copies of a SACAgent's networks, log alpha and Adam states."""

    def __init__(self, agent):
        self.sizes = {"q": agent.q1.sizes, "pi": agent.actor.sizes}
        self.act_dim = agent.act_dim
        self.cfg = agent.config
        self.target_entropy = agent.target_entropy
        self.p = {"q1": agent.q1.params.astype(np.float64), "q2": agent.q2.params.astype(np.float64),
                  "pi": agent.actor.params.astype(np.float64), "q1t": agent.q1_target.astype(np.float64),
                  "q2t": agent.q2_target.astype(np.float64), "log_alpha": agent.log_alpha.astype(np.float64)}
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = {k: 0 for k in self.p}
        self.rec = Recorder()

    def step(self, name, grads, lr):
        self.t[name] = adam(self.p[name], grads, self.m[name], self.v2[name], self.t[name], lr)

    def q(self, name, x, params=None):
        return forward(self.p[name] if params is None else params, self.sizes["q"], x, self.rec)


def policy(pi_params, nets, obs, noise):
    """(activations, action, log pi, log_std, raw log-std) of a = tanh(mu + sigma eps), straight from the formulas."""
    acts = forward(pi_params, nets.sizes["pi"], obs, nets.rec)
    a_dim = nets.act_dim
    mean, raw = acts[-1][:, :a_dim], acts[-1][:, a_dim:]
    lo, hi = nets.cfg.log_std_min, nets.cfg.log_std_max
    log_std = lo + 0.5 * (hi - lo) * (np.tanh(raw) + 1)
    u = mean + np.exp(log_std) * noise
    action = np.tanh(u)
    # Gaussian density of u, minus log |da/du| = log(1 - tanh(u)^2) = -2 log cosh(u), summed over dimensions
    # (log cosh(u) = logaddexp(u, -u) - log 2: exact even where tanh(u) rounds to +-1)
    log_cosh = np.logaddexp(u, -u) - np.log(2)
    logp = np.sum(-0.5 * noise ** 2 - log_std - 0.5 * LOG_2PI + 2 * log_cosh, axis=1)
    return acts, action, logp, log_std, raw


def critic_loss(pq1, pq2, nets, b, noise_next, alpha):
    """L_Q = mean (Q1 - y)^2 + mean (Q2 - y)^2,  y = r + discount (min Q'(s', a') - alpha log pi(a'|s'))."""
    _, a_next, logp_next, _, _ = policy(nets.p["pi"], nets, b.next_obs, noise_next)
    sa_next = np.concatenate([b.next_obs, a_next], 1)
    q_next = np.minimum(nets.q("q1t", sa_next)[-1], nets.q("q2t", sa_next)[-1])[:, 0]
    y = b.rewards + b.discounts * (q_next - alpha * logp_next)
    sa = np.concatenate([b.obs, b.actions], 1)
    a1, a2 = nets.q("q1", sa, pq1), nets.q("q2", sa, pq2)
    e1, e2 = a1[-1][:, 0] - y, a2[-1][:, 0] - y
    n = len(y)
    return np.mean(e1 ** 2) + np.mean(e2 ** 2), a1, a2, 2 * e1 / n, 2 * e2 / n


def actor_loss(ppi, nets, b, noise, alpha):
    """L_pi = mean [alpha log pi(a|s) - min(Q1, Q2)(s, a)]; returns the loss, what backward needs, and log pi."""
    acts, action, logp, log_std, raw = policy(ppi, nets, b.obs, noise)
    sa = np.concatenate([b.obs, action], 1)
    a1, a2 = nets.q("q1", sa), nets.q("q2", sa)
    q1, q2 = a1[-1][:, 0], a2[-1][:, 0]
    loss = np.mean(alpha * logp - np.minimum(q1, q2))
    n = len(q1)
    pick1 = q1 <= q2
    _, dx1 = backward(nets.p["q1"], nets.sizes["q"], a1, np.where(pick1, -1.0 / n, 0.0)[:, None], nets.rec,
                      param_grads=False, input_grad=True)
    _, dx2 = backward(nets.p["q2"], nets.sizes["q"], a2, np.where(pick1, 0.0, -1.0 / n)[:, None], nets.rec,
                      param_grads=False, input_grad=True)
    d_action = (dx1 + dx2)[:, b.obs.shape[1]:]
    d_logp = np.full(n, alpha / n)
    # chain rule: u = mu + sigma eps, a = tanh(u), log pi = ... - log(1 - a^2) - log sigma
    d_u = d_action * (1 - action ** 2) + d_logp[:, None] * 2 * action
    d_log_std = d_u * np.exp(log_std) * noise - d_logp[:, None]
    lo, hi = nets.cfg.log_std_min, nets.cfg.log_std_max
    d_raw = d_log_std * 0.5 * (hi - lo) * (1 - np.tanh(raw) ** 2)
    return loss, acts, np.concatenate([d_u, d_raw], 1), logp


def alpha_loss(log_alpha, logp, target_entropy):
    """L(alpha) = -mean alpha (log pi + H_target); d/dlog alpha equals the loss itself."""
    loss = -np.exp(log_alpha[0]) * np.mean(logp + target_entropy)
    return loss, np.array([loss])


def sac_step(nets, b, noise_next, noise):
    """Critics, actor (with the updated critics), temperature (with the actor step's log pi), Polyak.

    Returns the step's losses and statistics, named as SACAgent.update's."""
    cfg = nets.cfg
    alpha = np.exp(nets.p["log_alpha"][0])
    q_loss, a1, a2, d1, d2 = critic_loss(nets.p["q1"], nets.p["q2"], nets, b, noise_next, alpha)
    g1, _ = backward(nets.p["q1"], nets.sizes["q"], a1, d1[:, None], nets.rec)
    g2, _ = backward(nets.p["q2"], nets.sizes["q"], a2, d2[:, None], nets.rec)
    nets.step("q1", g1, cfg.critic_lr)
    nets.step("q2", g2, cfg.critic_lr)
    pi_loss, acts, d_out, logp = actor_loss(nets.p["pi"], nets, b, noise, alpha)
    g, _ = backward(nets.p["pi"], nets.sizes["pi"], acts, d_out, nets.rec)
    nets.step("pi", g, cfg.actor_lr)
    a_loss, g_alpha = alpha_loss(nets.p["log_alpha"], logp, nets.target_entropy)
    nets.step("log_alpha", g_alpha, cfg.alpha_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - cfg.polyak) * nets.p[name + "t"] + cfg.polyak * nets.p[name]
    return {"critic_loss": q_loss, "actor_loss": pi_loss, "alpha_loss": a_loss, "alpha": alpha,
            "entropy": -np.mean(logp)}
