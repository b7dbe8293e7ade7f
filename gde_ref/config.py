"""Hyper-parameters as dataclasses, with the paper's values as defaults (paper Table 7 and Appendix B.3).

Each field names its paper symbol. Locomotion values are the defaults; ``for_antmaze()`` gives the
sparse-reward settings of Table 7.
"""
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class IQLConfig:
    """IQL backbone (Kostrikov et al., 2021), paper Section 4.2.2."""

    expectile: float = 0.7          # tau in Eq. 2 (0.9 for antmaze)
    awr_temperature: float = 3.0    # lambda in Eq. 4, exp(lambda * A) (10.0 for antmaze)
    awr_max_weight: float = 100.0   # clip of exp(lambda * A), as in the IQL code
    discount: float = 0.99          # gamma
    polyak: float = 0.005           # target-network averaging rate
    critic_lr: float = 3e-4         # Adam learning rate of Q1, Q2
    value_lr: float = 3e-4          # Adam learning rate of V
    actor_lr: float = 3e-4          # Adam learning rate of the actor(s) (cosine-decayed offline)
    hidden: tuple = (256, 256)      # 2 hidden layers of 256 (paper B.3)
    batch_size: int = 256
    log_std_min: float = -5.0       # the actor's state-independent log-std is clipped to
    log_std_max: float = 2.0        #   [log_std_min, log_std_max]

    def for_antmaze(self):
        """Table 7's sparse-reward values (antmaze; also used for the PointMaze tasks, ``experiments.sparse``)."""
        return replace(self, expectile=0.9, awr_temperature=10.0)


