"""The offline RL backbones GDE runs on (IQL, TD3+BC, CQL, AWAC, Cal-QL), and the contract they keep (paper
Section 5.4: GDE "can be combined with different offline RL algorithms").

A backbone is a plain class (no base class); GDE, the naive variants, pretraining and resume use only this:

    name, STAT_NAMES               its table key; the names of the statistics its updates fill
    config, obs_dim, act_dim, dtype
    actor, adam["actor"], spec     the exploitation actor (an MLP), its Adam state, and what distribution it
                                   stands for (``agents.actors.ActorSpec``: for acting and for Eq. 5's KL)
    critics(B)                     its twin critics' record (``agents.critics.TwinCritics``), for Eq. 5's Q term
    check_batch(batch, who)        a Batch validated for it
    step(batch, stats, actor_lr)   its fused update (critics, then actor), one compiled call
    critic_step(batch, stats)      its critic update alone; returns what its actor update needs
    actor_step(batch, context, stats, teacher=None, kl_weight=0.0)
                                   its actor update, plus rho KL(teacher || actor) with a teacher (a Net)
    update(batch, actor_lr=None)   check_batch + step, statistics as a dict
    offline_actor_lr(step, total)  the actor's learning rate during offline pretraining
    act(obs, rng=None)             one action for a normalised observation
    state() / load_state(saved)    every array by name (parameters, targets, Adam m, v, t), by reference
    uses_mc_returns (optional)     True: its batches are ``data.batch.MCBatch``es (Cal-QL's Monte-Carlo returns-to-go),
                                   which pretraining (``data.returns_to_go.with_returns_to_go``) and the fine-tuning
                                   buffers (``data.returns_to_go.MCReplayBuffer``) then supply

``BACKBONES`` names each with its config class; ``make_backbone`` rebuilds one from a saved config.
"""
import dataclasses

from gde_ref.agents.awac import AWACAgent
from gde_ref.agents.calql import CalQLAgent
from gde_ref.agents.cql import CQLAgent
from gde_ref.agents.iql import IQLAgent
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.config import AWACConfig, CalQLConfig, CQLConfig, IQLConfig, TD3BCConfig

BACKBONES = {"iql": (IQLAgent, IQLConfig), "td3bc": (TD3BCAgent, TD3BCConfig), "cql": (CQLAgent, CQLConfig),
             "awac": (AWACAgent, AWACConfig), "calql": (CalQLAgent, CalQLConfig)}


def backbone_config(name, saved=None):
    """The config of backbone ``name``: its defaults, or a saved ``dataclasses.asdict`` of one (JSON lists
    back to tuples)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {', '.join(BACKBONES)}")
    cls = BACKBONES[name][1]
    if saved is None:
        return cls()
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(saved) - fields)
    if unknown:
        raise ValueError(f"a saved {name} config has settings this version does not know: {', '.join(unknown)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def make_backbone(name, obs_dim, act_dim, config=None, seed=0):
    """A fresh backbone ``name`` for these dimensions (``config``: its config object, default settings if None)."""
    config = config if config is not None else backbone_config(name)
    return BACKBONES[name][0](obs_dim, act_dim, config, seed=seed)
