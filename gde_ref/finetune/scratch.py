"""SAC (Haarnoja et al., 2018) trained online from a random initialisation: the paper's FromScratch column
(Section 5.2, Table 2) and its "SAC with a preload buffer" (Appendix C.1, Table 8), as learners of the shared
loop ``finetune.loop.run_online``; ``finetune.algos`` names them ``fromscratch`` and ``sac-preload``.

    fromscratch   SAC on online samples only; the first ``learning_starts`` exploration steps act uniformly
                  at random in [-1, 1]^A and make no update (the usual SAC warm-up)
    sac-preload   the same SAC, its buffer first filled with every offline transition and sampled uniformly
                  over offline + online (``algos.offline_and_online_buffer``, as IQL's own fine-tuning); no
                  random warm-up, updates from the first step

The update is ``agents.sac.SACAgent.update`` unchanged (twin soft critics, reparameterised tanh-Gaussian
actor, temperature tuned towards H_target = -|A| as GDE's B.3 says, Polyak targets): nothing is re-implemented
here. ``explore_action`` samples the stochastic policy tanh(mu + sigma eps); ``exploit_action`` (what the
reporting evaluation scores) is its deterministic mean tanh(mu(s)). Neither reads the offline agent's networks:
``ctx.agent`` only gives obs_dim, act_dim and the discount. Both use ``SACConfig``'s defaults: Adam lr 3e-4
for actor, critics and log alpha, tau 0.005, 2 x 256 hidden units, alpha_0 = 1; the batch size is the loop's
(256 in ``experiments.finetune``).

Decisions (GDE does not state them):

* **Inputs: raw states and raw rewards** for both rows (``ObsNormalizer.identity``, reward scale 1), not the
  offline data's normaliser and reward scale that the backbones were trained with. FromScratch must not see
  anything of the dataset, and the paper's own numbers show it did not: Table 8 reports one "SAC without
  buffer" score per task, the same in its random, medium and medium-replay rows (59.5, 82.7, 47.4/47.7), so
  its run did not depend on the dataset. sac-preload keeps the same inputs so that Table 8's two SAC columns
  differ only in the buffer (and the warm-up); plain SAC normalises nothing. ``ScratchSAC`` takes a
  normaliser and a reward scale, so the other choice is one line in the row builders below.
* **Warm-up**: ``SACConfig.learning_starts`` (5000, the value the project's dataset-generating SAC uses:
  2% of the paper's 250k budget) for fromscratch, counted in the learner's own exploration steps (the loop
  updates from its first step for every method, ``LoopConfig.learning_starts`` = 0). Until then the actions
  are uniform and ``update`` returns no statistics without touching the networks (the loop still counts the
  calls in its ``updates`` column). With less than ``learning_starts`` steps (the quick preset: 600) a
  fromscratch run is a random policy with an untrained mean. sac-preload: 0, the preloaded buffer already
  holds enough transitions to train on from the first step.
* **Seeds**: the networks are drawn from the run's seed with a tag of their own (``NETWORK_SEED_TAG``), the
  update's noise from a generator of the learner (``noise_rng``, saved in ``state()``); the actions from the
  loop's generator.

Where ours differs from common SAC code: the log-std is squashed smoothly into [-5, 2] (``agents.sac``) where
many implementations clip it (often to [-20, 2]); the uniform warm-up without updates follows CleanRL's and
Stable-Baselines3's ``learning_starts``, and GDE gives no warm-up for its SAC baselines. The paper's SAC may
also differ in details it does not state (B.3 gives only the target entropy and 2 x 256 networks).
"""
import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.config import SACConfig
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.finetune.gde import AgentInputs
from gde_ref.finetune.variants import NO_TEACHER_LOG
from gde_ref.nn.checks import sub_state

NETWORK_SEED_TAG, NOISE_SEED_TAG = 5, 6   # the SAC networks' and the update noise's streams of the run's seed


