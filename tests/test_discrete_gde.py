"""GDE on a discrete CQL backbone (the maze): initialisation, teacher swaps, rho schedule, Eq. 5 gradient;
and the softmax control (SoftmaxQFinetuner): what it samples is softmax(Q / tau) of its current critic."""
import numpy as np
import pytest

import reference_steps as ref
from gde_ref.agents.dqn import QAgent
from gde_ref.data import Batch
from gde_ref.finetune.discrete import DiscreteGDE, SoftmaxQFinetuner

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


def slow_softmax(q, tau):
    """softmax(q / tau) in float64, written out."""
    z = np.asarray(q, np.float64) / tau
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize("tau", [1.0, 0.4])
def test_softmax_control_samples_softmax_of_its_current_critic(tau):
    """SoftmaxQFinetuner.explore_action is an inverse-CDF draw from softmax(Q(s, .) / tau) of its critic: with
    the same uniforms, a NumPy inverse CDF over the slow softmax picks the same action on every draw (uniforms
    within 1e-5 of a CDF step are left out: float32 rounding may fall either way there), and the empirical
    frequencies match the probabilities. After CQL updates the distribution is the *updated* critic's: there
    is no separate exploration policy to lag behind."""
    agent = QAgent(OBS, K, hidden=(8, 8), cql_alpha=3.0, lr=1e-2, seed=5)
    agent.q.params *= 1.5                     # spread the Q-values a little (no action's probability tiny)
    control = SoftmaxQFinetuner(agent, temperature=tau)
    rng = np.random.default_rng(6)
    seen = []
    for round_ in range(2):
        for cell in (1, 4):
            obs = np.eye(OBS, dtype=np.float32)[cell]
            probs = slow_softmax(agent.q_values(obs[None])[0], tau)
            assert probs.min() > 0.02, probs
            seen.append(probs)
            n = 20000
            uniforms = np.random.default_rng(100 + cell).random(n)   # the uniforms explore_action will use
            draw_rng = np.random.default_rng(100 + cell)
            actions = np.array([control.explore_action(obs, draw_rng) for _ in range(n)])
            cdf = np.cumsum(probs)
            expected = np.minimum(np.searchsorted(cdf, uniforms * cdf[-1], side="right"), K - 1)
            clear = np.abs(uniforms[:, None] * cdf[-1] - cdf[None, :-1]).min(axis=1) > 1e-5
            assert clear.mean() > 0.99
            np.testing.assert_array_equal(actions[clear], expected[clear])
            freq = np.bincount(actions, minlength=K) / n
            np.testing.assert_allclose(freq, probs, atol=0.015)
        if round_ == 0:
            before = agent.q.params.copy()
            for _ in range(30):
                control.update(batch(rng), 0.5)
            assert not np.allclose(agent.q.params, before), "the updates must move the critic"
    # the updates moved the distribution further than the frequency check's tolerance: sampling a stale copy
    # of the critic would have failed it
    assert np.abs(np.array(seen[:2]) - np.array(seen[2:])).max() > 0.05


def test_softmax_control_starts_where_gde_exploration_starts():
    """Built from the same offline critic with the same tau, the control samples exactly the distribution
    DiscreteGDE's exploration policy (and teacher) starts from: softmax(Q_offline / tau). Its evaluation
    policy is the critic's greedy action, and after_evaluation has nothing to do (no teacher)."""
    offline = QAgent(OBS, K, hidden=(8, 8), cql_alpha=3.0, seed=7)
    gde = DiscreteGDE(offline.copy(), temperature=1.0)
    control = SoftmaxQFinetuner(offline.copy(), temperature=gde.temperature)
    obs = np.eye(OBS, dtype=np.float32)
    np.testing.assert_array_equal(control.agent.q.forward(obs), gde.explore.forward(obs))
    for cell in range(OBS):
        a, b = np.random.default_rng(cell), np.random.default_rng(cell)
        assert [control.explore_action(obs[cell], a) for _ in range(200)] == \
               [gde.explore_action(obs[cell], b) for _ in range(200)]
        assert control.exploit_action(obs[cell]) == gde.exploit_action(obs[cell]) == offline.greedy(obs[cell])
    assert control.after_evaluation(-10.0, 100) == {}


def test_softmax_control_rejects_bad_inputs():
    agent = QAgent(OBS, K, hidden=(8, 8), seed=8)
    for tau in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match="temperature"):
            SoftmaxQFinetuner(agent, temperature=tau)
    control = SoftmaxQFinetuner(agent)
    rng = np.random.default_rng(9)
    with pytest.raises(ValueError, match="shape"):
        control.explore_action(np.zeros(OBS + 1, np.float32), rng)
    with pytest.raises(TypeError, match="float32"):
        control.explore_action(np.zeros(OBS), rng)
