"""The one table of fine-tuning algorithms: what the CLI offers, the report's row order, which buffer each
gets, which run GDE's evaluation stage, which settings each reads; ``make_learner`` and ``make_buffer``.

    offline         no updates: the offline policy is only evaluated (the "offline" column)
    iql             IQL's own fine-tuning: the offline transitions stay in the buffer (Table 5)
    oniql           IQL fine-tuned by its own losses on online samples only (OnIQL, Table 1)
    naive           any backbone fine-tuned by its own losses on online samples only (T-Naive; on IQL = oniql)
    reiql           IQL's critics; the actor is unconstrained and maximises min(Q1, Q2)(s, pi(s)) as in TD3
    rnd             naive with an RND bonus added to the rewards (Table 1)
    bpiql           oniql collecting data from SFP's mixture of a state-free prior and the policy (Table 1, B.6)
    fromscratch     SAC from a random initialisation on online samples only (FromScratch, Table 2)
    awac            AWAC's own fine-tuning (Table 2): the awac backbone's update, the offline transitions kept in
                    the buffer and sampled uniformly with the online ones (as rlkit)
    jsrl            Jump-Start RL (Table 2): the offline actor guides the first h steps of each episode, an IQL
                    learner acts after; h shrinks over 10 curriculum stages (``finetune.jsrl``)
    qdagger         QDagger (Table 2): oniql plus lambda_t KL(offline actor || actor), lambda_t = kl_weight
                    max(1 - score / teacher score, 0) after each evaluation stage (``finetune.qdagger``)
    pex             PEX (Table 2): the frozen offline actor and a new one, chosen per state by a softmax of Q;
                    IQL's critics on 50/50 offline/online batches (``finetune.pex``)
    iql-filter      iql keeping only the highest-return trajectories' 20% of the offline data (Table 5, Filter)
    iql-per         iql with prioritized replay by TD error and 5-step returns (Table 5, PER; ``finetune.datamix``)
    iql-balanced    iql with Off2OnRL's density-ratio balanced replay (Table 5, Off2OnRL; ``finetune.datamix``)
    sac-preload     fromscratch's SAC with its buffer preloaded with the offline data (Appendix C.1, Table 8)
    calql           Cal-QL's own fine-tuning (Appendix C.2, Fig. 10): the calql backbone's update on 50/50
                    offline/online batches, every state's Monte-Carlo return-to-go with it (``finetune.calql``)
    gde             Algorithm 1 (``finetune.gde.GDEFinetuner``)
    gde-no-exploit, gde-no-explore, gde-no-teacher    the ablations of Table 4 (Section 5.5)

The rows are in the report's order. Adding an algorithm is one row here and its learner class: a row names
how to build the learner and its buffer from one ``FinetuneContext`` (``finetune.context``).
"""
from collections import namedtuple

from gde_ref.config import GDEConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.mixed import offline_replay
from gde_ref.finetune.bpiql import BpIQLFinetuner
from gde_ref.finetune.calql import backbone_online_buffer, calql_buffer
from gde_ref.finetune.context import FinetuneContext, need_offline
from gde_ref.finetune.datamix import balanced_buffer, build_balanced, build_per, filter_buffer, per_buffer
from gde_ref.finetune.gde import GDEFinetuner, GDELearner
from gde_ref.finetune.jsrl import build_jsrl, jsrl_buffer
from gde_ref.finetune.pex import build_pex, pex_buffer
from gde_ref.finetune.qdagger import build_qdagger
from gde_ref.finetune.scratch import fromscratch, sac_preload
from gde_ref.finetune.variants import NaiveFinetuner, OfflineEvaluation, ReFinetuner, RNDFinetuner

