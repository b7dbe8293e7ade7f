"""A slow, obviously-correct NumPy version of one continuous-CQL step (Kumar et al., 2020), written from the
equations in float64; SAC's actor and temperature losses are reused from ``reference_sac``.

One step (``cql_step``), in gde_ref.agents.cql's order:

1. a' = tanh(mu(s') + sigma(s') eps'),  y = r + discount min(Q1', Q2')(s', a')        (no entropy term)
2. for each twin k, with M uniform actions (log-density -A log 2), M samples of pi(.|s_i), M of pi(.|s'_i)
   (their log pi), all evaluated at s_i and held constant:
       L_k = mean_i (Q_k(s_i, a_i) - y_i)^2
             + cql_alpha mean_i [ logsumexp_j (Q_k(s_i, a_ij) - log mu_ij) - Q_k(s_i, a_i) ]
   one Adam step of each twin;
3. Polyak averages of the target twins;
4. SAC's actor loss on the updated critics, one Adam step;  5. SAC's temperature loss, one Adam step.

Each loss is a function of one network's parameters (for central differences) that also returns what its
backward pass needs; every matrix product goes through ``nets.rec`` (a ``Recorder``), in the kernel's order.
GDE's pieces on a squashed actor (Eq. 5 with the deterministic action tanh(mu_b(s)) and the KL between the pre-tanh
Gaussians) are here too, as plain losses.
"""
from collections import namedtuple

import numpy as np

import reference_sac as rs
from reference_steps import Recorder, backward, forward

Noise = namedtuple("Noise", ["next", "at_obs", "at_next_obs", "uniform", "actor"])


def draw_noise(rng, n, act_dim, m, dtype=np.float64):
    """The arrays CQLAgent.update draws from its generator, in its order: eps' (n, A), eps at s (n m, A), eps at
    s' (n m, A), uniform actions 2 u - 1 (n m, A), eps for the actor step (n, A)."""
    nxt = rng.standard_normal((n, act_dim), dtype=dtype)
    at_obs = rng.standard_normal((n * m, act_dim), dtype=dtype)
    at_next_obs = rng.standard_normal((n * m, act_dim), dtype=dtype)
    uniform = rng.random((n * m, act_dim), dtype=dtype)
    uniform = 2.0 * uniform - 1.0
    actor = rng.standard_normal((n, act_dim), dtype=dtype)
    return Noise(nxt, at_obs, at_next_obs, uniform, actor)


class RefCQL(rs.RefSAC):
    """Plain float64 copies of a CQLAgent's networks, targets, log alpha and (fresh) Adam states."""

    def __init__(self, agent):
        self.sizes = {"q": agent.q1.sizes, "pi": agent.actor.sizes}
        self.act_dim = agent.act_dim
        self.cfg = agent.config
        self.target_entropy = -float(agent.act_dim)
        tw = agent.twins
        self.p = {"q1": tw.q1.params, "q2": tw.q2.params, "pi": agent.actor.params, "q1t": tw.q1_target,
                  "q2t": tw.q2_target, "log_alpha": agent.log_alpha}
        self.p = {k: v.astype(np.float64) for k, v in self.p.items()}          # copies
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = {k: 0 for k in self.p}
        self.rec = Recorder()


def logsumexp(z):
    """log sum_j exp(z_ij) per row, shifted by the row's maximum."""
    top = z.max(axis=1)
    return top + np.log(np.sum(np.exp(z - top[:, None]), axis=1))


def td_target(nets, b, noise_next):
    """y = r + discount min(Q1', Q2')(s', a'), a' = tanh(mu(s') + sigma(s') eps') (no entropy term)."""
    a_next = rs.policy(nets.p["pi"], nets, b.next_obs, noise_next)[1]
    sa = np.concatenate([b.next_obs, a_next], 1)
    q_next = np.minimum(nets.q("q1t", sa)[-1], nets.q("q2t", sa)[-1])[:, 0]
    return b.rewards + b.discounts * q_next


def sampled_actions(nets, b, noise):
    """The penalty's actions per state i, as (actions (n, 3M, A), log-densities (n, 3M)): M uniform actions
    (log-density -A log 2), M samples of pi(.|s_i) and M of pi(.|s'_i) (log pi), sample j of state i being row
    i M + j of the noise arrays."""
    n, a_dim = b.obs.shape[0], nets.act_dim
    m = noise.at_obs.shape[0] // n
    _, a_obs, logp_obs, _, _ = rs.policy(nets.p["pi"], nets, np.repeat(b.obs, m, axis=0), noise.at_obs)
    _, a_nxt, logp_nxt, _, _ = rs.policy(nets.p["pi"], nets, np.repeat(b.next_obs, m, axis=0), noise.at_next_obs)
    actions = np.concatenate([noise.uniform.reshape(n, m, a_dim), a_obs.reshape(n, m, a_dim),
                              a_nxt.reshape(n, m, a_dim)], axis=1)
    log_density = np.concatenate([np.full((n, m), -a_dim * np.log(2.0)), logp_obs.reshape(n, m),
                                  logp_nxt.reshape(n, m)], axis=1)
    return actions, log_density


