"""Table 5 (Appendix A.3.1): three ways for IQL's fine-tuning to use the offline dataset besides adding it
to the buffer as it is (the ``iql`` row). Each is a buffer (``data.priority``) and an IQL learner that
differs from ``NaiveFinetuner`` only in what it writes back to that buffer.

    iql-filter    only the offline transitions of the highest-return trajectories that hold 20% of the
                  data (the paper: "top 20% samples with the highest cumulative trajectory rewards"; Chen et
                  al. 2020), plus every online one, uniform over the union; one-step transitions as ``iql``.
    iql-per       prioritized experience replay (Schaul et al. 2016) over offline + online transitions, both
                  as 5-step returns (the paper: "TD error and 5-step returns"). Proportional variant,
                  alpha = 0.6, p = (|delta| + 1e-3)^alpha; new transitions enter with the running max.
    iql-balanced  Off2OnRL's balanced replay (Lee et al. 2022) on the IQL backbone: a density-ratio network
                  w(s, a) is trained each step to tell online from offline samples (JS variational loss,
                  ``js_ratio_loss``) and each sampled transition's priority becomes
                  clip(w^(1/T) / mean_offline(w^(1/T)), 1e-3, 1e3), T = 5.

Decisions (ours; the paper gives none of them):

* TD errors (iql-per): recomputed after the update by forward passes with the updated networks,
  delta = r + gamma^m (1 - d) V(s') - min(Q1, Q2)(s, a), which is the error of IQL's critic regression
  (Eq. 3). IQL's fused update kernel is left untouched; Schaul et al. use the delta of the step itself.
* No importance-sampling weights (Schaul et al. use w_i = (N P(i))^-beta, beta annealed to 1): IQL's three
  losses (expectile, critic, AWR) run in fused kernels without per-sample weights, the paper does not
  mention them, and Off2OnRL's official balanced replay applies none either. The sampling bias of PER is
  therefore not corrected, as in Off2OnRL.
* The density-ratio network sees [s, a] with s normalised as the agent sees it (official: raw states), has
  the backbone's hidden sizes (official and default: 2 x 256), final bias 1 and a ReLU output (official).
  Its two uniform batches (256 offline, 256 online, official) are drawn by the buffer with the loop's rng,
  alongside the prioritized batch; before the first online transition there is no density step.
* Off2OnRL's buffer start (official): offline priority 1, the running max set to M f / ((1 - f) N) with
  f = 0.5 and N = 1000, so the first 1000 online steps hold about half of the mass. Official skips the
  offline timeout rows; ours keeps them (they bootstrap, as in ``iql``). Its other half (SAC on a 5-member
  pessimistic Q-ensemble) is not used: the backbone stays IQL, as the paper's Table 5 compares IQL variants.
"""
from types import SimpleNamespace

import numpy as np

from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.mixed import offline_replay
from gde_ref.data.priority import PrioritizedBuffer, SampledBatch, offline_part, top_trajectories
from gde_ref.finetune.context import need_offline
from gde_ref.finetune.variants import NaiveFinetuner
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.adam import adam_step
from gde_ref.nn.checks import restore_arrays, sub_state

FILTER_FRACTION = 0.2
PER_N_STEP, PER_ALPHA, PER_EPS = 5, 0.6, 1e-3
TEMPERATURE, INIT_ONLINE_FRACTION, FRACTION_STEPS = 5.0, 0.5, 1000
PRIORITY_RANGE, DENSITY_BATCH, DENSITY_LR, LOG_EPS = (1e-3, 1e3), 256, 3e-4, 1e-10


# ------------------------------------------------------------------------------------------------
# buffers
# ------------------------------------------------------------------------------------------------
def filter_buffer(ctx):
    """The offline rows of ``top_trajectories`` (20%) first, then the online ones; uniform over the union."""
    need_offline(ctx, "keeps the offline data in its buffer", n_steps=(1,))
    o = ctx.offline
    rows = top_trajectories(o, FILTER_FRACTION)
    kept = SimpleNamespace(observations=np.asarray(o.observations)[rows], actions=np.asarray(o.actions)[rows],
                           rewards=np.asarray(o.rewards)[rows], terminals=np.asarray(o.terminals)[rows],
                           next_observations=np.asarray(o.next_observations)[rows])
    return offline_replay(kept, ctx.agent.obs_dim, ctx.agent.act_dim, ctx.agent.config.discount,
                          extra=ctx.config.buffer_size)