Algo = namedtuple("Algo", ["build", "buffer", "offline_data", "stages", "reads", "backbones"])
Algo.__doc__ = """One fine-tuning algorithm. build(ctx) -> its loop learner and buffer(ctx) -> its replay buffer, ctx
a ``finetune.context.FinetuneContext`` (``ctx.buffer`` is set when build is called); offline_data: it reads
the offline dataset (``ctx.offline``, loaded for it); stages: it runs GDE's evaluation stage by default;
reads: the optional settings it uses (others given to it are refused); backbones: the backbones it applies
to (None: all)."""


def online_buffer(ctx):
    """Online samples only: ``config.buffer_size`` transitions, n-step returns with n = ``config.n_step``."""
    return ReplayBuffer(ctx.config.buffer_size, ctx.agent.obs_dim, ctx.agent.act_dim, ctx.config.n_step,
                        ctx.agent.config.discount)


def offline_and_online_buffer(ctx):
    """Every offline transition first, then the online ones, sampled uniformly over the union (IQL's own
    fine-tuning). Stored raw (unnormalised, unscaled) like the online ones, with discount gamma (1 - terminal);
    the capacity is len(offline) + buffer_size so that online samples never overwrite them."""
    need_offline(ctx, "keeps the offline data in its buffer", n_steps=(1,))
    return offline_replay(ctx.offline, ctx.agent.obs_dim, ctx.agent.act_dim, ctx.agent.config.discount,
                          extra=ctx.config.buffer_size)


def _gde(exploit=True, explore=True, teacher=True):
    def build(ctx):
        if ctx.action_temperature != 1.0:
            raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to GDE")
        return GDEFinetuner(GDELearner(ctx.agent, ctx.config), ctx.normalizer, ctx.reward_scale, ctx.config,
                            exploit=exploit, explore=explore, teacher=teacher)
    return build


def _simple(kind):
    return lambda ctx: kind(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.action_temperature)


def _rnd(ctx):
    return RNDFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.action_temperature, ctx.rnd_weight, ctx.seed)


def _bpiql(ctx):
    need_offline(ctx, "fits its behavioural prior to the offline data and conditions it on each batch's own "
                      "action", n_steps=(1,))
    return BpIQLFinetuner(ctx.agent, ctx.normalizer, ctx.reward_scale, ctx.offline, seed=ctx.seed)


TEMPERATURE = ("action_temperature",)
ON, BOTH = online_buffer, offline_and_online_buffer
OWN = backbone_online_buffer   # ON, with returns-to-go for the backbones that read them (Cal-QL)
ALGO_TABLE = {
    "offline": Algo(_simple(OfflineEvaluation), ON, False, False, (), None),
    "iql": Algo(_simple(NaiveFinetuner), BOTH, True, False, TEMPERATURE, ("iql",)),
    "oniql": Algo(_simple(NaiveFinetuner), ON, False, False, TEMPERATURE, ("iql",)),
    "naive": Algo(_simple(NaiveFinetuner), OWN, False, False, TEMPERATURE, None),
    "reiql": Algo(_simple(ReFinetuner), ON, False, False, TEMPERATURE, ("iql",)),
    "rnd": Algo(_rnd, OWN, False, False, TEMPERATURE, None),
    "bpiql": Algo(_bpiql, ON, True, False, (), ("iql",)),
    "fromscratch": Algo(fromscratch, ON, False, False, (), None),
    "awac": Algo(_simple(NaiveFinetuner), BOTH, True, False, TEMPERATURE, ("awac",)),
    "jsrl": Algo(build_jsrl, jsrl_buffer, True, False, (), ("iql",)),
    "qdagger": Algo(build_qdagger, ON, False, True, ("kl_weight",), ("iql",)),
    "pex": Algo(build_pex, pex_buffer, True, False, (), ("iql",)),
    "iql-filter": Algo(_simple(NaiveFinetuner), filter_buffer, True, False, TEMPERATURE, ("iql",)),
    "iql-per": Algo(build_per, per_buffer, True, False, TEMPERATURE, ("iql",)),
    "iql-balanced": Algo(build_balanced, balanced_buffer, True, False, TEMPERATURE, ("iql",)),
    "sac-preload": Algo(sac_preload, BOTH, True, False, (), None),
    "calql": Algo(_simple(NaiveFinetuner), calql_buffer, True, False, TEMPERATURE, ("calql",)),
    "gde": Algo(_gde(), OWN, False, True, ("kl_weight",), None),
    "gde-no-exploit": Algo(_gde(exploit=False), OWN, False, True, ("kl_weight",), None),
    "gde-no-explore": Algo(_gde(explore=False), OWN, False, True, ("kl_weight",), None),
    "gde-no-teacher": Algo(_gde(teacher=False), OWN, False, True, (), None),
}
ALGOS = tuple(ALGO_TABLE)
STAGE_ALGOS = tuple(a for a, row in ALGO_TABLE.items() if row.stages)


