"""Cal-QL, calibrated offline RL pre-training (Nakamoto et al., 2023): the backbone of the paper's Appendix C.2
(Fig. 10: "GDE is also effective when we use a CAL-QL agent as the backbone algorithm").

Cal-QL is CQL (``agents.cql``) with one change in the critics' penalty: the Q-values of the policy's sampled
actions in the logsumexp are bounded below by the Monte-Carlo return-to-go G(s_i) of the batch state,

    L_k = mean_i (Q_k(s_i, a_i) - y_i)^2
          + alpha_cql mean_i [ logsumexp_j (max(Q_k(s_i, a_ij), floor_ij) - log mu(a_ij)) - Q_k(s_i, a_i) ],
    floor_ij = -inf for the M uniform actions,  G(s_i) for the M samples of pi(.|s_i) and the M of pi(.|s'_i)

(``losses.baselines.calql_sampled_penalty_kernel``; log mu subtracted after the max, as in the official code).
So the penalty stops pushing a policy action's value down once it is below what the data's behaviour earned
from that state: the learned Q is "calibrated", not lower than the behaviour's return. Everything else (the
TD target, the actor, the temperature, the Polyak step) is CQL's, reused as is.

Each batch carries G: an ``MCBatch`` (``data.batch``), made by ``data.returns_to_go`` (offline: per trajectory
of the dataset; online: per episode, filled in when it ends, -inf until then, i.e. no bound on that row).
The ``calql`` fine-tuning (``finetune.algos``) is the official one: each batch half offline, half online,
the penalty kept on. GDE and the naive variants on this backbone use their online-only buffer with the same
filling (``MCReplayBuffer``), so the bound stays on there too.

Where ours differs from the official code: (1) locomotion: the official code has no MC path for it (antmaze and
Adroit only); we compute G by the same rule on the dense rewards, with no sparse-failure rule unless
``failure_reward`` is set; (2) no Lagrange form, 4-layer Q, max target backup or 1e-4 policy lr (our CQL
backbone's settings, ``config.CalQLConfig``); (3) CQL's own deviations (its module docstring); (4) a floored
Q-value whose Q equals its floor exactly passes the gradient (jnp.maximum would halve it), a measure-zero case.
"""
import numpy as np

from gde_ref.agents.cql import (ACTOR_LOSS, ALPHA, ALPHA_LOSS, CQL_PENALTY, CRITIC_LOSS, Q_MEAN, STAT_NAMES,
                                CQLAgent, penalty_rows)
from gde_ref.agents.critics import twin_descent_step, twin_forward, twin_polyak
from gde_ref.agents.sac import actor_step, temperature_step
from gde_ref.config import CalQLConfig
from gde_ref.data.batch import Batch, MCBatch, check_batch_arrays
from gde_ref.losses.baselines import calql_sampled_penalty_kernel
from gde_ref.losses.equations import td_loss_kernel
from gde_ref.nn.checks import check_array
from gde_ref.nn.kernels import kernel

CALQL_STAT_NAMES = STAT_NAMES + ("calibrated",)
CALIBRATED = len(STAT_NAMES)   # the share of policy-sampled Q-values the floor lifted (mean over the twins)


@kernel
def calibration_floor(mc_returns, m):
    """The penalty's floors (B, 3M), in ``penalty_rows``' column order: -inf for a state's M uniform actions,
    its G(s_i) for its M samples of pi(.|s_i) and its M of pi(.|s'_i)."""
    n = mc_returns.shape[0]
    floor = np.empty((n, 3 * m), mc_returns.dtype)
    for i in range(n):
        for j in range(3 * m):
            floor[i, j] = -np.inf if j < m else mc_returns[i]
    return floor


@kernel
def calibrated_regression(q_out, y, log_density, floor, cql_alpha, d_q):
    """One twin's loss on the penalty rows (``agents.cql.conservative_regression`` with Cal-QL's penalty):
    TD loss of the B data rows towards y plus ``calql_sampled_penalty_kernel``; fills d_q (B (1 + 3M), 1).
    Returns (td, penalty, the number of sampled Q-values below their floor)."""
    n, k = log_density.shape
    td = td_loss_kernel(q_out[:n], y, d_q[:n, 0])
    q_samples, d_samples = np.empty((n, k), q_out.dtype), np.empty((n, k), q_out.dtype)
    d_data, lifted = np.empty(n, q_out.dtype), 0
    for i in range(n):
        for j in range(k):
            q_samples[i, j] = q_out[n + i * k + j]
            if q_samples[i, j] < floor[i, j]:
                lifted += 1
    penalty = calql_sampled_penalty_kernel(q_samples, log_density, floor, q_out[:n], cql_alpha, d_samples, d_data)
    for i in range(n):
        d_q[i, 0] += d_data[i]
        for j in range(k):
            d_q[n + i * k + j, 0] = d_samples[i, j]
    return td, penalty, lifted