def per_buffer(ctx):
    """PER over the 5-step offline transitions (priority 1 at first) and 5-step online ones."""
    need_offline(ctx, "replays the offline data with 5-step returns", n_steps=(1, PER_N_STEP))
    a, gamma = ctx.agent, ctx.agent.config.discount
    return PrioritizedBuffer(offline_part(ctx.offline, a.obs_dim, a.act_dim, PER_N_STEP, gamma),
                             ReplayBuffer(ctx.config.buffer_size, a.obs_dim, a.act_dim, PER_N_STEP, gamma))


def balanced_buffer(ctx):
    """Off2OnRL's balanced replay buffer: one-step transitions, offline at priority 1, online at the running
    max starting at M f / ((1 - f) N); every sample also draws the density-ratio batches."""
    need_offline(ctx, "keeps the offline data in its buffer", n_steps=(1,))
    a, gamma = ctx.agent, ctx.agent.config.discount
    offline = offline_part(ctx.offline, a.obs_dim, a.act_dim, 1, gamma)
    f = INIT_ONLINE_FRACTION
    return PrioritizedBuffer(offline, ReplayBuffer(ctx.config.buffer_size, a.obs_dim, a.act_dim, 1, gamma),
                             1.0, len(offline) * f / ((1.0 - f) * FRACTION_STEPS), DENSITY_BATCH)


def _sampled(batch, algo):
    if not isinstance(batch, SampledBatch):
        raise TypeError(f"{algo} updates on batches of its own buffer (make_buffer({algo!r}, ...)), whose slots "
                        f"get the new priorities; got a {type(batch).__name__}")
    return batch


# ------------------------------------------------------------------------------------------------
# iql-per
# ------------------------------------------------------------------------------------------------
class PERFinetuner(NaiveFinetuner):
    """IQL's own update, then the batch's priorities (|delta| + eps)^alpha from its TD errors after the step."""

    def td_errors(self, raw):
        """|r + gamma^m (1 - d) V(s') - min(Q1, Q2)(s, a)| of a raw batch, with the current networks (B,)."""
        b = self.inputs.batch(raw)
        q = self.agent.q_values(b.obs, b.actions)
        next_v = self.agent.value.forward(np.ascontiguousarray(b.next_obs))[:, 0]
        return np.abs(b.rewards + b.discounts * next_v - q).astype(np.float64)

    def update(self, batch, progress):
        batch = _sampled(batch, "iql-per")
        stats = super().update(batch, progress)
        td = self.td_errors(batch)
        batch.buffer.update_priorities(batch.indices, (td + PER_EPS) ** PER_ALPHA)
        stats["td_error"] = float(td.mean())
        return stats


# ------------------------------------------------------------------------------------------------
# iql-balanced
# ------------------------------------------------------------------------------------------------
def js_ratio_loss(w_offline, w_online):
    """Off2OnRL's density-ratio loss (the JS divergence's variational form), with w >= 0:

        L = mean_offline[ -log(2 / (w + 1) + 1e-10) ] - mean_online[ log(2 w / (w + 1) + 1e-10) ]

    minimised when w(s, a) = d_online / d_offline. Returns (L, dL/dw_offline, dL/dw_online)."""
    g = 2.0 / (w_offline + 1.0)
    h = 2.0 * w_online / (w_online + 1.0)
    loss = -np.mean(np.log(g + LOG_EPS)) - np.mean(np.log(h + LOG_EPS))
    # d/dw -log(g + eps) = -g'/(g + eps) with g' = -2/(w+1)^2; d/dw -log(h + eps) = -h'/(h + eps), h' = 2/(w+1)^2
    d_offline = (2.0 / (w_offline + 1.0) ** 2) / (g + LOG_EPS) / w_offline.size
    d_online = -(2.0 / (w_online + 1.0) ** 2) / (h + LOG_EPS) / w_online.size
    return loss, d_offline, d_online


