"""One function per equation of the paper (and of the baselines), each returning the loss and its gradient.

| paper | function | module |
|---|---|---|
| Eq. 1 TD error | ``td_loss`` | equations |
| Eq. 2 expectile regression for V | ``expectile_loss`` | equations |
| Eq. 3 IQL Q loss | ``iql_q_loss`` | equations |
| Eq. 4 AWR actor loss (exp-advantage clipped at 100) | ``awr_loss`` | equations |
| Eq. 5 GDE exploration actor loss | ``gde_exploration_loss`` (Gaussian), ``gde_exploration_loss_discrete`` | equations |
| DQN, discrete CQL penalty | ``dqn_loss``, ``cql_penalty`` | baselines |
| continuous CQL penalty; Cal-QL's, its policy Q-values floored by the return-to-go | ``cql_sampled_penalty``, ``calql_sampled_penalty`` | baselines |
| AWAC actor (batch-softmax advantage weights) | ``awac_actor_loss`` | baselines |
| SAC actor and temperature | ``sac_actor_loss``, ``sac_alpha_loss`` | baselines |
| RND predictor | ``rnd_loss`` | baselines |
| BpIQL's mixing weight Lambda(s) (B.6) | ``mixing_weight_loss`` | priors |

(The design proposed a single ``losses.py``; with every loss carrying its kernel, checked wrapper and
equation docstring, it is split in modules of one role each.)
"""
from gde_ref.losses.baselines import awac_actor_loss, cql_penalty, dqn_loss, rnd_loss, sac_actor_loss, sac_alpha_loss
from gde_ref.losses.equations import (AWR_MAX_WEIGHT, awr_loss, expectile_loss, gde_exploration_loss,
                                      gde_exploration_loss_discrete, iql_q_loss, td_loss)

__all__ = ["td_loss", "expectile_loss", "iql_q_loss", "awr_loss", "gde_exploration_loss",
           "gde_exploration_loss_discrete", "dqn_loss", "cql_penalty", "sac_actor_loss", "sac_alpha_loss",
           "rnd_loss", "awac_actor_loss", "AWR_MAX_WEIGHT"]
