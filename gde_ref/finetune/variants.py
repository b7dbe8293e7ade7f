"""The paper's other ways to fine-tune an offline agent (Table 1, Appendix A.3, Fig. 2d), as learners of the
shared loop ``finetune.loop.run_online``; ``finetune.algos`` is the table that names them.

    OfflineEvaluation   no updates: the offline policy is only evaluated (the "offline" column)
    NaiveFinetuner      the backbone fine-tuned by its own losses (OnIQL with an online-only buffer; IQL's own
                        fine-tuning when the buffer keeps the offline data; T-Naive, C-Naive)
    ReFinetuner         the backbone's critics; the actor is unconstrained and maximises min(Q1, Q2)(s, pi(s))
                        as in TD3 (ReIQL)
    RNDFinetuner        naive fine-tuning with an RND bonus added to the rewards (Table 1)

Every learner acts on and is updated with raw environment data: ``AgentInputs`` normalises states and
scales rewards as the offline agent was trained. ``action_temperature`` t (Fig. 2d) multiplies the std
of the policy that collects the data (1: the policy's own Gaussian). Each has ``state()`` / ``load_state()``.
"""
import numpy as np

from gde_ref.agents.actors import ExploreHyper, PolicyActions, exploration_step
from gde_ref.agents.rnd import RND
from gde_ref.finetune.gde import AgentInputs
from gde_ref.nn.bundle import frozen_net
from gde_ref.nn.checks import check_range, sub_state

NO_TEACHER_LOG = {"teacher_score": float("nan"), "teacher_swapped": 0, "kl_weight": 0.0}


class NaiveFinetuner:
    """The backbone's own update on each batch (OnIQL, or IQL when the buffer keeps the offline data).
    Collects data with its actor's distribution, the std scaled by t = ``action_temperature``."""

    def __init__(self, agent, normalizer, reward_scale, action_temperature=1.0):
        self.agent = agent
        self.inputs = AgentInputs(normalizer, reward_scale, agent.dtype)
        self.action_temperature = check_range("action_temperature", action_temperature, 0.0)
        self.policy = PolicyActions(agent.actor, agent.spec)

    def explore_action(self, obs, rng):
        return self.policy.act(self.inputs.obs(obs), rng, self.action_temperature)

    def exploit_action(self, obs):
        return self.policy.act(self.inputs.obs(obs))

    def update(self, batch, progress):
        return self.agent.update(self.inputs.batch(batch))

    def after_evaluation(self, score, env_step):
        return dict(NO_TEACHER_LOG)

    def state(self):
        """Everything the learner carries from step to step (arrays by reference)."""
        return {f"agent/{k}": v for k, v in self.agent.state().items()}

    def load_state(self, saved, what="checkpoint"):
        self.agent.load_state(sub_state(saved, "agent/"), what)


class OfflineEvaluation(NaiveFinetuner):
    """The offline agent unchanged: every update is skipped, so the evaluations score the offline policy."""

    def update(self, batch, progress):
        return {}


class RNDFinetuner(NaiveFinetuner):
    """Naive fine-tuning + RND (Burda et al., 2018): r <- r_scaled + ``rnd_weight`` * bonus(s') on every batch.

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

    def state(self):
        return {**super().state(), **{f"rnd/{k}": v for k, v in self.rnd.state().items()}}

    def load_state(self, saved, what="checkpoint"):
        super().load_state(saved, what)
        self.rnd.load_state(sub_state(saved, "rnd/"), what)


class ReFinetuner(NaiveFinetuner):
    """ReIQL (Table 1): the backbone's critic update, then its in-sample actor replaced by an unconstrained one
    that maximises min(Q1, Q2)(s, tanh(f(s))) as TD3 does: Eq. 5 with rho = 0 on the exploitation actor (its
    own read-only view is the unused 'teacher'). The log-std gets no gradient and keeps its offline value."""

    def __init__(self, agent, normalizer, reward_scale, action_temperature=1.0):
        super().__init__(agent, normalizer, reward_scale, action_temperature)
        self._views = {}
        self.hyper = ExploreHyper(0.0, agent.config.actor_lr, agent.spec)

    def update(self, batch, progress):
        ag = self.agent
        batch = ag.check_batch(self.inputs.batch(batch), "ReIQL update")
        n = batch.obs.shape[0]
        if n not in self._views:
            self._views[n] = frozen_net(ag.actor.params, ag.actor, n)
        stats = np.zeros(len(ag.STAT_NAMES))
        ag.critic_step(batch, stats)
        stats[ag.STAT_NAMES.index("actor_loss")] = exploration_step(ag.nets(n).actor, self._views[n], ag.critics(n),
                                                                    batch.obs, self.hyper)
        return dict(zip(ag.STAT_NAMES, stats.tolist()))
