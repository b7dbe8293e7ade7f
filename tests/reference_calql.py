"""A slow, obviously-correct NumPy version of one Cal-QL step (Nakamoto et al., 2023), in float64: CQL's step of
``reference_cql`` with the penalty's sampled Q-values of the policy actions (the M samples of pi(.|s_i) and
the M of pi(.|s'_i)) lifted to max(Q, G(s_i)) before the importance weight is subtracted; the M uniform ones
and the data term are left alone:

    L_k = mean_i (Q_k(s_i, a_i) - y_i)^2
          + cql_alpha mean_i [ logsumexp_j (max(Q_k(s_i, a_ij), floor_ij) - log mu_ij) - Q_k(s_i, a_i) ]

``calql_step`` returns the stats named as CalQLAgent.update's ("calibrated": the share of the policy-sampled
Q-values below their floor, averaged over the twins).
"""
import numpy as np

import reference_cql as rc
import reference_sac as rs
from reference_steps import backward, forward


def floors(mc_returns, m):
    """(n, 3M): -inf on the M uniform columns, G(s_i) on the 2M policy columns."""
    n = mc_returns.shape[0]
    return np.concatenate([np.full((n, m), -np.inf), np.repeat(mc_returns[:, None], 2 * m, axis=1)], axis=1)


def twin_forward(pq, nets, b, y, actions, log_density, floor):
    """One twin's Cal-QL loss at parameters pq: (L_k, TD, penalty, activations, dL_k/dQ_k, Q_k(s_i, a_i),
    the number of lifted Q-values)."""
    n, k, a_dim = actions.shape
    alpha = nets.cfg.cql_alpha
    x = np.concatenate([np.concatenate([b.obs, b.actions], 1),
                        np.concatenate([np.repeat(b.obs, k, axis=0), actions.reshape(n * k, a_dim)], 1)])
    acts = forward(pq, nets.sizes["q"], x, nets.rec)
    q_data, q_samples = acts[-1][:n, 0], acts[-1][n:, 0].reshape(n, k)
    below = q_samples < floor
    z = np.where(below, floor, q_samples) - log_density
    lse = rc.logsumexp(z)
    td = np.mean((q_data - y) ** 2)
    penalty = alpha * np.mean(lse - q_data)
    d_data = 2 * (q_data - y) / n - alpha / n
    d_samples = np.where(below, 0.0, alpha / n * np.exp(z - lse[:, None]))   # no gradient through a held floor
    d_q = np.concatenate([d_data, d_samples.reshape(n * k)])[:, None]
    return td + penalty, td, penalty, acts, d_q, q_data, int(below.sum())


def critic_loss(pq, name, nets, b, noise):
    """L_k of twin ``name`` at parameters pq (targets, sampled actions and floors from nets' current state)."""
    y = rc.td_target(nets, b, noise.next)
    actions, log_density = rc.sampled_actions(nets, b, noise)
    return twin_forward(pq, nets, b, y, actions, log_density, floors(b.mc_returns, nets.cfg.n_actions))[0]


def calql_step(nets, b, noise):
    """One Cal-QL step on an MCBatch with the noise of ``reference_cql.draw_noise``."""
    cfg = nets.cfg
    alpha = np.exp(nets.p["log_alpha"][0])
    y = rc.td_target(nets, b, noise.next)
    actions, log_density = rc.sampled_actions(nets, b, noise)
    floor = floors(b.mc_returns, cfg.n_actions)
    _, td1, pen1, acts1, d_q1, q1_data, lift1 = twin_forward(nets.p["q1"], nets, b, y, actions, log_density, floor)
    _, td2, pen2, acts2, d_q2, _, lift2 = twin_forward(nets.p["q2"], nets, b, y, actions, log_density, floor)
    g1, _ = backward(nets.p["q1"], nets.sizes["q"], acts1, d_q1, nets.rec)
    g2, _ = backward(nets.p["q2"], nets.sizes["q"], acts2, d_q2, nets.rec)
    nets.step("q1", g1, cfg.critic_lr)
    nets.step("q2", g2, cfg.critic_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - cfg.polyak) * nets.p[name + "t"] + cfg.polyak * nets.p[name]
    pi_loss, acts, d_out, logp = rs.actor_loss(nets.p["pi"], nets, b, noise.actor, alpha)
    g, _ = backward(nets.p["pi"], nets.sizes["pi"], acts, d_out, nets.rec)
    nets.step("pi", g, cfg.actor_lr)
    a_loss, g_alpha = rs.alpha_loss(nets.p["log_alpha"], logp, nets.target_entropy)
    nets.step("log_alpha", g_alpha, cfg.alpha_lr)
    policy_q = 2 * b.obs.shape[0] * 2 * cfg.n_actions
    return {"critic_loss": td1 + td2, "cql_penalty": pen1 + pen2, "actor_loss": pi_loss, "alpha_loss": a_loss,
            "alpha": alpha, "q_mean": np.mean(q1_data), "calibrated": (lift1 + lift2) / policy_q}