@kernel
def calql_critic_step(nets, batch, noise, hyper):
    """CQL's critic step with the floor: one Adam step of each twin. Returns (TD loss, penalty, mean Q1(s, a),
    share of the policy-sampled Q-values lifted), the losses summed over the twins."""
    n, big = batch.obs.shape[0], nets.penalty_critics
    y, x, log_density = penalty_rows(nets, batch, noise, hyper)
    m = log_density.shape[1] // 3
    floor = calibration_floor(batch.mc_returns, m)
    q1_out, q2_out = twin_forward(big, x)
    q_mean = q1_out[:n].mean()
    d_q1, d_q2 = np.empty((x.shape[0], 1), y.dtype), np.empty((x.shape[0], 1), y.dtype)
    td1, pen1, lift1 = calibrated_regression(q1_out, y, log_density, floor, hyper.cql_alpha, d_q1)
    td2, pen2, lift2 = calibrated_regression(q2_out, y, log_density, floor, hyper.cql_alpha, d_q2)
    twin_descent_step(big, x, d_q1, d_q2, hyper.critic_lr)
    return td1 + td2, pen1 + pen2, q_mean, (lift1 + lift2) / (2.0 * n * 2 * m)


@kernel
def calql_update(batch, noise, nets, hyper, stats):
    """One Cal-QL update step (critics with the calibrated penalty, targets, actor, temperature); fills ``stats``."""
    alpha = np.exp(nets.temperature.params[0])
    stats[CRITIC_LOSS], stats[CQL_PENALTY], stats[Q_MEAN], stats[CALIBRATED] = calql_critic_step(nets, batch, noise,
                                                                                                 hyper)
    twin_polyak(nets.critics, hyper.polyak)
    stats[ACTOR_LOSS], logp = actor_step(nets.actor, nets.critics, batch.obs, noise.actor, alpha, hyper)
    stats[ALPHA_LOSS] = temperature_step(nets.temperature, logp, hyper.target_entropy, hyper.alpha_lr)
    stats[ALPHA] = alpha


class CalQLAgent(CQLAgent):
    """Cal-QL's networks and update: a ``CQLAgent`` (the same networks, noise draws, actor and temperature steps,
    state) whose critic step bounds the penalty's policy Q-values by each batch's G; a backbone
    (``agents.backbones``) whose batches are ``MCBatch``es (``uses_mc_returns``)."""

    name = "calql"
    STAT_NAMES = CALQL_STAT_NAMES
    uses_mc_returns = True

    def __init__(self, obs_dim, act_dim, config=None, seed=0, dtype=np.float32):
        config = config or CalQLConfig()
        if not isinstance(config, CalQLConfig):
            raise TypeError(f"CalQLAgent needs a CalQLConfig, got {type(config).__name__}")
        super().__init__(obs_dim, act_dim, config, seed, dtype)

    def check_batch(self, batch, who="CalQLAgent.update"):
        """An ``MCBatch`` validated as CQL's Batch, its mc_returns (B,) of the same dtype: finite or -inf."""
        if not isinstance(batch, MCBatch):
            raise TypeError(f"{who}: the calql backbone needs each state's Monte-Carlo return-to-go, a "
                            f"gde_ref.data.batch.MCBatch (data.returns_to_go makes them), got {type(batch).__name__}")
        base = check_batch_arrays(who, Batch(*batch[:len(Batch._fields)]), self.obs_dim, self.act_dim, self.dtype)
        g = check_array(f"{who} batch.mc_returns", batch.mc_returns, ndim=1, dtype=self.dtype,
                        shape=(base.obs.shape[0],))
        if np.isnan(g).any() or np.isposinf(g).any():
            raise ValueError(f"{who}: batch.mc_returns must be finite, or -inf where not known, got NaN or +inf")
        return MCBatch(*base, g)

    def step(self, batch, stats, actor_lr=None):
        """The fused update: critics (TD + calibrated penalty), targets, actor, temperature; one compiled call."""
        nets, noise = self._draw(batch.obs.shape[0])
        calql_update(batch, noise, nets, self._hyper(actor_lr), stats)

    def critic_step(self, batch, stats):
        """The critics and their targets alone; returns the step's noise for ``actor_step``."""
        nets, noise = self._draw(batch.obs.shape[0])
        (stats[CRITIC_LOSS], stats[CQL_PENALTY], stats[Q_MEAN],
         stats[CALIBRATED]) = calql_critic_step(nets, batch, noise, self.hyper)
        twin_polyak(nets.critics, self.hyper.polyak)
        return noise

    def update(self, batch, actor_lr=None):
        """One Cal-QL step on an ``MCBatch``; returns a dict of losses and statistics."""
        batch = self.check_batch(batch)
        stats = np.zeros(len(CALQL_STAT_NAMES))
        self.step(batch, stats, actor_lr)
        return dict(zip(CALQL_STAT_NAMES, stats.tolist()))
