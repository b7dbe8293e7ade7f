"""A slow, obviously-correct NumPy version of one TD3+BC step (Fujimoto & Gu, 2021), written from the
equations of sfujim/TD3_BC, in float64.

Each loss is a function of one network's parameters (for central differences) that also returns what its
backward pass needs; ``td3bc_step`` chains them as the official code: critics every step, and on every
``policy_freq``-th step the actor (with the critics after their step) and the Polyak averages of all targets.
"""
import numpy as np

from reference_steps import Recorder, adam, backward, forward


class RefTD3BC:
    """Plain float64 copies of a TD3BCAgent's networks, targets, Adam states and update count."""

    def __init__(self, agent):
        self.cfg = agent.config
        self.sizes = {"q": agent.q1.sizes, "pi": agent.actor.sizes}
        self.p = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params,
                  "q1t": agent.twins.q1_target, "q2t": agent.twins.q2_target, "pit": agent.actor_target}
        self.p = {k: v.astype(np.float64) for k, v in self.p.items()}          # copies
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = {k: 0 for k in self.p}
        self.updates = agent.updates
        self.rec = Recorder()

    def step(self, name, grads, lr):
        self.t[name] = adam(self.p[name], grads, self.m[name], self.v2[name], self.t[name], lr)

    def net(self, name, x, params=None):
        """All activations of network ``name`` (q1, q2, q1t, q2t: critics; pi, pit: actors) at x."""
        sizes = self.sizes["pi" if name.startswith("pi") else "q"]
        return forward(self.p[name] if params is None else params, sizes, x, self.rec)


def smoothed_target_action(nets, next_obs, noise):
    """a~ = clip(tanh(f'(s')) + clip(policy_noise eps, -noise_clip, noise_clip), -1, 1)."""
    c = nets.cfg
    smoothing = np.clip(c.policy_noise * noise, -c.noise_clip, c.noise_clip)
    return np.clip(np.tanh(nets.net("pit", next_obs)[-1]) + smoothing, -1.0, 1.0)


def critic_loss(pq1, pq2, nets, b, noise):
    """L_Q = mean (Q1(s, a) - y)^2 + mean (Q2(s, a) - y)^2,  y = r + discount min(Q1', Q2')(s', a~)."""
    sa_next = np.concatenate([b.next_obs, smoothed_target_action(nets, b.next_obs, noise)], 1)
    y = b.rewards + b.discounts * np.minimum(nets.net("q1t", sa_next)[-1], nets.net("q2t", sa_next)[-1])[:, 0]
    sa = np.concatenate([b.obs, b.actions], 1)
    a1, a2 = nets.net("q1", sa, pq1), nets.net("q2", sa, pq2)
    e1, e2 = a1[-1][:, 0] - y, a2[-1][:, 0] - y
    n = len(y)
    return np.mean(e1 ** 2) + np.mean(e2 ** 2), a1, a2, 2 * e1 / n, 2 * e2 / n


def actor_loss(ppi, nets, b, lam=None):
    """L_pi = -lam mean Q1(s, pi(s)) + mean_ij (pi(s)_ij - a_ij)^2, pi(s) = tanh(f(s)).

    lam = alpha / mean |Q1(s, pi(s))| unless given (pass it to hold it constant, as the official code's
    detach). Returns (loss, actor activations, dL/d(actor output) with lam constant, lam).
    """
    acts = nets.net("pi", b.obs, ppi)
    pi = np.tanh(acts[-1])
    a1 = nets.net("q1", np.concatenate([b.obs, pi], 1))
    q = a1[-1][:, 0]
    if lam is None:
        lam = nets.cfg.alpha / np.mean(np.abs(q))
    n, n_act = pi.shape
    loss = -lam * np.mean(q) + np.mean((pi - b.actions) ** 2)
    _, dx = backward(nets.p["q1"], nets.sizes["q"], a1, np.full((n, 1), -lam / n), nets.rec,
                     param_grads=False, input_grad=True)
    d_pi = dx[:, b.obs.shape[1]:] + 2 * (pi - b.actions) / (n * n_act)
    return loss, acts, d_pi * (1 - pi ** 2), lam


def td3bc_step(nets, b, noise):
    """One TD3+BC step with target-smoothing noise eps (B, A); returns the stats named as TD3BCAgent.update's
    (actor_loss is nan on a critic-only step)."""
    c = nets.cfg
    nets.updates += 1
    q_loss, a1, a2, d1, d2 = critic_loss(nets.p["q1"], nets.p["q2"], nets, b, noise)
    stats = {"critic_loss": q_loss, "actor_loss": np.nan, "q_mean": np.mean(a1[-1])}
    g1, _ = backward(nets.p["q1"], nets.sizes["q"], a1, d1[:, None], nets.rec)
    g2, _ = backward(nets.p["q2"], nets.sizes["q"], a2, d2[:, None], nets.rec)
    nets.step("q1", g1, c.critic_lr)
    nets.step("q2", g2, c.critic_lr)
    if nets.updates % c.policy_freq == 0:
        stats["actor_loss"], acts, d_out, _ = actor_loss(nets.p["pi"], nets, b)
        g, _ = backward(nets.p["pi"], nets.sizes["pi"], acts, d_out, nets.rec)
        nets.step("pi", g, c.actor_lr)
        for name in ("q1", "q2", "pi"):
            nets.p[name + "t"][:] = (1 - c.polyak) * nets.p[name + "t"] + c.polyak * nets.p[name]
    return stats
