"""Tests of gde_ref.losses: the paper's Eq. 1-5 and the baselines' losses.

Every loss is checked four ways:
1. its gradient(s) against central differences, in float64;
2. its value against a slow NumPy version written here straight from the equation (float64 and float32);
3. the behaviour the paper relies on (expectile asymmetry, AWR clip, the KL term of Eq. 5, ...);
4. bad inputs stop with an error that names the problem.
"""
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp, softmax

from gde_ref.losses import (AWR_MAX_WEIGHT, awr_loss, cql_penalty, dqn_loss, expectile_loss,
                            gde_exploration_loss, gde_exploration_loss_discrete, iql_q_loss, rnd_loss,
                            sac_actor_loss, sac_alpha_loss, td_loss)

B, A, K, F = 7, 3, 4, 5  # batch, continuous action dims, discrete actions, RND feature width


def _central_difference(loss_at, x, step=1e-6):
    """Central-difference gradient of the scalar function ``loss_at`` at ``x`` (an array or a scalar)."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += step
        minus[idx] -= step
        if x.ndim == 0:
            plus, minus = float(plus), float(minus)
        grad[idx] = (loss_at(plus) - loss_at(minus)) / (2.0 * step)
    return grad


def _cast(inputs, dtype):
    """A copy of ``inputs`` with every floating array cast to ``dtype`` (integer actions and scalars kept)."""
    return {k: v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            for k, v in inputs.items()}


def _f64(x):
    return np.asarray(x, dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# inputs: one random batch per loss, every point away from the losses' kinks
# ------------------------------------------------------------------------------------------------
def _td_inputs(rng):
    return dict(q=rng.normal(size=B), target=rng.normal(size=B))


def _expectile_inputs(rng):
    q = rng.normal(size=B)
    sign = np.where(np.arange(B) % 2 == 0, 1.0, -1.0)  # both branches of |tau - 1(u < 0)|
    u = sign * rng.uniform(0.2, 1.5, size=B)           # |u| >= 0.2: far from the kink at u = 0
    return dict(q=q, v=q - u, expectile=0.7)


def _iql_q_inputs(rng):
    terminal = np.arange(B) % 3 == 0
    return dict(q1=rng.normal(size=B), q2=rng.normal(size=B), reward=rng.normal(size=B),
                discount=np.where(terminal, 0.0, 0.99 ** 3), next_v=rng.normal(size=B))


def _awr_inputs(rng):
    q = rng.normal(size=B)
    advantage = rng.uniform(-0.4, 0.4, size=B)  # exp(3 * 0.4) = 3.3: below the clip ...
    advantage[0] = 2.0                           # ... except one sample, exp(3 * 2) = 403 -> clipped at 100
    return dict(log_prob=rng.normal(size=B), q=q, v=q - advantage, temperature=3.0)


def _gde_inputs(rng):
    return dict(q_pi=rng.normal(size=B), mean_b=np.tanh(rng.normal(size=(B, A))),
                log_std_b=rng.uniform(-1.0, 0.5, size=A), mean_t=np.tanh(rng.normal(size=(B, A))),
                log_std_t=rng.uniform(-1.0, 0.5, size=A), kl_weight=0.3)


def _gde_discrete_inputs(rng):
    return dict(q_all=rng.normal(size=(B, K)), logits_b=rng.normal(size=(B, K)),
                logits_t=rng.normal(size=(B, K)), kl_weight=0.3)


def _dqn_inputs(rng):
    terminal = np.arange(B) % 3 == 0
    return dict(q_all=rng.normal(size=(B, K)), actions=rng.integers(0, K, size=B),
                reward=rng.normal(size=B), discount=np.where(terminal, 0.0, 0.99),
                next_q_target=rng.normal(size=(B, K)))


def _cql_inputs(rng):
    return dict(q_all=rng.normal(size=(B, K)), actions=rng.integers(0, K, size=B), alpha=5.0)


def _sac_actor_inputs(rng):
    return dict(log_prob=rng.normal(size=B), q_min=rng.normal(size=B), alpha=0.2)


def _sac_alpha_inputs(rng):
    return dict(log_alpha=-1.3, log_prob=rng.normal(size=B), target_entropy=-float(A))


def _rnd_inputs(rng):
    return dict(prediction=rng.normal(size=(B, F)), target=rng.normal(size=(B, F)))


# ------------------------------------------------------------------------------------------------
# slow references, written from the equations (float64 whatever the inputs' dtype)
# ------------------------------------------------------------------------------------------------
def _td_reference(q, target):
    """Eq. 1: mean (y - Q)^2."""
    return np.mean((_f64(target) - _f64(q)) ** 2)


def _expectile_reference(q, v, expectile):
    """Eq. 2: mean |tau - 1(u < 0)| u^2 with u = Q - V."""
    u = _f64(q) - _f64(v)
    return np.mean(np.abs(expectile - (u < 0)) * u ** 2)


def _iql_q_reference(q1, q2, reward, discount, next_v):
    """Eq. 3 for both critics: mean (r + gamma V(s') - Q_k)^2 summed over k = 1, 2."""
    y = _f64(reward) + _f64(discount) * _f64(next_v)
    return np.mean((y - _f64(q1)) ** 2) + np.mean((y - _f64(q2)) ** 2)


def _awr_reference(log_prob, q, v, temperature):
    """Eq. 4 as IQL minimises it: -mean min(exp(lambda (Q - V)), 100) log pi."""
    weight = np.minimum(np.exp(temperature * (_f64(q) - _f64(v))), 100.0)
    return -np.mean(weight * _f64(log_prob))


def _gde_reference(q_pi, mean_b, log_std_b, mean_t, log_std_t, kl_weight):
    """Eq. 5: -mean Q + rho mean KL(N(mu_t, var_t) || N(mu_b, var_b)), diagonal Gaussians."""
    var_b, var_t = np.exp(2 * _f64(log_std_b)), np.exp(2 * _f64(log_std_t))
    kl_per_dim = 0.5 * (np.log(var_b / var_t) + (var_t + (_f64(mean_t) - _f64(mean_b)) ** 2) / var_b - 1.0)
    return -np.mean(_f64(q_pi)) + kl_weight * np.mean(kl_per_dim.sum(axis=1))


def _gde_discrete_reference(q_all, logits_b, logits_t, kl_weight):
    """Eq. 5, categorical: -mean sum_a pi_b Q + rho mean KL(softmax(z_t) || softmax(z_b))."""
    pi_b, pi_t = softmax(_f64(logits_b), axis=1), softmax(_f64(logits_t), axis=1)
    kl = np.sum(pi_t * (log_softmax(_f64(logits_t), axis=1) - log_softmax(_f64(logits_b), axis=1)), axis=1)
    return -np.mean(np.sum(pi_b * _f64(q_all), axis=1)) + kl_weight * np.mean(kl)


def _dqn_reference(q_all, actions, reward, discount, next_q_target):
    """Eq. 1 with y = r + gamma max_a' Q_target(s', a')."""
    y = _f64(reward) + _f64(discount) * _f64(next_q_target).max(axis=1)
    return np.mean((_f64(q_all)[np.arange(len(actions)), actions] - y) ** 2)


def _cql_reference(q_all, actions, alpha):
    """Discrete CQL penalty: alpha mean [logsumexp_a Q(s, a) - Q(s, a_data)]."""
    q = _f64(q_all)
    return alpha * np.mean(logsumexp(q, axis=1) - q[np.arange(len(actions)), actions])


def _sac_actor_reference(log_prob, q_min, alpha):
    """SAC actor: mean [alpha log pi - min_k Q_k]."""
    return np.mean(alpha * _f64(log_prob) - _f64(q_min))


def _sac_alpha_reference(log_alpha, log_prob, target_entropy):
    """SAC temperature: -mean exp(log_alpha) (log pi + H_target)."""
    return -np.mean(np.exp(log_alpha) * (_f64(log_prob) + target_entropy))


def _rnd_reference(prediction, target):
    """RND predictor: mean_i ||f_pred(s_i) - f_target(s_i)||^2."""
    return np.mean(np.sum((_f64(prediction) - _f64(target)) ** 2, axis=1))


# name -> (loss under test, inputs, reference)
CASES = {
    "td_loss": (td_loss, _td_inputs, _td_reference),
    "expectile_loss": (expectile_loss, _expectile_inputs, _expectile_reference),
    "iql_q_loss": (iql_q_loss, _iql_q_inputs, _iql_q_reference),
    "awr_loss": (awr_loss, _awr_inputs, _awr_reference),
    "gde_exploration_loss": (gde_exploration_loss, _gde_inputs, _gde_reference),
    "gde_exploration_loss_discrete": (gde_exploration_loss_discrete, _gde_discrete_inputs,
                                      _gde_discrete_reference),
    "dqn_loss": (dqn_loss, _dqn_inputs, _dqn_reference),
    "cql_penalty": (cql_penalty, _cql_inputs, _cql_reference),
    "sac_actor_loss": (sac_actor_loss, _sac_actor_inputs, _sac_actor_reference),
    "sac_alpha_loss": (sac_alpha_loss, _sac_alpha_inputs, _sac_alpha_reference),
    "rnd_loss": (rnd_loss, _rnd_inputs, _rnd_reference),
}

# (loss, input, position of d loss / d input in the returned tuple)
GRADIENTS = [
    ("td_loss", "q", 1),
    ("expectile_loss", "v", 1),
    ("iql_q_loss", "q1", 1),
    ("iql_q_loss", "q2", 2),
    ("awr_loss", "log_prob", 1),
    ("gde_exploration_loss", "q_pi", 1),
    ("gde_exploration_loss", "mean_b", 2),
    ("gde_exploration_loss", "log_std_b", 3),
    ("gde_exploration_loss_discrete", "logits_b", 1),
    ("dqn_loss", "q_all", 1),
    ("cql_penalty", "q_all", 1),
    ("sac_actor_loss", "log_prob", 1),
    ("sac_actor_loss", "q_min", 2),
    ("sac_alpha_loss", "log_alpha", 1),
    ("rnd_loss", "prediction", 1),
]
GRADIENT_IDS = [f"{name}-d_{wrt}" for name, wrt, _ in GRADIENTS]


def _inputs(name, dtype=np.float64, seed=0):
    return _cast(CASES[name][1](np.random.default_rng(seed)), dtype)


# ------------------------------------------------------------------------------------------------
# 1. gradients against central differences
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, wrt, index", GRADIENTS, ids=GRADIENT_IDS)
def test_gradient_matches_central_difference(name, wrt, index):
    """The returned gradient equals the float64 central-difference gradient of the returned loss."""
    loss_fn = CASES[name][0]
    inputs = _inputs(name, seed=1)
    analytic = loss_fn(**inputs)[index]
    numeric = _central_difference(lambda x: loss_fn(**{**inputs, wrt: x})[0], inputs[wrt])
    assert np.shape(analytic) == np.shape(inputs[wrt])
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, wrt, index", GRADIENTS, ids=GRADIENT_IDS)
def test_float32_gradient_matches_float64(name, wrt, index):
    """In float32 the gradient keeps the training dtype and agrees with the float64 one."""
    loss_fn = CASES[name][0]
    inputs32 = _inputs(name, np.float32, seed=2)
    grad32 = loss_fn(**inputs32)[index]
    grad64 = loss_fn(**_cast(inputs32, np.float64))[index]
    if isinstance(inputs32[wrt], np.ndarray):
        assert grad32.dtype == np.float32
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# 2. values against the slow references
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-12), (np.float32, 1e-5, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("name", list(CASES))
def test_loss_matches_reference(name, dtype, rtol, atol):
    """The loss equals the slow NumPy version of its equation."""
    loss_fn, _, reference = CASES[name]
    for seed in range(3):
        inputs = _inputs(name, dtype, seed)
        loss = loss_fn(**inputs)[0]
        assert isinstance(loss, float)
        np.testing.assert_allclose(loss, reference(**inputs), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------------------------
# 3. semantics
# ------------------------------------------------------------------------------------------------
def test_expectile_at_one_half_is_half_the_squared_error():
    """With tau = 0.5, Eq. 2 is exactly half of Eq. 1's mean squared error, value and gradient."""
    inputs = _inputs("expectile_loss")
    q, v = inputs["q"], inputs["v"]
    loss, d_v = expectile_loss(q, v, 0.5)
    mse, d_mse = td_loss(v, q)  # mean (V - Q)^2 and its gradient w.r.t. V
    assert loss == pytest.approx(0.5 * mse, rel=1e-14)
    np.testing.assert_allclose(d_v, 0.5 * d_mse, rtol=1e-14)


@pytest.mark.parametrize("tau", [0.7, 0.9, 0.99])
def test_expectile_weights_positive_errors_by_tau(tau):
    """An error u = Q - V > 0 costs tau/(1 - tau) times as much as the error -u."""
    q = np.zeros(1)
    above, _ = expectile_loss(q, np.array([-0.8]), tau)  # u = +0.8: Q above V
    below, _ = expectile_loss(q, np.array([0.8]), tau)   # u = -0.8
    assert above > below
    assert above / below == pytest.approx(tau / (1.0 - tau), rel=1e-12)


@pytest.mark.parametrize("tau, direction", [(0.1, 1.0), (0.5, 0.0), (0.9, -1.0)])
def test_expectile_moves_v_above_the_mean_when_tau_above_half(tau, direction):
    """At V = mean(Q), the loss's slope w.r.t. a shared V is < 0 for tau > 0.5, 0 at 0.5, > 0 below."""
    q = np.random.default_rng(3).normal(size=B)
    _, d_v = expectile_loss(q, np.full(B, q.mean()), tau)
    slope = d_v.sum()
    if direction == 0.0:
        assert slope == pytest.approx(0.0, abs=1e-12)
    else:
        assert np.sign(slope) == direction


def test_awr_max_weight_is_one_hundred():
    """The exp-advantage weight is clipped at 100, as in the official IQL code."""
    assert AWR_MAX_WEIGHT == 100.0


@pytest.mark.parametrize("advantage", [1.0, 1e3], ids=["exp(10)", "exp-overflows"])
def test_awr_clipped_regime_has_gradient_minus_max_weight_over_batch(advantage):
    """When exp(lambda A) > 100 for every sample, dL/dlog pi = -100/B and L = -100 mean(log pi)."""
    log_prob = np.random.default_rng(4).normal(size=B)
    q = np.full(B, advantage)
    v = np.zeros(B)
    loss, d_log_prob = awr_loss(log_prob, q, v, temperature=10.0)
    np.testing.assert_allclose(d_log_prob, -100.0 / B, rtol=1e-15)
    assert loss == pytest.approx(-100.0 * log_prob.mean(), rel=1e-14)
    numeric = _central_difference(lambda x: awr_loss(x, q, v, temperature=10.0)[0], log_prob)
    np.testing.assert_allclose(numeric, -100.0 / B, rtol=1e-7)


def test_awr_unclipped_weight_is_exp_temperature_advantage():
    """Below the clip, dL/dlog pi_i = -exp(lambda A_i) / B."""
    rng = np.random.default_rng(5)
    log_prob, q = rng.normal(size=B), rng.normal(size=B)
    v = q - rng.uniform(-0.4, 0.4, size=B)
    _, d_log_prob = awr_loss(log_prob, q, v, temperature=3.0)
    np.testing.assert_allclose(d_log_prob, -np.exp(3.0 * (q - v)) / B, rtol=1e-13)


def test_gde_without_kl_weight_ignores_the_teacher():
    """Eq. 5 with rho = 0 is -mean Q: zero gradients for the exploration mean and log-std."""
    inputs = {**_inputs("gde_exploration_loss"), "kl_weight": 0.0}
    loss, d_q_pi, d_mean_b, d_log_std_b = gde_exploration_loss(**inputs)
    assert loss == pytest.approx(-inputs["q_pi"].mean(), rel=1e-14)
    np.testing.assert_allclose(d_q_pi, -1.0 / B, rtol=1e-15)
    np.testing.assert_array_equal(d_mean_b, 0.0)
    np.testing.assert_array_equal(d_log_std_b, 0.0)


@pytest.mark.parametrize("kl_weight", [0.3, 5.0])
def test_gde_kl_term_vanishes_when_teacher_is_the_exploration_policy(kl_weight):
    """With pi_t == pi_b the KL is 0 and at its minimum: loss -mean Q, zero mean/log-std gradients."""
    inputs = _inputs("gde_exploration_loss")
    inputs.update(mean_t=inputs["mean_b"].copy(), log_std_t=inputs["log_std_b"].copy(), kl_weight=kl_weight)
    loss, _, d_mean_b, d_log_std_b = gde_exploration_loss(**inputs)
    assert loss == pytest.approx(-inputs["q_pi"].mean(), rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(d_mean_b, 0.0, atol=1e-12)
    np.testing.assert_allclose(d_log_std_b, 0.0, atol=1e-12)


def test_gde_kl_is_teacher_to_exploration_not_the_reverse():
    """The KL term is KL(teacher || exploration): swapping the two policies changes the loss."""
    inputs = {**_inputs("gde_exploration_loss"), "kl_weight": 1.0}
    swapped = {**inputs, "mean_b": inputs["mean_t"], "log_std_b": inputs["log_std_t"],
               "mean_t": inputs["mean_b"], "log_std_t": inputs["log_std_b"]}
    assert gde_exploration_loss(**inputs)[0] == pytest.approx(_gde_reference(**inputs), rel=1e-12)
    assert gde_exploration_loss(**swapped)[0] != pytest.approx(gde_exploration_loss(**inputs)[0], rel=1e-3)


def test_gde_discrete_without_kl_weight_is_the_expected_q_gradient():
    """Discrete Eq. 5 with rho = 0: dL/dz_b = -pi_b (Q - E_pi_b Q) / B, whatever the teacher."""
    inputs = {**_inputs("gde_exploration_loss_discrete"), "kl_weight": 0.0}
    pi_b = softmax(inputs["logits_b"], axis=1)
    expected_q = np.sum(pi_b * inputs["q_all"], axis=1, keepdims=True)
    loss, d_logits_b = gde_exploration_loss_discrete(**inputs)
    assert loss == pytest.approx(-expected_q.mean(), rel=1e-13)
    np.testing.assert_allclose(d_logits_b, -pi_b * (inputs["q_all"] - expected_q) / B, rtol=1e-12, atol=1e-15)


def test_gde_discrete_kl_term_vanishes_when_teacher_is_the_exploration_policy():
    """Discrete Eq. 5 with z_t == z_b: the KL adds nothing to the loss nor to the gradient."""
    inputs = _inputs("gde_exploration_loss_discrete")
    same = {**inputs, "logits_t": inputs["logits_b"].copy()}
    without_kl = {**inputs, "kl_weight": 0.0}
    loss, d_logits_b = gde_exploration_loss_discrete(**same)
    loss0, d_logits_b0 = gde_exploration_loss_discrete(**without_kl)
    assert loss == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(d_logits_b, d_logits_b0, atol=1e-15)


def test_dqn_gradient_is_nonzero_only_at_taken_actions():
    """DQN's gradient w.r.t. Q(s, .) touches only Q(s_i, a_i)."""
    inputs = _inputs("dqn_loss")
    _, d_q_all = dqn_loss(**inputs)
    taken = np.zeros((B, K), bool)
    taken[np.arange(B), inputs["actions"]] = True
    np.testing.assert_array_equal(d_q_all[~taken], 0.0)
    assert np.all(d_q_all[taken] != 0.0)


@pytest.mark.parametrize("name, next_value", [("iql_q_loss", "next_v"), ("dqn_loss", "next_q_target")])
def test_zero_discount_makes_the_target_the_reward(name, next_value):
    """discount = 0 (a terminal): the TD target is r, whatever the next-state value."""
    loss_fn = CASES[name][0]
    inputs = {**_inputs(name), "discount": np.zeros(B)}
    loss = loss_fn(**inputs)[0]
    other = loss_fn(**{**inputs, next_value: inputs[next_value] + 100.0})[0]
    if name == "iql_q_loss":
        expected = td_loss(inputs["q1"], inputs["reward"])[0] + td_loss(inputs["q2"], inputs["reward"])[0]
    else:
        taken = inputs["q_all"][np.arange(B), inputs["actions"]]
        expected = td_loss(taken, inputs["reward"])[0]
    assert loss == pytest.approx(expected, rel=1e-13)
    assert other == pytest.approx(loss, rel=1e-12)  # equal up to rounding (fastmath may contract differently)


def test_cql_penalty_pushes_the_data_action_up_and_the_others_down():
    """dCQL/dQ is negative at the dataset action, positive elsewhere, and each row sums to zero."""
    inputs = _inputs("cql_penalty")
    penalty, d_q_all = cql_penalty(**inputs)
    taken = np.zeros((B, K), bool)
    taken[np.arange(B), inputs["actions"]] = True
    assert penalty > 0.0
    assert np.all(d_q_all[taken] < 0.0) and np.all(d_q_all[~taken] > 0.0)
    np.testing.assert_allclose(d_q_all.sum(axis=1), 0.0, atol=1e-15)


def test_sac_alpha_gradient_equals_its_loss():
    """Since d exp(log alpha) / d log alpha = alpha, dL/dlog_alpha equals L."""
    loss, grad = sac_alpha_loss(**_inputs("sac_alpha_loss"))
    assert isinstance(grad, float)
    assert grad == loss


def test_rnd_error_is_the_per_sample_squared_distance():
    """RND's per-sample error (the intrinsic reward) is ||f_pred - f_target||^2, and its mean is the loss."""
    inputs = _inputs("rnd_loss")
    loss, _, error = rnd_loss(**inputs)
    np.testing.assert_allclose(error, np.sum((inputs["prediction"] - inputs["target"]) ** 2, axis=1),
                               rtol=1e-13)
    assert loss == pytest.approx(error.mean(), rel=1e-13)


# ------------------------------------------------------------------------------------------------
# 4. bad inputs
# ------------------------------------------------------------------------------------------------
F32 = np.float32
BAD_INPUTS = [
    pytest.param("td_loss", {"target": np.zeros(B + 1)}, ValueError, "td_loss: target has 8 rows but the batch has 7",
                 id="td-batch"),
    pytest.param("td_loss", {"q": [0.0] * B}, TypeError, "td_loss q must be a numpy array", id="td-list"),
    pytest.param("expectile_loss", {"v": np.zeros(B - 1)}, ValueError, "v has 6 rows but the batch has 7",
                 id="expectile-batch"),
    pytest.param("expectile_loss", {"v": np.zeros(B, F32)}, TypeError, "must share one dtype",
                 id="expectile-mixed-dtype"),
    pytest.param("expectile_loss", {"v": np.zeros((B, 1))}, ValueError, r"expectile_loss v must be 1-D",
                 id="expectile-2d"),
    pytest.param("expectile_loss", {"q": np.zeros(B, np.int64)}, TypeError, "must be float32 or float64",
                 id="expectile-int"),
    pytest.param("expectile_loss", {"expectile": 0.0}, ValueError, r"expectile must be in \(0\.0, 1\.0\)",
                 id="expectile-0"),
    pytest.param("expectile_loss", {"expectile": 1.0}, ValueError, r"expectile must be in \(0\.0, 1\.0\)",
                 id="expectile-1"),
    pytest.param("expectile_loss", {"expectile": 1.5}, ValueError, r"expectile must be in \(0\.0, 1\.0\)",
                 id="expectile-1.5"),
    pytest.param("expectile_loss", {"expectile": float("nan")}, ValueError, "expectile must be in",
                 id="expectile-nan"),
    pytest.param("iql_q_loss", {"next_v": np.zeros(B - 2)}, ValueError, "next_v has 5 rows", id="iql-batch"),
    pytest.param("iql_q_loss", {"discount": np.zeros(B, F32)}, TypeError, "iql_q_loss: all arrays must share",
                 id="iql-mixed-dtype"),
    pytest.param("awr_loss", {"q": np.zeros((B, 2))}, ValueError, "awr_loss q must be 1-D", id="awr-2d"),
    pytest.param("awr_loss", {"v": np.zeros(B, F32)}, TypeError, "must share one dtype", id="awr-mixed-dtype"),
    pytest.param("awr_loss", {"temperature": -1.0}, ValueError, "awr temperature must be in", id="awr-temperature"),
    pytest.param("gde_exploration_loss", {"kl_weight": -0.1}, ValueError, r"kl_weight \(rho\) must be in \[0\.0",
                 id="gde-negative-rho"),
    pytest.param("gde_exploration_loss", {"q_pi": np.zeros(B - 1)}, ValueError, "q_pi has 6 rows",
                 id="gde-batch"),
    pytest.param("gde_exploration_loss", {"mean_t": np.zeros((B, A + 1))}, ValueError,
                 r"mean_t must have shape \(7, 3\)", id="gde-teacher-shape"),
    pytest.param("gde_exploration_loss", {"log_std_b": np.zeros((1, A))}, ValueError, "log_std_b must be 1-D",
                 id="gde-log-std-2d"),
    pytest.param("gde_exploration_loss", {"mean_b": np.zeros(B)}, ValueError, "mean_b must be 2-D",
                 id="gde-mean-1d"),
    pytest.param("gde_exploration_loss", {"log_std_t": np.zeros(A, F32)}, TypeError, "must share one dtype",
                 id="gde-mixed-dtype"),
    pytest.param("gde_exploration_loss_discrete", {"kl_weight": -1.0}, ValueError, r"kl_weight \(rho\) must be in",
                 id="gde-discrete-negative-rho"),
    pytest.param("gde_exploration_loss_discrete", {"logits_t": np.zeros((B, K + 1))}, ValueError,
                 r"logits_t must have shape \(7, 4\)", id="gde-discrete-shape"),
    pytest.param("gde_exploration_loss_discrete", {"logits_b": np.zeros((B, K), F32)}, TypeError,
                 "must share one dtype", id="gde-discrete-mixed-dtype"),
    pytest.param("dqn_loss", {"actions": np.zeros(B)}, TypeError, "dqn_loss actions must be integers, got float64",
                 id="dqn-float-actions"),
    pytest.param("dqn_loss", {"actions": np.full(B, K)}, ValueError, r"actions must lie in \[0, 4\)",
                 id="dqn-action-too-large"),
    pytest.param("dqn_loss", {"actions": np.full(B, -1)}, ValueError, r"actions must lie in \[0, 4\)",
                 id="dqn-negative-action"),
    pytest.param("dqn_loss", {"reward": np.zeros(B - 1), "discount": np.zeros(B - 1)}, ValueError,
                 "reward has 6 rows", id="dqn-batch"),
    pytest.param("dqn_loss", {"reward": np.zeros(B, F32), "discount": np.zeros(B, F32)}, TypeError,
                 "dqn_loss: all arrays must share one dtype", id="dqn-mixed-dtype"),
    pytest.param("dqn_loss", {"next_q_target": np.zeros((B, K - 1))}, ValueError, "next_q_target must have shape",
                 id="dqn-next-shape"),
    pytest.param("cql_penalty", {"alpha": -1.0}, ValueError, "cql alpha must be in", id="cql-negative-alpha"),
    pytest.param("cql_penalty", {"actions": np.zeros(B)}, TypeError, "cql_penalty actions must be integers",
                 id="cql-float-actions"),
    pytest.param("cql_penalty", {"actions": np.full(B, K)}, ValueError, r"actions must lie in \[0, 4\)",
                 id="cql-action-too-large"),
    pytest.param("cql_penalty", {"actions": np.zeros(B - 1, np.int64)}, ValueError, "actions must have shape",
                 id="cql-actions-batch"),
    pytest.param("sac_actor_loss", {"q_min": np.zeros(B, F32)}, TypeError, "must share one dtype",
                 id="sac-actor-mixed-dtype"),
    pytest.param("sac_actor_loss", {"alpha": -0.1}, ValueError, "sac alpha must be in", id="sac-actor-alpha"),
    pytest.param("sac_alpha_loss", {"log_prob": np.zeros((B, 1))}, ValueError, "sac_alpha_loss log_prob must be 1-D",
                 id="sac-alpha-2d"),
    pytest.param("sac_alpha_loss", {"log_prob": np.zeros(B, np.int64)}, TypeError, "must be float32 or float64",
                 id="sac-alpha-int"),
    pytest.param("rnd_loss", {"target": np.zeros((B, F + 1))}, ValueError, r"rnd_loss target must have shape \(7, 5\)",
                 id="rnd-shape"),
    pytest.param("rnd_loss", {"target": np.zeros((B, F), F32)}, TypeError, "must share one dtype",
                 id="rnd-mixed-dtype"),
]


@pytest.mark.parametrize("name, change, error, message", BAD_INPUTS)
def test_bad_input_raises_a_clear_error(name, change, error, message):
    """A wrong shape, dtype or range stops with an error naming the argument and the problem."""
    loss_fn = CASES[name][0]
    with pytest.raises(error, match=message):
        loss_fn(**{**_inputs(name), **change})