@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC backbone (Fujimoto & Gu, 2021), the official code's defaults (sfujim/TD3_BC); the paper's Table 3."""

    alpha: float = 2.5              # lambda = alpha / mean |Q1(s, pi(s))| in the actor loss
    discount: float = 0.99          # gamma
    polyak: float = 0.005           # target averaging rate (critics and actor, on actor-update steps)
    critic_lr: float = 3e-4         # Adam learning rate of Q1, Q2
    actor_lr: float = 3e-4          # Adam learning rate of the actor(s), constant
    hidden: tuple = (256, 256)
    batch_size: int = 256
    policy_noise: float = 0.2       # target policy smoothing: eps ~ N(0, policy_noise^2) ...
    noise_clip: float = 0.5         # ... clipped to [-noise_clip, noise_clip] (actions in [-1, 1])
    policy_freq: int = 2            # one actor (and target) update every policy_freq critic updates
    exploration_std: float = 0.1    # TD3's exploration noise N(0, 0.1^2): the actor's fixed std online

    def __post_init__(self):
        if self.alpha < 0 or self.policy_noise < 0 or self.noise_clip < 0 or not self.exploration_std > 0:
            raise ValueError("alpha, policy_noise and noise_clip must be >= 0 and exploration_std > 0, got "
                             f"{self.alpha}, {self.policy_noise}, {self.noise_clip}, {self.exploration_std}")
        if self.policy_freq < 1:
            raise ValueError(f"policy_freq must be >= 1, got {self.policy_freq}")


@dataclass(frozen=True)
class CQLConfig:
    """CQL for continuous actions (Kumar et al., 2020), the C- backbone of the paper's Table 3: SAC with the
    CQL(H) penalty. The paper gives alpha = 5.0 (B.3); the rest follows JaxCQL's defaults (no Lagrange, importance
    sampling, 10 sampled actions per kind, no entropy in the backup), which Cal-QL builds on."""

    cql_alpha: float = 5.0          # weight of the CQL penalty (the paper's B.3: "conservative alpha = 5.0")
    n_actions: int = 10             # sampled actions per state for each of uniform, pi(.|s), pi(.|s')
    discount: float = 0.99
    polyak: float = 0.005
    critic_lr: float = 3e-4
    actor_lr: float = 3e-4          # JaxCQL's policy_lr (the official PyTorch scripts: 1e-4)
    alpha_lr: float = 3e-4          # the entropy temperature's Adam learning rate
    hidden: tuple = (256, 256)
    batch_size: int = 256
    initial_alpha: float = 1.0
    log_std_min: float = -5.0       # the squashed Gaussian's state-dependent log-std bounds (as SACConfig)
    log_std_max: float = 2.0

    def __post_init__(self):
        if self.cql_alpha < 0 or self.n_actions < 1:
            raise ValueError(f"cql_alpha must be >= 0 and n_actions >= 1, got {self.cql_alpha}, {self.n_actions}")
        if not self.log_std_min < self.log_std_max or not self.initial_alpha > 0:
            raise ValueError("need log_std_min < log_std_max and initial_alpha > 0")


@dataclass(frozen=True)
class AWACConfig:
    """AWAC (Nair et al., 2020), the AWAC column of the paper's Table 2, with the official code's settings
    (rail-berkeley/rlkit, examples/awac/mujoco/awac1.py): the actor's advantage weights are a softmax over
    the batch at temperature beta, the critics' backup has no entropy term. Where it differs: 2 x 256 networks
    (rlkit's policy is 4 x 256), one batch size for both phases (rlkit: 128 offline, 1024 online), the
    log-std clipped to [-6, 0] (rlkit squashes it into that range with a sigmoid)."""

    beta: float = 2.0               # temperature of the batch softmax softmax_i(A_i / beta) (rlkit's mujoco
                                    #   sweep; its trainer default is 1, the AWAC paper's lambda)
    discount: float = 0.99          # gamma
    polyak: float = 0.005           # target-critic averaging rate, every step
    critic_lr: float = 3e-4         # Adam learning rate of Q1, Q2
    actor_lr: float = 3e-4          # Adam learning rate of the actor(s), constant
    policy_weight_decay: float = 1e-4   # L2 coefficient added to the actor's gradient (torch Adam weight_decay)
    hidden: tuple = (256, 256)
    batch_size: int = 256
    log_std_min: float = -6.0       # the actor's state-independent log-std is clipped to
    log_std_max: float = 0.0        #   [log_std_min, log_std_max] (rlkit's range)

    def __post_init__(self):
        if not self.beta > 0 or self.policy_weight_decay < 0:
            raise ValueError(f"beta must be > 0 and policy_weight_decay >= 0, got {self.beta}, "
                             f"{self.policy_weight_decay}")
        if not self.log_std_min < self.log_std_max or self.batch_size < 1:
            raise ValueError(f"need log_std_min < log_std_max and batch_size >= 1, got {self.log_std_min}, "
                             f"{self.log_std_max}, {self.batch_size}")


@dataclass(frozen=True)
class CalQLConfig(CQLConfig):
    """Cal-QL (Nakamoto et al., 2023), the calibrated CQL of the paper's Appendix C.2 (Fig. 10): CQL's settings,
    the policy-sampled Q-values of the penalty bounded below by the Monte-Carlo return-to-go. The official
    antmaze recipe also turns on CQL's Lagrange form (gap 0.8), a 4-layer Q, policy lr 1e-4 and the max
    target backup; our CQL backbone has none of these, so they are not settings here."""

    failure_reward: float | None = None   # r_neg of the sparse-failure rule, in the stored rewards' units (after
    #                                     a sparse task's r - 1 shift, before the reward scale; None: no rule)
    mixing_ratio: float = 0.5             # offline share of an online batch (run_antmaze.sh: 0.5)

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.mixing_ratio <= 1.0:
            raise ValueError(f"mixing_ratio must be in [0, 1], got {self.mixing_ratio}")
        if self.failure_reward is not None and not math.isfinite(self.failure_reward):
            raise ValueError(f"failure_reward must be a finite reward or None, got {self.failure_reward}")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"Cal-QL's returns-to-go need a discount in [0, 1), got {self.discount}")


@dataclass(frozen=True)
class GDEConfig:
    """Guided Decoupled Exploration, paper Section 4.2.3 and Algorithm 1: the learner's settings. F and L
    (how often and how long the exploitation policy is evaluated) belong to the online loop:
    ``finetune.loop.LoopConfig.eval_period`` and ``eval_steps``."""

    kl_weight: float = 0.3          # rho in Eq. 5, decayed linearly to 0 over the budget
    n_step: int = 1                 # n-step returns (3 for the sparse-reward mazes)
    buffer_size: int = 250_000      # online-only replay buffer
    exploration_lr: float = 3e-4    # Adam learning rate of the exploration policy

    def __post_init__(self):
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight (rho) must be >= 0, got {self.kl_weight}")
        if self.n_step < 1 or self.buffer_size < 1:
            raise ValueError(f"n_step and buffer_size must be >= 1, got {self.n_step}, {self.buffer_size}")


@dataclass(frozen=True)
class SACConfig:
    """Soft Actor-Critic (Haarnoja et al., 2018): the FromScratch baseline and the dataset-generating agent.

    Defaults follow the SAC paper's Table 1 and the GDE paper's B.3 (target entropy -|A|).
    """

    discount: float = 0.99          # gamma; the replay buffer folds it into Batch.discounts
    polyak: float = 0.005           # target-critic averaging rate (SAC's tau)
    actor_lr: float = 3e-4          # Adam learning rate of the policy pi_phi
    critic_lr: float = 3e-4         # Adam learning rate of Q1, Q2
    alpha_lr: float = 3e-4          # Adam learning rate of log alpha (0: fixed temperature)
    hidden: tuple = (256, 256)      # 2 hidden layers of 256 (paper B.3)
    batch_size: int = 256
    initial_alpha: float = 1.0      # alpha at the start, log alpha = 0 (the SAC authors' code and CleanRL)
    target_entropy: float | None = None  # H_target of the temperature loss; None means -|A| (paper B.3)
    log_std_min: float = -5.0       # the state-dependent log-std is squashed smoothly into
    log_std_max: float = 2.0        #   [log_std_min, log_std_max] (bounded_log_std)
    learning_starts: int = 5_000    # environment steps of uniform random actions before the first update

    def __post_init__(self):
        if not 0.0 <= self.discount <= 1.0 or not 0.0 <= self.polyak <= 1.0:
            raise ValueError(f"discount and polyak must be in [0, 1], got {self.discount}, {self.polyak}")
        if min(self.actor_lr, self.critic_lr, self.alpha_lr) < 0 or not self.initial_alpha > 0:
            raise ValueError("learning rates must be >= 0 and initial_alpha > 0, got "
                             f"{self.actor_lr}, {self.critic_lr}, {self.alpha_lr}, {self.initial_alpha}")
        if not self.log_std_min < self.log_std_max:
            raise ValueError(f"need log_std_min < log_std_max, got {self.log_std_min}, {self.log_std_max}")
        if self.batch_size < 1 or self.learning_starts < 0:
            raise ValueError(f"batch_size must be >= 1 and learning_starts >= 0, got "
                             f"{self.batch_size}, {self.learning_starts}")
