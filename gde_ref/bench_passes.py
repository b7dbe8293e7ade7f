"""The network passes of each benchmarked update step, in the order the kernels run them (``gde_ref.bench``).

A pass is ("forward", network, input[, rows]) or ("backward", network, param_grads, input_grad). ``rows``, a
multiple of the batch B (1 unless given), is the number of rows the forward runs on; a backward differentiates
the network's last forward, on its rows. Networks are the kernel records of the step: KIND maps each to its
shape ("q" critic [obs + act, *hidden, 1], "v" value [obs, *hidden, 1], "pi" actor [obs, *hidden, act], "sq"
squashed-Gaussian actor [obs, *hidden, 2 act]); PARAMS maps a record that shares another one's parameters (the
same network with scratch arrays for another row count) to that one.
"""
from gde_ref.config import CQLConfig, TD3BCConfig

# one IQL step and GDE's extra exploration step
IQL_PASSES = [
    ("forward", "q1_target", "obs_actions"), ("forward", "q2_target", "obs_actions"),  # Q'(s, a)
    ("forward", "value", "obs"), ("backward", "value", True, False),                    # Eq. 2
    ("forward", "value", "next_obs"),                                                   # V(s')
    ("forward", "q1", "obs_actions"), ("forward", "q2", "obs_actions"),                 # Eq. 3
    ("backward", "q1", True, False), ("backward", "q2", True, False),
    ("forward", "value", "obs"),                                                        # V(s), updated
    ("forward", "actor", "obs"), ("backward", "actor", True, False),                    # Eq. 4
]
EXPLORE_PASSES = [
    ("forward", "explore", "obs"), ("forward", "teacher", "obs"),                       # pi_b, pi_t
    ("forward", "q1", "obs_actions"), ("forward", "q2", "obs_actions"),                 # Q(s, pi_b(s))
    ("backward", "q1", False, True), ("backward", "q2", False, True),                   # dQ/da
    ("backward", "explore", True, False),                                               # Eq. 5
]
# TD3+BC (agents.td3bc.td3bc_update): a critic step on every update, the actor step (then the Polyak averages,
# no products) on every POLICY_FREQ-th. The critics' input [s', a~], then [s, a], is one scratch array.
TD3BC_CRITIC_PASSES = [
    ("forward", "actor_target", "next_obs"),                                            # a~ from pi'(s')
    ("forward", "q1_target", "obs_actions"), ("forward", "q2_target", "obs_actions"),  # Q'(s', a~)
    ("forward", "q1", "obs_actions"), ("forward", "q2", "obs_actions"),                 # Q(s, a)
    ("backward", "q1", True, False), ("backward", "q2", True, False),
]
TD3BC_ACTOR_PASSES = [
    ("forward", "actor", "obs"), ("forward", "q1", "obs_actions"),                      # Q1(s, pi(s))
    ("backward", "q1", False, True), ("backward", "actor", True, False),                # dQ1/da, then the actor
]
POLICY_FREQ = TD3BCConfig().policy_freq
# one policy_freq cycle (POLICY_FREQ updates): critic steps, the last one followed by the actor step
TD3BC_PASSES = TD3BC_CRITIC_PASSES * POLICY_FREQ + TD3BC_ACTOR_PASSES
GDE_TD3BC_PASSES = ((TD3BC_CRITIC_PASSES + EXPLORE_PASSES) * (POLICY_FREQ - 1)
                    + TD3BC_CRITIC_PASSES + TD3BC_ACTOR_PASSES + EXPLORE_PASSES)

# SAC's actor step (agents.sac.actor_step): a ~ pi(.|s), min(Q1, Q2)(s, a), both twins' input gradients, the actor
SAC_ACTOR_PASSES = [
    ("forward", "sac_actor", "obs"),
    ("forward", "q1", "obs_actions"), ("forward", "q2", "obs_actions"),
    ("backward", "q1", False, True), ("backward", "q2", False, True),
    ("backward", "sac_actor", True, False),
]


def cql_passes(n_actions):
    """One CQL update (agents.cql.cql_update) with M = n_actions sampled actions per kind: the critic step
    (a' ~ pi(.|s') and the target twins on B rows, M samples of pi(.|s) and of pi(.|s') on B M rows each, both
    twins on the B (1 + 3M) penalty rows and their parameter gradients), then SAC's actor step (the temperature
    step and the Polyak averages have no products)."""
    m = n_actions
    return [
        ("forward", "sac_actor", "next_obs"),                                           # a' ~ pi(.|s')
        ("forward", "q1_target", "obs_actions"), ("forward", "q2_target", "obs_actions"),  # Q'(s', a')
        ("forward", "sampler", "repeated_obs", m),                                      # M a ~ pi(.|s_i)
        ("forward", "sampler", "repeated_next_obs", m),                                 # M a ~ pi(.|s'_i)
        ("forward", "q1_penalty", "penalty_obs_actions", 1 + 3 * m),                    # Q_k on the data rows
        ("forward", "q2_penalty", "penalty_obs_actions", 1 + 3 * m),                    # and the sampled ones
        ("backward", "q1_penalty", True, False), ("backward", "q2_penalty", True, False),
    ] + SAC_ACTOR_PASSES


CQL_N_ACTIONS = CQLConfig().n_actions
CQL_PASSES = cql_passes(CQL_N_ACTIONS)

KIND = {"q1": "q", "q2": "q", "q1_target": "q", "q2_target": "q", "value": "v",
        "actor": "pi", "actor_target": "pi", "explore": "pi", "teacher": "pi",
        "sac_actor": "sq", "sampler": "sq", "q1_penalty": "q", "q2_penalty": "q"}
PARAMS = {"sampler": "sac_actor", "q1_penalty": "q1", "q2_penalty": "q2"}
