"""What an algorithm's learner and buffer are built from: one record, ``FinetuneContext``.

Every row of ``finetune.algos.ALGO_TABLE`` has ``buffer(ctx)`` (its replay buffer) and ``build(ctx)`` (its
loop learner, ``ctx.buffer`` being the buffer just made). A method that needs something new from the run
(the offline dataset, the buffer it samples from) reads it here; nothing else is passed.

    agent               the offline backbone agent (``agents.backbones``), updated in place
    normalizer          the offline data's state normaliser (``data.prepare.ObsNormalizer``)
    reward_scale        the offline data's reward scale (the agent's rewards are r * reward_scale)
    config              ``GDEConfig``: rho_0, n-step, buffer size, the exploration learning rate
    action_temperature  Fig. 2d's t (the naive variants)
    rnd_weight          the RND bonus's weight
    seed                the run's seed (for the networks a method creates)
    offline             the raw offline dataset (``data.datasets.OfflineDataset``) or None; rows with
                        ``offline_data`` get it (a buffer that keeps it, a method that samples from it)
    buffer              the run's replay buffer (None while the buffer itself is being made)
"""
from collections import namedtuple

FinetuneContext = namedtuple("FinetuneContext", ["agent", "normalizer", "reward_scale", "config",
                                                 "action_temperature", "rnd_weight", "seed", "offline", "buffer"])


def need_offline(ctx, why, n_steps=None):
    """Refuse a context without the offline dataset, saying why the algo needs it; with ``n_steps``, also a
    ``config.n_step`` outside them (a buffer that mixes the offline data's transitions, stored with that n)."""
    if ctx.offline is None:
        raise ValueError(f"this algo {why}: pass the offline dataset (offline=...)")
    if n_steps is not None and ctx.config.n_step not in n_steps:
        raise ValueError(f"this algo {why}, as {' or '.join(map(str, n_steps))}-step transitions: use n_step="
                         f"{n_steps[0]}, got {ctx.config.n_step}")
