"""GDE on a discrete CQL backbone (the maze): initialisation, teacher swaps, rho schedule, Eq. 5 gradient."""
import numpy as np
import pytest

import reference_steps as ref
from gde_ref.agents.dqn import QAgent
from gde_ref.data import Batch
from gde_ref.finetune.discrete import DiscreteGDE

OBS, K, B = 6, 4, 16


def batch(rng):
    obs = np.eye(OBS, dtype=np.float32)[rng.integers(0, OBS, B)]
    return Batch(obs, rng.integers(0, K, B), -np.ones(B, np.float32), np.full(B, 0.99, np.float32),
                 np.eye(OBS, dtype=np.float32)[rng.integers(0, OBS, B)])


def test_three_policies_start_from_the_offline_critic():
    """pi_b = softmax(critic) = pi_t at the start, so the KL term is zero; the teacher is a copy."""
    critic = QAgent(OBS, K, hidden=(8, 8), cql_alpha=3.0, seed=0)
    gde = DiscreteGDE(critic, kl_weight=0.3)
    np.testing.assert_array_equal(gde.explore.params, critic.q.params)
    np.testing.assert_array_equal(gde.teacher, critic.q.params)
    assert gde.teacher is not critic.q.params and gde.explore.params is not critic.q.params


def test_teacher_swaps_only_on_a_better_evaluation():
    critic = QAgent(OBS, K, hidden=(8, 8), cql_alpha=3.0, seed=0)
    gde = DiscreteGDE(critic)
    first = gde.after_evaluation(-50.0, 100)   # step 0: the offline teacher's own score, not a swap
    assert first["teacher_swapped"] == 0 and gde.teacher_score == -50.0 and gde.swaps == 0
    rng = np.random.default_rng(0)
    for _ in range(5):
        gde.update(batch(rng), 0.1)           # the critic moves away from the teacher
    before = gde.teacher.copy()
    worse = gde.after_evaluation(-60.0, 200)
    assert worse["teacher_swapped"] == 0 and np.array_equal(gde.teacher, before)
    better = gde.after_evaluation(-40.0, 300)
    assert better["teacher_swapped"] == 1 and np.array_equal(gde.teacher, critic.q.params) and gde.swaps == 1


def test_kl_weight_decays_linearly_to_zero():
    gde = DiscreteGDE(QAgent(OBS, K, hidden=(8, 8), seed=0), kl_weight=0.3)
    rng = np.random.default_rng(1)
    for progress, want in [(0.0, 0.3), (0.5, 0.15), (1.0, 0.0)]:
        gde.update(batch(rng), progress)
        assert np.isclose(gde.kl_weight, want)


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_exploration_gradient_matches_central_differences(tau):
    """The kernel's gradient of Eq. 5 w.r.t. the exploration network equals central differences of
    -mean sum_a pi_b(a) Q(s, a) + rho mean KL(pi_t || pi_b) in float64, with pi_b = softmax(f_mu / tau)
    and pi_t = softmax(Q_teacher / tau)."""
    critic = QAgent(OBS, K, hidden=(8, 8), cql_alpha=0.0, lr=0.0, seed=0)
    gde = DiscreteGDE(critic, kl_weight=0.3, exploration_lr=0.0, temperature=tau)
    rng = np.random.default_rng(2)
    gde.explore.params += 0.3 * rng.standard_normal(gde.explore.n_params).astype(np.float32)
    gde.teacher += 0.3 * rng.standard_normal(gde.teacher.size).astype(np.float32)
    b = batch(rng)
    gde.update(b, 0.0)
    kernel_grad = gde._bundle(B)[0].grads.astype(np.float64)
    sizes, obs = gde.explore.sizes, b.obs.astype(np.float64)
    q = ref.forward(critic.q.params.astype(np.float64), sizes, obs, ref.Recorder())[-1]
    logits_t = ref.forward(gde.teacher.astype(np.float64), sizes, obs, ref.Recorder())[-1]

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    def loss(p):
        log_b = log_softmax(ref.forward(p, sizes, obs, ref.Recorder())[-1] / tau)
        log_t = log_softmax(logits_t / tau)
        kl = np.sum(np.exp(log_t) * (log_t - log_b), 1)
        return -np.mean(np.sum(np.exp(log_b) * q, 1)) + 0.3 * np.mean(kl)

    p = gde.explore.params.astype(np.float64)
    numeric = np.zeros_like(p)
    for i in range(p.size):
        old = p[i]
        p[i] = old + 1e-6
        up = loss(p)
        p[i] = old - 1e-6
        numeric[i] = (up - loss(p)) / 2e-6
        p[i] = old
    assert np.abs(numeric).max() > 1e-3
    np.testing.assert_allclose(kernel_grad, numeric, rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_exploration_policy_samples_its_softmax(tau):
    """explore_action samples softmax(f_mu(s) / tau): empirical frequencies match the probabilities."""
    gde = DiscreteGDE(QAgent(OBS, K, hidden=(8, 8), seed=3), temperature=tau)
    obs = np.eye(OBS, dtype=np.float32)[2]
    logits = gde.explore.forward(obs[None].astype(np.float32))[0].astype(np.float64) / tau
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    rng = np.random.default_rng(4)
    counts = np.bincount([gde.explore_action(obs, rng) for _ in range(20000)], minlength=K) / 20000
    np.testing.assert_allclose(counts, probs, atol=0.015)
