"""A slow, obviously-correct NumPy version of one IQL step and one GDE step, written from the equations.

Used by the tests to check the compiled update kernels (same parameters after the same steps), their
gradients (central differences of these losses) and the benchmark's list of matrix products (every
product here goes through ``Recorder.mm``, which logs its shape).
"""
import numpy as np

LOG_2PI = np.log(2 * np.pi)


def make_batch(rng, obs_dim, act_dim, n, dtype=np.float64):
    """A random continuous-action Batch with some terminals (discount 0)."""
    from gde_ref.data import Batch
    return Batch(rng.standard_normal((n, obs_dim)).astype(dtype),
                 np.tanh(rng.standard_normal((n, act_dim))).astype(dtype),
                 rng.standard_normal(n).astype(dtype),
                 (0.99 * (rng.random(n) > 0.2)).astype(dtype),
                 rng.standard_normal((n, obs_dim)).astype(dtype))


class Recorder:
    """Matrix products with their shapes logged as (m, k, n, transpose_a, transpose_b)."""

    def __init__(self):
        self.products = []

    def mm(self, a, b, ta=False, tb=False):
        a2, b2 = (a.T if ta else a), (b.T if tb else b)
        self.products.append((a2.shape[0], a2.shape[1], b2.shape[1], ta, tb))
        return a2 @ b2


def layers(params, sizes):
    """[(W, b)] views of a flat vector in the package's layout (weights row-major (n_in, n_out), then bias)."""
    out, off = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w = params[off:off + n_in * n_out].reshape(n_in, n_out)
        off += n_in * n_out
        out.append((w, params[off:off + n_out]))
        off += n_out
    return out


def forward(params, sizes, x, rec):
    """All activations [x, h1, ..., out] of a ReLU MLP with a linear output."""
    acts = [x]
    ls = layers(params, sizes)
    for k, (w, b) in enumerate(ls):
        z = rec.mm(acts[-1], w) + b
        acts.append(np.maximum(z, 0.0) if k < len(ls) - 1 else z)
    return acts


def backward(params, sizes, acts, d_out, rec, param_grads=True, input_grad=False):
    """(flat gradient of the MLP part or None, dL/dx or None) by the chain rule, layer by layer."""
    ls = layers(params, sizes)
    grads = np.zeros(sum(w.size + b.size for w, b in ls)) if param_grads else None
    glayers = layers(grads, sizes) if param_grads else None
    delta, dx = d_out, None
    for k in range(len(ls) - 1, -1, -1):
        if param_grads:
            glayers[k][0][:] = rec.mm(acts[k], delta, ta=True)
            glayers[k][1][:] = delta.sum(0)
        if k > 0:
            delta = rec.mm(delta, ls[k][0], tb=True) * (acts[k] > 0)
        elif input_grad:
            dx = rec.mm(delta, ls[0][0], tb=True)
    return grads, dx


