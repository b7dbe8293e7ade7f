"""Cal-QL's fine-tuning (Nakamoto et al., 2023; the paper's Appendix C.2, Fig. 10): its buffers for
``finetune.algos``. The learner is the backbone's own update (``agents.calql.CalQLAgent`` through
``finetune.variants.NaiveFinetuner``), which needs each batch's Monte-Carlo returns-to-go.

    calql_buffer         the official fine-tuning's replay: the offline dataset with its returns-to-go, kept
                         read-only, and a separate online buffer whose episodes get theirs when they end; each
                         batch is ``mixing_ratio`` (0.5, run_antmaze.sh) offline, the rest online
                         (``data.mixed.MixedBuffer``). The penalty stays on online (official online_use_cql).
    backbone_online_buffer  the online-only buffer of naive, rnd and GDE: a plain ``ReplayBuffer``, or for a
                         backbone that reads returns-to-go (Cal-QL) an ``MCReplayBuffer`` of the same size and
                         n-step. So GDE on the Cal-QL backbone keeps the bound online, from its own episodes'
                         returns (GDE's buffer holds no offline data; Appendix C.2 does not say more).

Official details not reproduced: the online phase there alternates one whole trajectory of collection and
len(trajectory) updates; our loop updates once per env step (as every method here), and a transition is
sampleable before its episode ends, with no bound until then (``data.returns_to_go``).
"""
from gde_ref.config import CalQLConfig
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.data.mixed import MixedBuffer
from gde_ref.data.returns_to_go import MCReplayBuffer, mc_offline_replay
from gde_ref.finetune.context import need_offline


def _calql_settings(ctx):
    """(failure_reward, mixing_ratio) of the agent's config (CalQLConfig's defaults for a stand-in agent)."""
    cfg = ctx.agent.config
    return (getattr(cfg, "failure_reward", CalQLConfig.failure_reward),
            getattr(cfg, "mixing_ratio", CalQLConfig.mixing_ratio))


def backbone_online_buffer(ctx):
    """Online samples only (``config.buffer_size``, n-step ``config.n_step``), with returns-to-go for a backbone
    that reads them (``uses_mc_returns``)."""
    agent, config = ctx.agent, ctx.config
    if not getattr(agent, "uses_mc_returns", False):
        return ReplayBuffer(config.buffer_size, agent.obs_dim, agent.act_dim, config.n_step, agent.config.discount)
    return MCReplayBuffer(config.buffer_size, agent.obs_dim, agent.act_dim, config.n_step, agent.config.discount,
                          _calql_settings(ctx)[0])


def calql_buffer(ctx):
    """Cal-QL's replay (a ``finetune.context.FinetuneContext`` -> buffer): the offline data and the online
    samples kept apart, both with returns-to-go, each batch ``mixing_ratio`` offline (module docstring)."""
    need_offline(ctx, "samples half of each batch from the offline data", n_steps=(1,))
    agent, discount = ctx.agent, ctx.agent.config.discount
    failure_reward, ratio = _calql_settings(ctx)
    online = MCReplayBuffer(ctx.config.buffer_size, agent.obs_dim, agent.act_dim, 1, discount, failure_reward)
    return MixedBuffer(mc_offline_replay(ctx.offline, agent.obs_dim, agent.act_dim, discount, failure_reward), online,
                       ratio)
