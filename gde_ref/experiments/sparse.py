"""The paper's sparse-reward settings (Table 7's antmaze column, Appendix B.1 and B.3), picked by task wherever
the pipeline chooses settings (``pretrain``, ``finetune``): for the goal-conditioned PointMaze tasks
(``pointmaze-*-goals``, ``envs.make.SPARSE_TASKS``), whose episodes end at success as antmaze's do. Locomotion
settings are untouched. The maze2d PointMaze tasks (``pointmaze-umaze``, ...: never ending, the return counts
steps at the goal) are not sparse here: they take the locomotion settings (IQL expectile 0.7, temperature 3,
n-step 1, the mean of the last 10 evaluations), as CORL's IQL maze2d configs (the paper and IQL's report no
maze2d), with the 0/1 rewards neither shifted nor scaled (``envs.make.scales_rewards``; CORL leaves them too).

* IQL backbone: expectile 0.9, AWR temperature 10 (``IQLConfig.for_antmaze``). Other backbones keep their
  defaults (Table 7 gives sparse-reward values for IQL only).
* rewards r - 1 (REWARD_SHIFT; IQL's antmaze convention: 0 at the step that reaches the goal, -1 at every
  other), not scaled (locomotion's 1000 / return spread is not used): the offline data's when pretraining;
  the offline data's and every online transition stored in the replay buffer when fine-tuning
  (``LoopConfig.reward_shift``). Scores, stage scores and episode returns use the env's own 0/1 reward.
* n-step 3 (N_STEP) for GDE and its ablations (the algos with evaluation stages); the other algos keep 1 (the
  ones that keep one-step offline transitions in their buffer need it). ``--n-step`` overrides it.
* the final score is the last reporting evaluation's (FINAL_WINDOW = 1), 100 x its success rate (B.1).
* F (evaluation / teacher-update period) and L (evaluation-stage length): the paper's F = 2.5e4 and L = 5000
  go with its 250k-step budget (F = T / 10, L = F / 5), kept at the paper preset; scaled with the budget at
  the laptop preset (50k steps): F = 5000, L = 1000; quick keeps the locomotion quick preset's 200 / 50.
  Reporting evaluations run 10 episodes at laptop and paper (a success rate in steps of 10%).
"""
import dataclasses

import numpy as np

from gde_ref.agents.backbones import backbone_config
from gde_ref.data.datasets import NAME_OF_ID
from gde_ref.envs.make import is_sparse, parse_dataset_name

REWARD_SHIFT = -1.0
N_STEP = 3
FINAL_WINDOW = 1
FINETUNE_PRESETS = {"quick": {},
                    "laptop": {"eval_period": 5_000, "eval_steps": 1_000, "report_episodes": 10},
                    "paper": {"eval_period": 25_000, "eval_steps": 5_000, "report_episodes": 10}}


def sparse_dataset(dataset):
    """True if ``dataset`` (a name, or the Minari id of one of ours) is a sparse-reward task's."""
    try:
        task, _ = parse_dataset_name(NAME_OF_ID.get(dataset, dataset))
    except ValueError:   # another Minari id or a file: not one of our sparse tasks
        return False
    return is_sparse(task)


def default_backbone_config(backbone, sparse):
    """The backbone's default config, with Table 7's sparse-reward values for IQL when ``sparse``."""
    config = backbone_config(backbone)
    return config.for_antmaze() if sparse and hasattr(config, "for_antmaze") else config


def reward_shift(sparse):
    """What is added to every training reward: REWARD_SHIFT (-1) on a sparse task, else 0."""
    return REWARD_SHIFT if sparse else 0.0


def shifted(data, shift):
    """The ``OfflineDataset`` with ``shift`` added to its per-step rewards (its episode returns, the data's own
    record, are kept); the same object when ``shift`` is 0."""
    if shift == 0.0:
        return data
    return dataclasses.replace(data, rewards=(np.asarray(data.rewards, np.float64) + shift).astype(np.float32))


def default_n_step(algo, sparse, stage_algos):
    """n of the n-step returns when not given: N_STEP for an algo with evaluation stages (GDE and its
    ablations, ``stage_algos``) on a sparse task, else 1."""
    return N_STEP if sparse and algo in stage_algos else 1