def adam(params, grads, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Textbook Adam (Kingma & Ba), in place; returns the new t."""
    t += 1
    m[:] = b1 * m + (1 - b1) * grads
    v[:] = b2 * v + (1 - b2) * grads ** 2
    params -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return t


class RefNets:
    """Plain float64 copies of an IQLAgent's (and optionally a GDELearner's) networks and Adam states."""

    def __init__(self, agent, learner=None):
        self.sizes = {"q": agent.q1.sizes, "v": agent.value.sizes, "pi": agent.actor.sizes}
        self.p = {"q1": agent.q1.params.astype(np.float64), "q2": agent.q2.params.astype(np.float64),
                  "v": agent.value.params.astype(np.float64), "pi": agent.actor.params.astype(np.float64),
                  "q1t": agent.q1_target.astype(np.float64), "q2t": agent.q2_target.astype(np.float64)}
        if learner is not None:
            self.p["explore"] = learner.explore.params.astype(np.float64)
            self.p["teacher"] = learner.teacher_params.astype(np.float64)
        self.m = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.v2 = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.t = {k: 0 for k in self.p}
        self.n_mlp = layers_size(self.sizes["pi"])

    def step(self, name, grads, lr):
        self.t[name] = adam(self.p[name], grads, self.m[name], self.v2[name], self.t[name], lr)


def layers_size(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


# ------------------------------------------------------------------------------------------------
# the losses, each as a function of one network's parameters (for central differences)
# ------------------------------------------------------------------------------------------------
def value_loss(pv, nets, b, cfg, rec):
    sa = np.concatenate([b.obs, b.actions], 1)
    qt = np.minimum(forward(nets.p["q1t"], nets.sizes["q"], sa, rec)[-1],
                    forward(nets.p["q2t"], nets.sizes["q"], sa, rec)[-1])[:, 0]
    acts = forward(pv, nets.sizes["v"], b.obs, rec)
    u = qt - acts[-1][:, 0]
    w = np.where(u < 0, 1 - cfg.expectile, cfg.expectile)
    return np.mean(w * u ** 2), acts, -2 * w * u / len(u), qt


def critic_loss(pq1, pq2, nets, b, rec):
    next_v = forward(nets.p["v"], nets.sizes["v"], b.next_obs, rec)[-1][:, 0]
    y = b.rewards + b.discounts * next_v
    sa = np.concatenate([b.obs, b.actions], 1)
    a1 = forward(pq1, nets.sizes["q"], sa, rec)
    a2 = forward(pq2, nets.sizes["q"], sa, rec)
    e1, e2 = a1[-1][:, 0] - y, a2[-1][:, 0] - y
    return np.mean(e1 ** 2) + np.mean(e2 ** 2), a1, a2, 2 * e1 / len(y), 2 * e2 / len(y)


def gaussian(pi_params, nets, obs, cfg, rec):
    acts = forward(pi_params, nets.sizes["pi"], obs, rec)
    mean = np.tanh(acts[-1])
    raw_ls = pi_params[nets.n_mlp:]
    return acts, mean, np.clip(raw_ls, cfg.log_std_min, cfg.log_std_max), \
        ((raw_ls >= cfg.log_std_min) & (raw_ls <= cfg.log_std_max)).astype(float)


def awr_loss(ppi, nets, b, qt, v, cfg, rec):
    acts, mean, ls, mask = gaussian(ppi, nets, b.obs, cfg, rec)
    sig2 = np.exp(2 * ls)
    logp = np.sum(-0.5 * (b.actions - mean) ** 2 / sig2 - ls - 0.5 * LOG_2PI, axis=1)
    w = np.minimum(np.exp(cfg.awr_temperature * (qt - v)), cfg.awr_max_weight)
    loss = -np.mean(w * logp)
    dlogp = -w / len(w)
    d_mean = dlogp[:, None] * (b.actions - mean) / sig2
    d_ls = np.sum(dlogp[:, None] * ((b.actions - mean) ** 2 / sig2 - 1), 0) * mask
    return loss, acts, d_mean * (1 - mean ** 2), d_ls


def explore_loss(pexp, nets, b, rho, cfg, rec):
    acts, mean_b, ls_b, mask = gaussian(pexp, nets, b.obs, cfg, rec)
    _, mean_t, ls_t, _ = gaussian(nets.p["teacher"], nets, b.obs, cfg, rec)
    sa = np.concatenate([b.obs, mean_b], 1)
    a1 = forward(nets.p["q1"], nets.sizes["q"], sa, rec)
    a2 = forward(nets.p["q2"], nets.sizes["q"], sa, rec)
    q1, q2 = a1[-1][:, 0], a2[-1][:, 0]
    kl = np.sum(ls_b - ls_t + (np.exp(2 * ls_t) + (mean_t - mean_b) ** 2) / (2 * np.exp(2 * ls_b)) - 0.5, 1)
    loss = -np.mean(np.minimum(q1, q2)) + rho * np.mean(kl)
    n = len(q1)
    pick1 = q1 <= q2
    d1 = np.where(pick1, -1.0 / n, 0.0)[:, None]
    d2 = np.where(pick1, 0.0, -1.0 / n)[:, None]
    _, dx1 = backward(nets.p["q1"], nets.sizes["q"], a1, d1, rec, param_grads=False, input_grad=True)
    _, dx2 = backward(nets.p["q2"], nets.sizes["q"], a2, d2, rec, param_grads=False, input_grad=True)
    obs_dim = b.obs.shape[1]
    d_mean = (dx1 + dx2)[:, obs_dim:] + rho / n * (mean_b - mean_t) / np.exp(2 * ls_b)
    d_ls = rho / n * np.sum(1 - (np.exp(2 * ls_t) + (mean_t - mean_b) ** 2) / np.exp(2 * ls_b), 0) * mask
    return loss, acts, d_mean * (1 - mean_b ** 2), d_ls


# ------------------------------------------------------------------------------------------------
# the steps
# ------------------------------------------------------------------------------------------------
def iql_step(nets, b, cfg, rec, actor_lr=None):
    """Eq. 2 (V), Eq. 3 (Q1, Q2), Eq. 4 (actor), Polyak; same order and products as the kernel."""
    _, acts, dv, qt = value_loss(nets.p["v"], nets, b, cfg, rec)
    g, _ = backward(nets.p["v"], nets.sizes["v"], acts, dv[:, None], rec)
    nets.step("v", g, cfg.value_lr)
    _, a1, a2, d1, d2 = critic_loss(nets.p["q1"], nets.p["q2"], nets, b, rec)
    g1, _ = backward(nets.p["q1"], nets.sizes["q"], a1, d1[:, None], rec)
    nets.step("q1", g1, cfg.critic_lr)
    g2, _ = backward(nets.p["q2"], nets.sizes["q"], a2, d2[:, None], rec)
    nets.step("q2", g2, cfg.critic_lr)
    v = forward(nets.p["v"], nets.sizes["v"], b.obs, rec)[-1][:, 0]
    _, acts, d_raw, d_ls = awr_loss(nets.p["pi"], nets, b, qt, v, cfg, rec)
    g, _ = backward(nets.p["pi"], nets.sizes["pi"], acts, d_raw, rec)
    nets.step("pi", np.concatenate([g, d_ls]), cfg.actor_lr if actor_lr is None else actor_lr)
    for name in ("q1", "q2"):
        nets.p[name + "t"][:] = (1 - cfg.polyak) * nets.p[name + "t"] + cfg.polyak * nets.p[name]


def gde_step(nets, b, cfg, rho, explore_lr, rec):
    """The IQL step, then Eq. 5 for the exploration policy."""
    iql_step(nets, b, cfg, rec)
    _, acts, d_raw, d_ls = explore_loss(nets.p["explore"], nets, b, rho, cfg, rec)
    g, _ = backward(nets.p["explore"], nets.sizes["pi"], acts, d_raw, rec)
    nets.step("explore", np.concatenate([g, d_ls]), explore_lr)
