"""The paper's other ways to fine-tune an offline IQL agent (Table 1, Appendix A.3, Table 4, Fig. 2d),
as learners of the shared loop ``finetune.loop.run_online``, and ``make_learner`` / ``make_buffer``.

    offline         no updates: the offline policy is only evaluated (the "offline" column)
    oniql           IQL fine-tuned by its own losses on online samples only (OnIQL, Table 1)
    iql             the same, with the offline transitions kept in the buffer (IQL's own fine-tuning, Table 5)
    reiql           IQL's critics; the actor is unconstrained and maximises min(Q1, Q2)(s, pi(s)) as in TD3
    rnd             OnIQL with an RND bonus added to the rewards (Table 1)
    gde             Algorithm 1 (``finetune.gde.GDEFinetuner``)
    gde-no-exploit, gde-no-explore, gde-no-teacher    the ablations of Table 4 (Section 5.5)

Every learner acts on and is updated with raw environment data: ``AgentInputs`` normalises states and
scales rewards as the offline agent was trained. ``action_temperature`` t (Fig. 2d) multiplies the std
of the policy that collects the data (1: the policy's own Gaussian).
"""
import numpy as np

from gde_ref.agents.iql import STAT_NAMES as IQL_STAT_NAMES
from gde_ref.agents.iql import IQLAgent
from gde_ref.agents.rnd import RND
from gde_ref.config import GDEConfig
from gde_ref.data.batch import check_batch_arrays
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.finetune.gde import (AgentInputs, GDEFinetuner, GDELearner, PolicyActions, exploration_actor_step,
                                  iql_critic_kernel)
from gde_ref.nn.bundle import frozen_net
from gde_ref.nn.checks import check_range
from gde_ref.nn.kernels import kernel

ALGOS = ("offline", "oniql", "iql", "reiql", "rnd", "gde", "gde-no-exploit", "gde-no-explore", "gde-no-teacher")
OFFLINE_DATA_ALGOS = ("iql",)   # the only algorithm whose buffer starts with the offline transitions
# the algorithms that run GDE's evaluation stage by default (Algorithm 1: the teacher is chosen by it); the
# others are evaluated as their own code does, by the reporting evaluation only (``finetune.loop``)
STAGE_ALGOS = ("gde", "gde-no-exploit", "gde-no-explore", "gde-no-teacher")
NO_TEACHER_LOG = {"teacher_score": float("nan"), "teacher_swapped": 0, "kl_weight": 0.0}


class IQLFinetuner:
    """OnIQL (online-only buffer) or IQL (buffer pre-filled with the offline data): the backbone's own
    update on each batch. Collects data with N(mean, (t * std)^2) clipped to [-1, 1], t = ``action_temperature``."""

    def __init__(self, agent: IQLAgent, normalizer, reward_scale, action_temperature=1.0):
        self.agent = agent
        self.inputs = AgentInputs(normalizer, reward_scale, agent.dtype)
        self.action_temperature = check_range("action_temperature", action_temperature, 0.0)
        self.policy = PolicyActions(agent.actor, agent.config)

    def explore_action(self, obs, rng):
        return self.policy.act(self.inputs.obs(obs), rng, self.action_temperature)

    def exploit_action(self, obs):
        return self.policy.act(self.inputs.obs(obs))

    def update(self, batch, progress):
        return self.agent.update(self.inputs.batch(batch))

    def after_evaluation(self, score, env_step):
        return dict(NO_TEACHER_LOG)


class OfflineEvaluation(IQLFinetuner):
    """The offline agent unchanged: every update is skipped, so the evaluation stages score the offline policy."""

    def update(self, batch, progress):
        return {}


class RNDFinetuner(IQLFinetuner):
    """OnIQL + RND (Burda et al., 2018): r <- r_scaled + ``rnd_weight`` * bonus(s') on every batch.

    The bonus is the predictor's error at the normalised next state, itself normalised by its running RMS
    (``agents.rnd``); the predictor takes one step per batch. With n-step transitions the bonus of the last
    state is added once to the n-step reward (a simplification). The paper gives no weight; 0.1 is ours
    (scaled locomotion rewards are about 1 per step, the normalised bonus about 1).
    """

    def __init__(self, agent, normalizer, reward_scale, action_temperature=1.0, rnd_weight=0.1, seed=0):
        super().__init__(agent, normalizer, reward_scale, action_temperature)
        self.rnd = RND(agent.obs_dim, seed=seed)
        self.rnd_weight = np.float32(check_range("rnd_weight", rnd_weight, 0.0))

    def update(self, batch, progress):
        batch = self.inputs.batch(batch)
        self.rnd.observe(batch.next_obs)
        bonus = self.rnd.bonus_and_update(batch.next_obs)
        stats = self.agent.update(batch._replace(rewards=batch.rewards + self.rnd_weight * bonus))
        stats["rnd_bonus"] = float(bonus.mean())
        return stats


