"""The one table of fine-tuning algorithms: what the CLI offers, the report's row order, which buffer each
gets, which run GDE's evaluation stage, which settings each reads; ``make_learner`` and ``make_buffer``.

    offline         no updates: the offline policy is only evaluated (the "offline" column)
    iql             IQL's own fine-tuning: the offline transitions stay in the buffer (Table 5)
    oniql           IQL fine-tuned by its own losses on online samples only (OnIQL, Table 1)
    naive           any backbone fine-tuned by its own losses on online samples only (T-Naive; on IQL = oniql)
    reiql           IQL's critics; the actor is unconstrained and maximises min(Q1, Q2)(s, pi(s)) as in TD3
    rnd             naive with an RND bonus added to the rewards (Table 1)
    gde             Algorithm 1 (``finetune.gde.GDEFinetuner``)
    gde-no-exploit, gde-no-explore, gde-no-teacher    the ablations of Table 4 (Section 5.5)

The rows are in the report's order. Adding an algorithm is one row here and its learner class.
"""
from collections import namedtuple

import numpy as np

from gde_ref.config import GDEConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.finetune.gde import GDEFinetuner, GDELearner
from gde_ref.finetune.variants import NaiveFinetuner, OfflineEvaluation, ReFinetuner, RNDFinetuner

Algo = namedtuple("Algo", ["build", "offline_data", "stages", "reads", "backbones"])
Algo.__doc__ = """One fine-tuning algorithm: build(agent, normalizer, reward_scale, config, action_temperature,
rnd_weight, seed) -> its learner; offline_data: its buffer starts with the offline transitions; stages: it runs
GDE's evaluation stage by default; reads: the optional settings it uses (others given to it are refused);
backbones: the backbones it applies to (None: all)."""


def _gde(exploit=True, explore=True, teacher=True):
    def build(agent, normalizer, reward_scale, config, action_temperature, rnd_weight, seed):
        if action_temperature != 1.0:
            raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to GDE")
        return GDEFinetuner(GDELearner(agent, config), normalizer, reward_scale, config, exploit=exploit,
                            explore=explore, teacher=teacher)
    return build


def _simple(kind):
    return lambda agent, normalizer, reward_scale, config, t, rnd_weight, seed: kind(agent, normalizer, reward_scale, t)


def _rnd(agent, normalizer, reward_scale, config, action_temperature, rnd_weight, seed):
    return RNDFinetuner(agent, normalizer, reward_scale, action_temperature, rnd_weight, seed)


TEMPERATURE = ("action_temperature",)
ALGO_TABLE = {
    "offline": Algo(_simple(OfflineEvaluation), False, False, (), None),
    "iql": Algo(_simple(NaiveFinetuner), True, False, TEMPERATURE, ("iql",)),
    "oniql": Algo(_simple(NaiveFinetuner), False, False, TEMPERATURE, ("iql",)),
    "naive": Algo(_simple(NaiveFinetuner), False, False, TEMPERATURE, None),
    "reiql": Algo(_simple(ReFinetuner), False, False, TEMPERATURE, ("iql",)),
    "rnd": Algo(_rnd, False, False, TEMPERATURE, None),
    "gde": Algo(_gde(), False, True, ("kl_weight",), None),
    "gde-no-exploit": Algo(_gde(exploit=False), False, True, ("kl_weight",), None),
    "gde-no-explore": Algo(_gde(explore=False), False, True, ("kl_weight",), None),
    "gde-no-teacher": Algo(_gde(teacher=False), False, True, (), None),
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


def make_learner(algo, agent, normalizer, reward_scale, config=None, action_temperature=1.0, rnd_weight=0.1, seed=0):
    """The loop learner of ``algo`` (a row of ``ALGO_TABLE``) around an offline backbone ``agent`` (updated in place).

    normalizer, reward_scale: the offline data's (``load_offline``'s normaliser and meta["reward_scale"]);
    config: GDEConfig (rho_0, exploration learning rate); action_temperature: Fig. 2d's t for the naive
    variants; rnd_weight, seed: the RND bonus's weight and its networks' seed.
    """
    row = algo_row(algo, getattr(agent, "name", None))
    return row.build(agent, normalizer, reward_scale, config or GDEConfig(), action_temperature, rnd_weight, seed)


def make_buffer(algo, obs_dim, act_dim, config=None, discount=0.99, offline=None):
    """The replay buffer of ``algo``: online samples only (``config.buffer_size``, n-step ``config.n_step``),
    or, for the rows with ``offline_data``, first every offline transition.

    offline: the raw dataset (``data.datasets.OfflineDataset``: observations, actions, rewards,
    next_observations, terminals), required by those rows and never read by the others. Its transitions are
    stored raw (unnormalised, unscaled), like the online ones, with discount gamma (1 - terminal); the
    capacity is len(offline) + buffer_size so that online samples never overwrite them.
    """
    row = algo_row(algo)
    config = config or GDEConfig()
    if not row.offline_data:
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