class DensityRatio:
    """w(s, a) = ReLU(f([s, a])), f an MLP [obs + act, *hidden, 1] with final bias 1, trained by Adam on
    ``js_ratio_loss`` (Lee et al. 2022)."""

    def __init__(self, obs_dim, act_dim, hidden=(256, 256), seed=0, dtype=np.float32, lr=DENSITY_LR):
        self.net = MLP([obs_dim + act_dim, *hidden, 1], np.random.default_rng(seed), dtype)
        self.net.views[f"{len(hidden)}.bias"][:] = 1.0
        self.adam, self.lr = AdamState(self.net.n_params, dtype), float(lr)

    def ratio(self, x):
        """w for inputs x (B, obs + act)."""
        return np.maximum(self.net.forward(x)[:, 0], 0.0)

    def loss_and_grad(self, x_offline, x_online):
        """The loss on an offline and an online batch of [s, a], and its gradient in the parameters."""
        k = x_offline.shape[0]
        out = self.net.forward(np.concatenate([x_offline, x_online]))[:, 0]
        w = np.maximum(out, 0.0)
        loss, d_off, d_on = js_ratio_loss(w[:k], w[k:])
        d_out = np.concatenate([d_off, d_on]) * (out > 0.0)
        grads, _ = self.net.backward(d_out[:, None].astype(self.net.dtype))
        return float(loss), grads

    def step(self, x_offline, x_online):
        """One Adam step; returns the loss before it."""
        loss, grads = self.loss_and_grad(x_offline, x_online)
        adam_step(self.net.params, grads, self.adam, self.lr)
        return loss

    def state(self):
        return {"params": self.net.params, "adam/m": self.adam.m, "adam/v": self.adam.v, "adam/t": self.adam.t}

    def load_state(self, saved, what="checkpoint"):
        restore_arrays(what, self.state(), saved)


def balanced_priorities(w_batch, w_offline, temperature=TEMPERATURE):
    """clip(w^(1/T) / mean over the offline batch of w^(1/T), 1e-3, 1e3) for the sampled batch's w."""
    scale = max(float(np.mean(np.asarray(w_offline, np.float64) ** (1.0 / temperature))), LOG_EPS)
    return np.clip(np.asarray(w_batch, np.float64) ** (1.0 / temperature) / scale, *PRIORITY_RANGE)


class BalancedFinetuner(NaiveFinetuner):
    """IQL's own update, one density-ratio step on the batch's uniform offline/online parts, then the
    sampled transitions' priorities from the updated w (Off2OnRL)."""

    def __init__(self, agent, normalizer, reward_scale, action_temperature=1.0, seed=0):
        super().__init__(agent, normalizer, reward_scale, action_temperature)
        self.density = DensityRatio(agent.obs_dim, agent.act_dim, agent.config.hidden, seed, agent.dtype)

    def _inputs(self, raw):
        b = self.inputs.batch(raw)
        return np.concatenate([b.obs, b.actions], axis=1).astype(self.agent.dtype)

    def update(self, batch, progress):
        batch = _sampled(batch, "iql-balanced")
        stats = super().update(batch, progress)
        stats["density_loss"] = float("nan")
        if batch.parts is not None:
            x_off, x_on = (self._inputs(p) for p in batch.parts)
            stats["density_loss"] = self.density.step(x_off, x_on)
            p = balanced_priorities(self.density.ratio(self._inputs(batch)), self.density.ratio(x_off))
            batch.buffer.update_priorities(batch.indices, p)
        return stats

    def state(self):
        return {**super().state(), **{f"density/{k}": v for k, v in self.density.state().items()}}

    def load_state(self, saved, what="checkpoint"):
        super().load_state(saved, what)
        self.density.load_state(sub_state(saved, "density/"), what)


def build_per(ctx):
    return PERFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.action_temperature)


def build_balanced(ctx):
    return BalancedFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.action_temperature, ctx.seed)