def algo_row(algo, backbone=None):
    """The table's row of ``algo``, refusing an unknown name or a backbone it does not apply to."""
    row = ALGO_TABLE.get(algo)
    if row is None:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(ALGOS)}")
    if backbone is not None and row.backbones is not None and backbone not in row.backbones:
        raise ValueError(f"algo {algo!r} is defined on the {'/'.join(row.backbones)} backbone, not {backbone!r}: "
                         "use 'naive' for the backbone's own fine-tuning")
    return row


def runs_on(algo, backbone):
    """Whether ``algo`` is defined on ``backbone`` (its row's ``backbones``; None: on every backbone). A sweep
    over several backbones runs each algo on those it is defined on (awac on the awac backbone, pex on iql)."""
    row = algo_row(algo)
    return row.backbones is None or backbone in row.backbones


def _context(algo, agent, normalizer, reward_scale, config, action_temperature, rnd_weight, seed, offline, buffer):
    row = algo_row(algo, getattr(agent, "name", None))
    return row, FinetuneContext(agent, normalizer, reward_scale, config or GDEConfig(), action_temperature, rnd_weight,
                                seed, offline, buffer)


def make_learner(algo, agent, normalizer, reward_scale, config=None, action_temperature=1.0, rnd_weight=0.1, seed=0,
                 offline=None, buffer=None):
    """The loop learner of ``algo`` (a row of ``ALGO_TABLE``) around an offline backbone ``agent`` (updated in place).

    normalizer, reward_scale: the offline data's (``load_offline``'s normaliser and meta["reward_scale"]);
    config: GDEConfig (rho_0, exploration learning rate); action_temperature: Fig. 2d's t for the naive
    variants; rnd_weight, seed: the RND bonus's weight and the seed of the networks a method creates;
    offline: the raw dataset (required by the rows with ``offline_data``); buffer: the run's buffer
    (``make_buffer``'s), for the methods that read it.
    """
    row, ctx = _context(algo, agent, normalizer, reward_scale, config, action_temperature, rnd_weight, seed, offline,
                        buffer)
    return row.build(ctx)


def make_buffer(algo, obs_dim, act_dim, config=None, discount=0.99, offline=None, agent=None):
    """The replay buffer of ``algo`` (its row's ``buffer``): online samples only (``config.buffer_size``,
    n-step ``config.n_step``), or, for ``iql``, first every offline transition, or a method's own.

    offline: the raw dataset (``data.datasets.OfflineDataset``: observations, actions, rewards,
    next_observations, terminals), required by the rows with ``offline_data`` and never read by the others.
    agent: the offline agent, for the buffers that read it (None: a stand-in with these sizes and discount).
    """
    stand_in = _Sizes(obs_dim, act_dim, _Discount(discount))
    row, ctx = _context(algo, agent or stand_in, None, 1.0, config, 1.0, 0.1, 0, offline, None)
    return row.buffer(ctx)


_Discount = namedtuple("_Discount", ["discount"])
_Sizes = namedtuple("_Sizes", ["obs_dim", "act_dim", "config"])