@kernel
def reiql_update_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, actor,
                        actor_view, obs_actions, expectile, polyak, critic_lr, value_lr, actor_lr, log_std_min,
                        log_std_max, stats):
    """ReIQL: IQL's critics (Eq. 2, 3), then the actor maximises min(Q1, Q2)(s, tanh(f(s))) as TD3 does:
    Eq. 5 with rho = 0 applied to the exploitation actor (``actor_view``: a read-only view of it, the
    unused 'teacher'). Its log-std gets no gradient and keeps its offline value (the sampling noise)."""
    iql_critic_kernel(obs, actions, rewards, discounts, next_obs, q1, q2, q1_target, q2_target, value, obs_actions,
                      expectile, polyak, critic_lr, value_lr, stats)
    stats[2] = exploration_actor_step(actor, actor_view, q1, q2, obs, obs_actions, 0.0, log_std_min, log_std_max,
                                      actor_lr)


class ReIQLFinetuner(IQLFinetuner):
    """ReIQL (Table 1): the in-sample AWR actor replaced by an unconstrained one that maximises Q."""

    def __init__(self, agent, normalizer, reward_scale, action_temperature=1.0):
        super().__init__(agent, normalizer, reward_scale, action_temperature)
        self._views = {}

    def update(self, batch, progress):
        ag = self.agent
        obs, actions, rewards, discounts, next_obs = check_batch_arrays(
            "ReIQL update", self.inputs.batch(batch), ag.obs_dim, ag.act_dim, ag.dtype)
        n = obs.shape[0]
        if n not in self._views:
            self._views[n] = frozen_net(ag.actor.params, ag.actor, n)
        c, b = ag.config, ag.bundles(n)
        stats = np.zeros(len(IQL_STAT_NAMES))
        reiql_update_kernel(obs, actions, rewards, discounts, next_obs, b["q1"], b["q2"], b["q1_target"],
                            b["q2_target"], b["value"], b["actor"], self._views[n], b["obs_actions"], c.expectile,
                            c.polyak, c.critic_lr, c.value_lr, c.actor_lr, c.log_std_min, c.log_std_max, stats)
        return dict(zip(IQL_STAT_NAMES, stats.tolist()))


def make_learner(algo, agent: IQLAgent, normalizer, reward_scale, config=None, action_temperature=1.0,
                 rnd_weight=0.1, seed=0):
    """The loop learner of ``algo`` (one of ``ALGOS``) around an offline IQL ``agent`` (updated in place).

    normalizer, reward_scale: the offline data's (``load_offline``'s normaliser and meta["reward_scale"]);
    config: GDEConfig (rho_0, exploration learning rate); action_temperature: Fig. 2d's t for the IQL
    variants; rnd_weight, seed: the RND bonus's weight and its networks' seed.
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(ALGOS)}")
    config = config or GDEConfig()
    if algo.startswith("gde"):
        if action_temperature != 1.0:
            raise ValueError(f"action_temperature applies to the IQL variants (Fig. 2d), not to {algo!r}")
        return GDEFinetuner(GDELearner(agent, config), normalizer, reward_scale, config,
                            exploit=algo != "gde-no-exploit", explore=algo != "gde-no-explore",
                            teacher=algo != "gde-no-teacher")
    if algo == "rnd":
        return RNDFinetuner(agent, normalizer, reward_scale, action_temperature, rnd_weight, seed)
    kind = {"offline": OfflineEvaluation, "oniql": IQLFinetuner, "iql": IQLFinetuner, "reiql": ReIQLFinetuner}
    return kind[algo](agent, normalizer, reward_scale, action_temperature)


def make_buffer(algo, obs_dim, act_dim, config=None, discount=0.99, offline=None):
    """The replay buffer of ``algo``: online samples only (``config.buffer_size``, n-step ``config.n_step``)
    for every algorithm but ``iql``, whose buffer first receives every offline transition.

    offline: the raw dataset (``data.datasets.OfflineDataset``: observations, actions, rewards,
    next_observations, terminals), required by ``iql`` and never read by the others. Its transitions are
    stored raw (unnormalised, unscaled), like the online ones, with discount gamma (1 - terminal); the
    capacity is len(offline) + buffer_size so that online samples never overwrite them.
    """
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(ALGOS)}")
    config = config or GDEConfig()
    if algo not in OFFLINE_DATA_ALGOS:
        return ReplayBuffer(config.buffer_size, obs_dim, act_dim, config.n_step, discount)
    if offline is None:
        raise ValueError(f"algo {algo!r} keeps the offline data in its buffer: pass the dataset (offline=...)")
    if config.n_step != 1:
        raise ValueError(f"algo {algo!r} mixes one-step offline transitions into its buffer: use n_step=1, "
                         f"got {config.n_step}")
    n = len(offline.rewards)
    buffer = ReplayBuffer(n + config.buffer_size, obs_dim, act_dim, 1, discount)
    discounts = (discount * (1.0 - np.asarray(offline.terminals, np.float32))).astype(np.float32)
    buffer.add_batch(offline.observations, offline.actions, offline.rewards, offline.next_observations, discounts)
    return buffer