class ScratchSAC:
    """A SAC agent trained online by the loop (the learner protocol of ``finetune.loop``).

    obs_dim, act_dim: the task's sizes; normalizer (``ObsNormalizer``) and reward_scale: what the networks see
    of a raw state and reward (identity and 1 for both table rows: module docstring); config: ``SACConfig``
    (``learning_starts``: uniform random exploration steps before the first update); seed: the run's seed.
    """

    def __init__(self, obs_dim, act_dim, normalizer, reward_scale, config=None, seed=0):
        self.config = config or SACConfig()
        if not isinstance(self.config, SACConfig):
            raise TypeError(f"ScratchSAC needs config, a SACConfig, got {type(self.config).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"ScratchSAC needs seed, an integer >= 0, got {seed!r}")
        self.sac = SACAgent(obs_dim, act_dim, self.config, seed=[int(seed), NETWORK_SEED_TAG])
        self.inputs = AgentInputs(normalizer, reward_scale, self.sac.dtype)
        if self.inputs.mean.shape != (self.sac.obs_dim,):
            raise ValueError(f"the normaliser is for {self.inputs.mean.shape[0]}-dimensional states, the task's "
                             f"are {self.sac.obs_dim}-dimensional")
        self.noise_rng = np.random.default_rng([int(seed), NOISE_SEED_TAG])
        self.explore_steps = 0    # exploration actions taken so far (the warm-up counts them)

    @property
    def warming_up(self):
        """True while the exploration actions are still the uniform warm-up (no update yet)."""
        return self.explore_steps < self.config.learning_starts

    def explore_action(self, obs, rng):
        """Uniform in [-1, 1]^A during the warm-up, then a sample tanh(mu + sigma eps) of the policy (a new array)."""
        if self.warming_up:
            action = rng.uniform(-1.0, 1.0, self.sac.act_dim).astype(self.sac.dtype)
        else:
            action = self.sac.act(self.inputs.obs(obs), rng).copy()
        self.explore_steps += 1
        return action

    def exploit_action(self, obs):
        """The deterministic mean action tanh(mu(s)) (a new array)."""
        return self.sac.act(self.inputs.obs(obs)).copy()

    def update(self, batch, progress):
        """One SAC step on a raw batch (states normalised, rewards scaled here); no step, {} while warming up."""
        if self.warming_up:
            return {}
        return self.sac.update(self.inputs.batch(batch), self.noise_rng)

    def after_evaluation(self, score, env_step):
        return dict(NO_TEACHER_LOG)

    def state(self):
        """The SAC agent's arrays (by reference), the noise generator's state and the warm-up count."""
        return {**{f"sac/{k}": v for k, v in self.sac.state().items()},
                "noise_rng": self.noise_rng.bit_generator.state, "explore_steps": self.explore_steps}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()`` in place; a state of another learner is one clear error."""
        missing = [k for k in ("noise_rng", "explore_steps") if k not in saved]
        if missing:
            raise ValueError(f"{what} has no {' or '.join(missing)}: it was not saved by a SAC-from-scratch learner")
        self.sac.load_state(sub_state(saved, "sac/"), what)
        self.noise_rng.bit_generator.state = saved["noise_rng"]
        self.explore_steps = int(saved["explore_steps"])


def _raw_inputs(ctx):
    if ctx.action_temperature != 1.0:
        raise ValueError("action_temperature applies to the naive variants (Fig. 2d), not to SAC from scratch: "
                         "its exploration is its own stochastic policy")
    return ObsNormalizer.identity(ctx.agent.obs_dim), 1.0


def fromscratch(ctx):
    """The FromScratch row (Table 2): SAC with a uniform warm-up of ``SACConfig.learning_starts`` steps."""
    normalizer, scale = _raw_inputs(ctx)
    return ScratchSAC(ctx.agent.obs_dim, ctx.agent.act_dim, normalizer, scale,
                      SACConfig(discount=ctx.agent.config.discount), ctx.seed)


def sac_preload(ctx):
    """The "SAC with buffer" row (Table 8): the same SAC, no warm-up; its buffer (the row's) holds the offline data."""
    normalizer, scale = _raw_inputs(ctx)
    return ScratchSAC(ctx.agent.obs_dim, ctx.agent.act_dim, normalizer, scale,
                      SACConfig(discount=ctx.agent.config.discount, learning_starts=0), ctx.seed)
