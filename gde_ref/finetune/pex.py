"""PEX, Policy Expansion (Zhang et al. 2023, "Policy Expansion for Bridging Offline-to-Online RL"), a Table 2
baseline on the IQL backbone.

The policy set {pi_0, pi_new}: pi_0 the offline actor, frozen (``agent.actor``, never stepped); pi_new a
freshly initialised actor of the same shape, trained online. At a state s:

    a1 = mean of pi_0(.|s),  a2 ~ pi_new(.|s),  q_k = min(Q1, Q2)(s, a_k) (the online critics)
    P(choose a2 | s) = exp(beta q_2) / (exp(beta q_1) + exp(beta q_2)) = sigmoid(beta (q_2 - q_1))

(``selection_probability``) with inverse temperature beta = 10. The critics and V keep training with IQL's losses (Eq. 2, 3) on batches
of 50% offline / 50% online transitions (``pex_buffer``: ``data.mixed.MixedBuffer``, the offline data kept).
pi_new is trained by AWR (Eq. 4) on composite actions re-drawn from the PEX mixture at the batch states, not
on the buffer's actions, with the advantage min(Q1', Q2')(s, a_mix) - V(s) (``pex_actor_step``): this is the
official code's ``policy_update``. We follow it because it is what PEX runs; with buffer actions pi_new
would be plain IQL's actor on a mixed buffer (also imitating the offline data), not the new policy that
learns what the mixture does.

Where ours differs from the official code (Haichao-Zhang/PEX) and which settings we took:

* expectile 0.7 and AWR temperature 3 for locomotion: GDE App. B.5 says "the same hyperparameters as IQL",
  i.e. the backbone's config (the official README runs 0.9 / 10, even on halfcheetah-random);
* rewards are the backbone's (IQL's 1000 / (max - min) return scaling for locomotion); the official leaves
  locomotion rewards unscaled, so the same beta = 10 meets Q values of another scale;
* no 5000-step warm-up before the first update: the shared loop updates from the first step for every method
  (the critics and V start trained; the warm-up is 2% of GDE's 250k budget);
* evaluation (``exploit_action``) is deterministic: the argmax of Q between pi_0's and pi_new's mean
  actions (ties to pi_0). The official evaluates with the mode of pi_new and the argmax w with probability
  0.9 each (epsilon-greedy with 0.1);
* batches of the run's batch size (256) split 128 / 128, as the official's 128 + 128.
"""
from collections import namedtuple

import numpy as np

from gde_ref.agents.actors import awr_step, gaussian_actor
from gde_ref.agents.critics import twin_min
from gde_ref.agents.iql import ACTOR_LOSS
from gde_ref.agents.iql import STAT_NAMES as IQL_STAT_NAMES
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.mixed import MixedBuffer, offline_replay
from gde_ref.finetune.context import need_offline
from gde_ref.finetune.gde import AgentInputs
from gde_ref.finetune.variants import NO_TEACHER_LOG
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import concat_columns, frozen_net, trained_net
from gde_ref.nn.checks import check_range, restore_arrays, sub_state
from gde_ref.nn.kernels import kernel

INV_TEMPERATURE = 10.0   # the official's inv_temperature
OFFLINE_FRACTION = 0.5   # the official's 50/50 offline / online batch
PEXHyper = namedtuple("PEXHyper", ["inv_temperature", "awr_temperature", "awr_max_weight", "actor_lr", "spec"])
PEXHyper.__doc__ = """PEX's settings for the kernels: the selection's inverse temperature beta, pi_new's AWR
temperature, weight clip and learning rate (the backbone's), and the actors' ActorSpec."""


# ------------------------------------------------------------------------------------------------
# kernels: the selection, the mixture's action, pi_new's step
# ------------------------------------------------------------------------------------------------
@kernel
def selection_probability(q_offline, q_new, inv_temperature, p_new):
    """PEX's policy selection: the probability of pi_new's action at each state,

        P(w = new | s) = exp(beta q_new) / (exp(beta q_offline) + exp(beta q_new))
                       = 1 / (1 + exp(-beta (q_new - q_offline))),

    written into p_new (B,) (the softmax over the two candidates, computed without overflow)."""
    for i in range(q_new.shape[0]):
        d = inv_temperature * (q_new[i] - q_offline[i])
        if d >= 0.0:
            p_new[i] = 1.0 / (1.0 + np.exp(-d))
        else:
            e = np.exp(d)
            p_new[i] = e / (1.0 + e)


