"""Solution to exercise cql_penalty (tutorial 01a, section 3): the discrete CQL penalty, in plain NumPy."""
import numpy as np


def cql_penalty(q_all, actions, alpha):
    q_all, actions = np.asarray(q_all), np.asarray(actions)
    n = q_all.shape[0]
    top = q_all.max(axis=1, keepdims=True)                       # subtract the max: a stable logsumexp
    lse = top[:, 0] + np.log(np.exp(q_all - top).sum(axis=1))    # logsumexp_a Q(s_i, a), (B,)
    q_data = q_all[np.arange(n), actions]                        # Q(s_i, a_i), (B,)
    penalty = alpha * np.mean(lse - q_data)
    d_q_all = np.exp(q_all - lse[:, None])                       # softmax_a Q(s_i, .)
    d_q_all[np.arange(n), actions] -= 1.0                        # minus the one-hot of the data action
    return float(penalty), alpha / n * d_q_all