def twin_forward(pq, nets, b, y, actions, log_density):
    """One twin's loss L_k = TD + penalty at parameters pq (y, actions, log_density constants), from one forward
    on the n (1 + k) rows [(s_i, a_i); (s_i, a_ij)] (row n + i k + j: the kernel's penalty rows, in its order).

    Returns (L_k, TD, penalty, the activations, dL_k/dQ_k (n (1 + k), 1), Q_k(s_i, a_i) (n,))."""
    n, k, a_dim = actions.shape
    alpha = nets.cfg.cql_alpha
    x = np.concatenate([np.concatenate([b.obs, b.actions], 1),
                        np.concatenate([np.repeat(b.obs, k, axis=0), actions.reshape(n * k, a_dim)], 1)])
    acts = forward(pq, nets.sizes["q"], x, nets.rec)
    q_data, q_samples = acts[-1][:n, 0], acts[-1][n:, 0].reshape(n, k)
    z = q_samples - log_density
    lse = logsumexp(z)
    td = np.mean((q_data - y) ** 2)
    penalty = alpha * np.mean(lse - q_data)
    d_data = 2 * (q_data - y) / n - alpha / n
    d_samples = alpha / n * np.exp(z - lse[:, None])                 # softmax over each state's sampled actions
    return td + penalty, td, penalty, acts, np.concatenate([d_data, d_samples.reshape(n * k)])[:, None], q_data


def twin_loss(pq, nets, b, y, actions, log_density):
    """``twin_forward``, then the backward: (L_k, TD, penalty, grads of L_k w.r.t. pq (by the chain rule),
    Q_k(s_i, a_i) (n,))."""
    loss, td, penalty, acts, d_q, q_data = twin_forward(pq, nets, b, y, actions, log_density)
    g, _ = backward(pq, nets.sizes["q"], acts, d_q, nets.rec)
    return loss, td, penalty, g, q_data


def critic_loss(pq, name, nets, b, noise):
    """L_k of twin ``name`` ('q1' or 'q2') at parameters pq, its target and sampled actions from nets' current
    actor and target twins (for central differences)."""
    y = td_target(nets, b, noise.next)
    actions, log_density = sampled_actions(nets, b, noise)
    return twin_loss(pq, nets, b, y, actions, log_density)[0]


def pre_tanh_gaussian(params, nets, obs):
    """(mu (n, A), log_std (n, A)) of a squashed actor: log_std = lo + (hi - lo) (tanh(raw) + 1) / 2."""
    out = forward(params, nets.sizes["pi"], obs, nets.rec)[-1]
    a_dim, lo, hi = nets.act_dim, nets.cfg.log_std_min, nets.cfg.log_std_max
    return out[:, :a_dim], lo + (hi - lo) * (np.tanh(out[:, a_dim:]) + 1) / 2


def mean_kl(teacher, student, nets, obs):
    """mean_i KL(N(mu_t, sigma_t^2) || N(mu_s, sigma_s^2)) between the two actors' pre-tanh diagonal Gaussians."""
    mu_t, ls_t = pre_tanh_gaussian(teacher, nets, obs)
    mu_s, ls_s = pre_tanh_gaussian(student, nets, obs)
    kl = np.sum(ls_s - ls_t + (np.exp(2 * ls_t) + (mu_t - mu_s) ** 2) / (2 * np.exp(2 * ls_s)) - 0.5, axis=1)
    return np.mean(kl)


def squashed_explore_loss(p_explore, teacher, nets, obs, rho):
    """GDE's Eq. 5 on a squashed actor: -mean_i min(Q1, Q2)(s_i, tanh(mu_b(s_i))) + rho mean_i KL(pi_t || pi_b)."""
    mu_b, _ = pre_tanh_gaussian(p_explore, nets, obs)
    sa = np.concatenate([obs, np.tanh(mu_b)], 1)
    q_min = np.minimum(nets.q("q1", sa)[-1], nets.q("q2", sa)[-1])[:, 0]
    return -np.mean(q_min) + rho * mean_kl(teacher, p_explore, nets, obs)


def guided_actor_loss(ppi, teacher, nets, b, noise, alpha, rho):
    """GDE w/o explore on CQL: SAC's actor loss + rho mean_i KL(pi_t || pi) (pre-tanh Gaussians)."""
    return rs.actor_loss(ppi, nets, b, noise, alpha)[0] + rho * mean_kl(teacher, ppi, nets, b.obs)


def cql_step(nets, b, noise):
    """One CQL step with the noise of ``draw_noise``; returns the stats named as CQLAgent.update's."""
    cfg = nets.cfg
    alpha = np.exp(nets.p["log_alpha"][0])
    y = td_target(nets, b, noise.next)
    actions, log_density = sampled_actions(nets, b, noise)
    _, td1, pen1, acts1, d_q1, q1_data = twin_forward(nets.p["q1"], nets, b, y, actions, log_density)
    _, td2, pen2, acts2, d_q2, _ = twin_forward(nets.p["q2"], nets, b, y, actions, log_density)
    g1, _ = backward(nets.p["q1"], nets.sizes["q"], acts1, d_q1, nets.rec)   # both forwards, then both backwards,
    g2, _ = backward(nets.p["q2"], nets.sizes["q"], acts2, d_q2, nets.rec)   # as the kernel (its products in order)
    nets.step("q1", g1, cfg.critic_lr)
    nets.step("q2", g2, cfg.critic_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - cfg.polyak) * nets.p[name + "t"] + cfg.polyak * nets.p[name]
    pi_loss, acts, d_out, logp = rs.actor_loss(nets.p["pi"], nets, b, noise.actor, alpha)
    g, _ = backward(nets.p["pi"], nets.sizes["pi"], acts, d_out, nets.rec)
    nets.step("pi", g, cfg.actor_lr)
    a_loss, g_alpha = rs.alpha_loss(nets.p["log_alpha"], logp, nets.target_entropy)
    nets.step("log_alpha", g_alpha, cfg.alpha_lr)
    return {"critic_loss": td1 + td2, "cql_penalty": pen1 + pen2, "actor_loss": pi_loss, "alpha_loss": a_loss,
            "alpha": alpha, "q_mean": np.mean(q1_data)}