@kernel
def candidate_q(critics, obs, actions):
    """min(Q1, Q2)(s, a) (B,) with the online critics, a new array (no gradient)."""
    concat_columns(obs, actions, critics.inputs)
    return twin_min(critics.q1, critics.q2, critics.inputs)[0]


@kernel
def composite_actions(offline, new, critics, obs, noise, uniform, hyper, out):
    """The PEX mixture's action at each state, written into out (B, A); returns the mean P(w = new | s).

    a1 = tanh(f_0(s)) (pi_0's mean), a2 = clip(tanh(f_new(s)) + sigma_new noise, -1, 1) (a sample of pi_new,
    as our Gaussian actors act), w = new where uniform < P(w = new | s). With noise = 0 and uniform = 1/2 it
    is the deterministic choice argmax_k q_k (ties to pi_0)."""
    a1 = gaussian_actor(offline, obs, hyper.spec)[0]
    mean, log_std, _ = gaussian_actor(new, obs, hyper.spec)
    n, n_act = mean.shape
    a2 = np.empty_like(mean)
    for i in range(n):
        for j in range(n_act):
            a2[i, j] = min(max(mean[i, j] + np.exp(log_std[j]) * noise[i, j], -1.0), 1.0)
    q1 = candidate_q(critics, obs, a1)
    q2 = candidate_q(critics, obs, a2)
    p_new = np.empty(n, mean.dtype)
    selection_probability(q1, q2, hyper.inv_temperature, p_new)
    for i in range(n):
        pick = a2 if uniform[i] < p_new[i] else a1
        for j in range(n_act):
            out[i, j] = pick[i, j]
    return p_new.mean()


@kernel
def pex_actor_step(new, offline, critics, obs, v, noise, uniform, hyper):
    """pi_new's step (the official ``policy_update``): Eq. 4 on composite actions a_mix re-drawn from the
    mixture at the batch states,

        L(theta) = -mean_i min(exp(lambda (min(Q1', Q2')(s_i, a_mix,i) - V(s_i))), 100) log pi_new(a_mix,i | s_i),

    Q' the target critics and V (B,) the value after its step, both held fixed. One Adam step;
    returns (the loss, the mean P(w = new | s))."""
    actions = np.empty(noise.shape, obs.dtype)
    p_mean = composite_actions(offline, new, critics, obs, noise, uniform, hyper, actions)
    x = critics.inputs
    concat_columns(obs, actions, x)
    q_target = twin_min(critics.q1_target, critics.q2_target, x)[0]
    return awr_step(new, obs, actions, q_target, v, hyper), p_mean


# ------------------------------------------------------------------------------------------------
# the buffer and the learner
# ------------------------------------------------------------------------------------------------
def pex_buffer(ctx):
    """PEX's replay (a ``finetune.context.FinetuneContext`` -> buffer): the whole offline dataset kept read-only,
    the online samples in a ``config.buffer_size`` buffer, each batch half of each (``MixedBuffer``)."""
    need_offline(ctx, "samples half of each batch from the offline data", n_steps=(1,))
    agent, discount = ctx.agent, ctx.agent.config.discount
    online = ReplayBuffer(ctx.config.buffer_size, agent.obs_dim, agent.act_dim, 1, discount)
    return MixedBuffer(offline_replay(ctx.offline, agent.obs_dim, agent.act_dim, discount), online,
                       OFFLINE_FRACTION)


def build_pex(ctx):
    """The ``pex`` row's learner."""
    if ctx.action_temperature != 1.0:
        raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to pex")
    return PEXFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, seed=ctx.seed)


