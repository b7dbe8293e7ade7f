"""The behavioural prior's losses (BpIQL, Table 1 and Appendix B.6): the mixing weight Lambda(s).

SFP (Bagatella et al. 2022) acts from a mixture of a state-free prior pi_bar(a_t | a_{t-1}) and the agent's
policy pi(a_t | s_t), ``lambda = Lambda_omega(s) = sigmoid(z_omega(s))`` the prior's share. B.6 trains omega
to maximise the mixture's value, whose omega-dependent part is

    V(s) = Lambda(s) E[Q(s, a_bar) - Q(s, a)] + E[Q(s, a)],     a_bar ~ pi_bar, a ~ pi(.|s).
"""
import numpy as np


def sigmoid(z):
    """1 / (1 + exp(-z)), computed without overflow for large |z|."""
    z = np.asarray(z, dtype=np.result_type(z, np.float32))
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype)


def mixing_weight_loss(logits, q_prior, q_policy):
    """B.6's objective as a loss to minimise, for a batch of B states (one sample of each action per state):

        L(omega) = -(1/B) sum_i Lambda_i (q_prior_i - q_policy_i),      Lambda_i = sigmoid(z_i)

    logits z (B,), q_prior = min(Q1, Q2)(s_i, a_bar_i), q_policy = min(Q1, Q2)(s_i, a_i) (held constant).
    Returns (loss, dL/dz (B,)): dL/dz_i = -(1/B) Lambda_i (1 - Lambda_i) (q_prior_i - q_policy_i). The prior's
    share grows where its actions are valued above the policy's, and shrinks elsewhere.
    """
    logits = np.asarray(logits)
    lam = sigmoid(logits)
    gap = np.asarray(q_prior, logits.dtype) - np.asarray(q_policy, logits.dtype)
    n = logits.shape[0]
    loss = -float(np.sum(lam * gap)) / n
    return loss, (-(lam * (1.0 - lam) * gap) / n).astype(logits.dtype)