class PEXFinetuner:
    """PEX on the IQL backbone, a learner of ``finetune.loop.run_online``.

    explore_action: the mixture's action (pi_0's mean or a sample of pi_new, chosen with
    ``selection_probability``), its randomness from the loop's generator;
    exploit_action: the argmax of Q between the two mean actions;
    update: IQL's critic step (Eq. 2, 3, targets), then ``pex_actor_step`` on pi_new, whose sampling
    noise comes from the learner's own generator (saved with its state).

    seed: pi_new's initial weights and the generator; inv_temperature: beta (10).
    """

    STAT_NAMES = IQL_STAT_NAMES + ("p_new",)   # actor_loss: pi_new's; p_new: the batch's mean P(w = new | s)

    def __init__(self, agent, normalizer, reward_scale, seed=0, inv_temperature=INV_TEMPERATURE):
        if getattr(agent, "name", None) != "iql":
            raise ValueError(f"PEXFinetuner is defined on the iql backbone, not {getattr(agent, 'name', agent)!r}")
        self.agent = agent
        self.inputs = AgentInputs(normalizer, reward_scale, agent.dtype)
        init_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        self.new = MLP(list(agent.actor.sizes), np.random.default_rng(init_seed), agent.dtype, extra=agent.act_dim)
        self.new_adam = AdamState(self.new.n_params, agent.dtype)
        self.noise_rng = np.random.default_rng(noise_seed)
        c = agent.config
        self.hyper = PEXHyper(check_range("inv_temperature", inv_temperature, 0.0), c.awr_temperature,
                              c.awr_max_weight, c.actor_lr, agent.spec)
        self._batches = {}
        d, n_obs, n_act = agent.dtype, agent.obs_dim, agent.act_dim   # one state at a time, for acting
        self._act = (frozen_net(agent.actor.params, agent.actor, 1), frozen_net(self.new.params, self.new, 1),
                     agent.critics(1))
        self._obs, self._noise = np.zeros((1, n_obs), d), np.zeros((1, n_act), d)
        self._uniform, self._action = np.zeros(1, d), np.zeros((1, n_act), d)

    def _choose(self, obs):
        self._obs[0] = self.inputs.obs(obs)
        composite_actions(*self._act, self._obs, self._noise, self._uniform, self.hyper, self._action)
        return self._action[0]

    def explore_action(self, obs, rng):
        """The mixture's action at a raw observation: noise and the choice's uniform from ``rng``."""
        rng.standard_normal(out=self._noise, dtype=self._noise.dtype)
        rng.random(out=self._uniform, dtype=self._uniform.dtype)
        return self._choose(obs)

    def exploit_action(self, obs):
        """The deterministic mixture: argmax of Q between pi_0's and pi_new's mean actions."""
        self._noise[:] = 0.0
        self._uniform[:] = 0.5
        return self._choose(obs)

    def _batch_arrays(self, n):
        """(pi_new trained, pi_0 frozen, noise (n, A), uniform (n,)) for batch size n (cached)."""
        r = self._batches.get(n)
        if r is None:
            ag = self.agent
            r = self._batches[n] = (trained_net(self.new, self.new_adam, n), frozen_net(ag.actor.params, ag.actor, n),
                                    np.zeros((n, ag.act_dim), ag.dtype), np.zeros(n, ag.dtype))
        return r

    def update(self, batch, progress):
        """IQL's critics and V on the (mixed) batch, then pi_new on the mixture's actions at its states."""
        ag = self.agent
        batch = ag.check_batch(self.inputs.batch(batch), "PEX update")
        n = batch.obs.shape[0]
        stats = np.zeros(len(self.STAT_NAMES))
        _, v = ag.critic_step(batch, stats)
        new, offline, noise, uniform = self._batch_arrays(n)
        self.noise_rng.standard_normal(out=noise, dtype=noise.dtype)
        self.noise_rng.random(out=uniform, dtype=uniform.dtype)
        stats[ACTOR_LOSS], stats[-1] = pex_actor_step(new, offline, ag.critics(n), batch.obs, v, noise, uniform,
                                                      self.hyper)
        return dict(zip(self.STAT_NAMES, stats.tolist()))

    def after_evaluation(self, score, env_step):
        return dict(NO_TEACHER_LOG)

    def state(self):
        """The agent's state (pi_0 is its actor), pi_new, its Adam state and the sampling generator."""
        a = self.new_adam
        return {**{f"agent/{k}": v for k, v in self.agent.state().items()}, "pex/new": self.new.params,
                "pex/adam/new/m": a.m, "pex/adam/new/v": a.v, "pex/adam/new/t": a.t,
                "pex/noise_rng": self.noise_rng.bit_generator.state}

    def load_state(self, saved, what="checkpoint"):
        self.agent.load_state(sub_state(saved, "agent/"), what)
        restore_arrays(what, {k: v for k, v in self.state().items() if isinstance(v, np.ndarray) and
                              k.startswith("pex/")}, saved)
        if "pex/noise_rng" not in saved:
            raise ValueError(f"{what} has no PEX sampling generator: it was saved by another algorithm")
        self.noise_rng.bit_generator.state = saved["pex/noise_rng"]
