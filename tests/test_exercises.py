"""Tests of gde_ref.exercises: every checker passes the package's own implementation (wrapped to the student's
signature) and rejects planted mistakes with a message that names the mistake; the CLI lists, shows and checks.

The planted mistakes are small student-style functions: most are the package's function with one thing changed
(a sign, a factor, an argument), some are plain NumPy written the wrong way (the MLP backward, Adam, n-step).
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gde_ref import losses
from gde_ref.exercises import EXERCISES, check
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.exercises.algorithm import reference_nstep, reference_rho, reference_swaps
from gde_ref.finetune.gde import GDEFinetuner
from gde_ref.nn import MLP, adam_step
from gde_ref.nn import kernels


# ------------------------------------------------------------------------------------------------
# the package's implementations, wrapped to the students' signatures
# ------------------------------------------------------------------------------------------------
def pkg_dense(x, weight, delta):
    d_weight, d_bias, dx = np.empty_like(weight), np.empty(weight.shape[1]), np.empty_like(x)
    kernels.dense_backward_params(x, delta, d_weight, d_bias)
    kernels.dense_backward_input(delta, weight, dx)
    return d_weight, d_bias, dx


def pkg_mlp(params, layout, x, d_out):
    net = MLP([int(layout[0, 0])] + [int(n) for n in layout[:, 1]], np.random.default_rng(0), dtype=np.float64)
    net.params[:] = params
    net.forward(x)
    return net.backward(d_out, input_grad=True)


class _TeacherLearner:
    """The part of a GDELearner that ``after_evaluation`` touches (the teacher copy is a no-op here)."""

    class _Params:
        params = None

    explore = _Params()

    def update_teacher(self, params=None):
        pass


class _NoUpdate:
    def update(self, batch, kl_weight, actor_lr=None):
        return {}


class _IdentityInputs:
    def batch(self, raw):
        return raw


def pkg_teacher(teacher_score, score):
    """GDEFinetuner.after_evaluation on a finetuner whose learner only records the teacher swap."""
    finetuner = object.__new__(GDEFinetuner)
    finetuner.teacher_score, finetuner.swaps, finetuner.use_exploit, finetuner.kl_weight = teacher_score, 0, True, 0.3
    finetuner.learner = _TeacherLearner()
    log = finetuner.after_evaluation(score, 0)
    return log["teacher_score"], bool(log["teacher_swapped"])


def pkg_rho(rho0, t, total):
    """rho at step t of T as GDEFinetuner.update sets it (the loop passes progress = t / T)."""
    finetuner = object.__new__(GDEFinetuner)
    finetuner.kl_weight0, finetuner.use_teacher, finetuner.use_explore, finetuner.use_exploit = rho0, True, True, True
    finetuner.inputs, finetuner.learner = _IdentityInputs(), _NoUpdate()
    finetuner.update(None, t / total)
    return finetuner.kl_weight


def pkg_nstep(rewards, gamma, n, terminated):
    """One episode through ReplayBuffer (state t stored as the observation [t]): its n-step transitions."""
    steps = len(rewards)
    buf = ReplayBuffer(steps, 1, None, n_step=n, discount=gamma, dtype=np.float64)
    for t, r in enumerate(rewards):
        last = t == steps - 1
        buf.add([float(t)], 0, r, [float(t + 1)], terminated=last and terminated, truncated=last and not terminated)
    order = np.argsort(buf.obs[:, 0])
    return buf.rewards[order], buf.discounts[order], buf.next_obs[order, 0]


@pytest.mark.parametrize("steps, gamma, n, terminated", [(7, 0.9, 3, True), (7, 0.9, 3, False), (5, 0.99, 1, True),
                                                         (2, 0.9, 5, True), (6, 1.0, 4, False), (1, 0.9, 3, False)])
def test_the_checkers_references_are_the_packages_behaviour(steps, gamma, n, terminated):
    """The exercises' own references (no imports above the losses) agree with the buffer and with GDEFinetuner."""
    rewards = np.random.default_rng(steps).standard_normal(steps)
    for ours, theirs in zip(reference_nstep(rewards, gamma, n, terminated), pkg_nstep(rewards, gamma, n, terminated)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert [reference_rho(0.3, t, 10) for t in range(11)] == pytest.approx([pkg_rho(0.3, t, 10) for t in range(11)])
    scores = [5.0, 3.0, 5.0, 7.0, 6.0, 9.0]
    bar, package = None, []
    for score in scores:
        bar, swapped = pkg_teacher(bar, score)
        package.append((bar, swapped))
    assert reference_swaps(scores) == package


PACKAGE = dict(dense_backward=pkg_dense, mlp_backward=pkg_mlp, adam=adam_step, eq1=losses.td_loss,
               eq2=losses.expectile_loss, eq3=losses.iql_q_loss, eq4=losses.awr_loss,
               eq5=losses.gde_exploration_loss, eq5_discrete=losses.gde_exploration_loss_discrete,
               cql_penalty=losses.cql_penalty, nstep=pkg_nstep, rho_schedule=pkg_rho, teacher_swap=pkg_teacher)


def test_at_least_13_exercises_each_with_a_package_implementation():
    assert len(EXERCISES) >= 13
    assert set(PACKAGE) == set(EXERCISES)


@pytest.mark.parametrize("name", sorted(PACKAGE))
def test_checker_passes_the_package_implementation(name):
    result = check(name, PACKAGE[name])
    assert result.passed, str(result)
    assert result.messages and result.messages[0].startswith("Matches")


# ------------------------------------------------------------------------------------------------
# planted mistakes, written as students would
# ------------------------------------------------------------------------------------------------
def dense_bias_mean(x, weight, delta):
    d_weight, d_bias, dx = pkg_dense(x, weight, delta)
    return d_weight, delta.mean(axis=0), dx


def dense_transposed(x, weight, delta):
    return delta.T @ x, delta.sum(axis=0), delta @ weight.T


def dense_dx_sign(x, weight, delta):
    return x.T @ delta, delta.sum(axis=0), -(delta @ weight.T)


def numpy_mlp(params, layout, x, d_out, gate=True, out_relu=False, bias_mean=False, transposed=False, sign=1.0):
    """A plain NumPy MLP backward with one switch per planted mistake."""
    hs, h = [x], x
    for k, (n_in, n_out, w_off, b_off, _) in enumerate(layout):
        z = h @ params[w_off:w_off + n_in * n_out].reshape(n_in, n_out) + params[b_off:b_off + n_out]
        h = np.maximum(z, 0) if (k < len(layout) - 1 or out_relu) else z
        hs.append(h)
    grads, delta = np.zeros_like(params), d_out * (hs[-1] > 0) if out_relu else d_out
    for k in range(len(layout) - 1, -1, -1):
        n_in, n_out, w_off, b_off, _ = layout[k]
        d_w = (delta.T @ hs[k]) if transposed else (hs[k].T @ delta)
        grads[w_off:w_off + n_in * n_out] = sign * d_w.ravel()
        grads[b_off:b_off + n_out] = sign * (delta.mean(0) if bias_mean else delta.sum(0))
        delta = delta @ params[w_off:w_off + n_in * n_out].reshape(n_in, n_out).T
        if k > 0 and gate:
            delta = delta * (hs[k] > 0)
    return grads, sign * delta


def numpy_adam(params, grads, state, lr=3e-4, beta1=0.9, beta2=0.999, eps=1e-8, correct=True, eps_inside=False,
               sign=-1.0, count=True, in_place=True):
    """A plain NumPy Adam step with one switch per planted mistake."""
    with np.errstate(all="ignore"):
        return _numpy_adam(params, grads, state, lr, beta1, beta2, eps, correct, eps_inside, sign, count, in_place)


def _numpy_adam(params, grads, state, lr, beta1, beta2, eps, correct, eps_inside, sign, count, in_place):
    if count:
        state.t[0] += 1
    t = state.t[0]
    state.m[:] = beta1 * state.m + (1 - beta1) * grads
    state.v[:] = beta2 * state.v + (1 - beta2) * grads ** 2
    m_hat, v_hat = (state.m / (1 - beta1 ** t), state.v / (1 - beta2 ** t)) if correct else (state.m, state.v)
    step = lr * m_hat / (np.sqrt(v_hat + eps) if eps_inside else np.sqrt(v_hat) + eps)
    if not in_place:
        return params + sign * step
    params += sign * step


def numpy_nstep(rewards, gamma, n, terminated, extra=0, bootstrap_terminal=False, truncation_terminal=False,
                gamma_n=False):
    """Plain NumPy n-step folding with one switch per planted mistake."""
    steps = len(rewards)
    returns, discounts, nxt = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    for t in range(steps):
        m = min(n + extra, steps - t)
        returns[t] = sum(gamma ** k * rewards[t + k] for k in range(m))
        ends = t + m == steps
        stop = ends and ((terminated and not bootstrap_terminal) or truncation_terminal)
        discounts[t] = 0.0 if stop else gamma ** (n if gamma_n else m)
        nxt[t] = t + m
    return returns, discounts, nxt


def teacher_rule(ge=False, first_swaps=False, last_score=False, start=None):
    def teacher_swap(teacher_score, score):
        if teacher_score is None and start is None:
            return score, first_swaps
        teacher_score = start if teacher_score is None else teacher_score
        swapped = score >= teacher_score if ge else score > teacher_score
        return (score if swapped or last_score else teacher_score), swapped
    return teacher_swap


def _with(fn, transform):
    """The package function ``fn`` with ``transform`` applied to its output tuple."""
    return lambda *args, **kwargs: transform(fn(*args, **kwargs))


td, ex, iq, awr = losses.td_loss, losses.expectile_loss, losses.iql_q_loss, losses.awr_loss
gde, gdd, cql = losses.gde_exploration_loss, losses.gde_exploration_loss_discrete, losses.cql_penalty


def _cql_no_shift(q_all, actions, alpha):
    with np.errstate(all="ignore"):
        p = np.exp(q_all) / np.exp(q_all).sum(axis=1, keepdims=True)
        lse = np.log(np.exp(q_all).sum(axis=1))
    n, rows = q_all.shape[0], np.arange(q_all.shape[0])
    d = alpha * p / n
    d[rows, actions] -= alpha / n
    return alpha * np.mean(lse - q_all[rows, actions]), d


def numpy_gdd(q_all, logits_b, logits_t, kl_weight, shift=True, baseline=True):
    """Plain NumPy Eq. 5 for categorical policies, with the max shift and the softmax baseline as switches."""
    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True) if shift else z
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    with np.errstate(all="ignore"):
        log_b, log_t = log_softmax(logits_b), log_softmax(logits_t)
        pi_b, pi_t = np.exp(log_b), np.exp(log_t)
        expected_q = np.sum(pi_b * q_all, axis=1, keepdims=True)
        kl = np.sum(pi_t * (log_t - log_b), axis=1)
        n = q_all.shape[0]
        d = (-pi_b * (q_all - (expected_q if baseline else 0.0)) + kl_weight * (pi_b - pi_t)) / n
        return float(np.mean(-expected_q[:, 0] + kl_weight * kl)), d


MISTAKES = [
    # (exercise, the planted mistake, words its message must contain)
    ("dense_backward", dense_bias_mean, "not their mean"),
    ("dense_backward", dense_transposed, "transpose"),
    ("dense_backward", dense_dx_sign, "wrong sign"),
    ("mlp_backward", lambda *a: numpy_mlp(*a, gate=False), "ReLU gate"),
    ("mlp_backward", lambda *a: numpy_mlp(*a, out_relu=True), "output layer"),
    ("mlp_backward", lambda *a: numpy_mlp(*a, bias_mean=True), "bias gradients are B times too small"),
    ("mlp_backward", lambda *a: numpy_mlp(*a, transposed=True), "stored transposed"),
    ("mlp_backward", lambda *a: numpy_mlp(*a, sign=-1.0), "wrong sign"),
    ("adam", lambda *a, **k: numpy_adam(*a, **k, correct=False), "no bias correction"),
    ("adam", lambda *a, **k: numpy_adam(*a, **k, eps_inside=True), "eps is inside the square root"),
    ("adam", lambda *a, **k: numpy_adam(*a, **k, sign=1.0), "up the gradient"),
    ("adam", lambda *a, **k: numpy_adam(*a, **k, count=False), "increment t first"),
    ("adam", lambda *a, **k: numpy_adam(*a, **k, in_place=False), "in place"),
    ("eq1", _with(td, lambda r: (r[0], -r[1])), "wrong sign"),
    ("eq1", _with(td, lambda r: (r[0], r[1] * r[1].size)), "forget the 1/B of the mean"),
    ("eq1", _with(td, lambda r: (r[0] * r[1].size, r[1])), "not a sum"),
    ("eq1", _with(td, lambda r: (r[0], r[1] / 2)), "2x"),
    ("eq2", lambda q, v, expectile: ex(v, q, expectile)[:1] + (-ex(v, q, expectile)[1],), "swapped"),
    ("eq2", _with(ex, lambda r: (r[0], r[1] * r[1].size)), "forget the 1/B of the mean"),
    ("eq2", _with(ex, lambda r: (r[0], -r[1])), "wrong sign"),
    ("eq2", lambda q, v, expectile: (ex(q, v, expectile)[0], -2 * expectile * (q - v) / q.size),
     "the loss is right but d_v is not"),
    ("eq2", lambda q, v, expectile: (expectile * np.mean((q - v) ** 2), -2 * expectile * (q - v) / q.size),
     "no asymmetry"),
    ("eq3", _with(iq, lambda r: (r[0] / 2, r[1] / 2, r[2] / 2)), "their sum"),
    ("eq3", lambda q1, q2, reward, discount, next_v: iq(q1, q2, reward, np.ones_like(discount), next_v),
     "ignores discount"),
    ("eq3", lambda q1, q2, reward, discount, next_v: iq(q1, q2, reward, 1 - discount, next_v), "(1 - discount)"),
    ("eq3", _with(iq, lambda r: (r[0], r[1], r[1])), "its own error"),
    ("eq3", _with(iq, lambda r: (r[0], -r[1], -r[2])), "wrong sign"),
    ("eq4", lambda log_prob, q, v, temperature, max_weight=100.0: awr(log_prob, q, v, temperature, 1e300),
     "are not clipped"),
    ("eq4", lambda log_prob, q, v, temperature, max_weight=100.0: awr(log_prob, q, v, temperature),
     "use the max_weight argument"),
    ("eq4", lambda log_prob, q, v, temperature, max_weight=100.0: awr(log_prob, q, v, 1 / max(temperature, 1e-9),
                                                                      max_weight), "multiplies the advantage"),
    ("eq4", _with(awr, lambda r: (-r[0], r[1])), "the loss has the wrong sign"),
    ("eq4", _with(awr, lambda r: (r[0], r[1] * r[1].size)), "forget the 1/B of the mean"),
    ("eq5", lambda q, mb, lb, mt, lt, rho: (gde(q, mt, lt, mb, lb, rho)[0],) + gde(q, mb, lb, mt, lt, rho)[1:],
     "KL(pi_b || pi_t)"),
    ("eq5", _with(gde, lambda r: (r[0], -r[1], r[2], r[3])), "d_q_pi has the wrong sign"),
    ("eq5", lambda q, mb, lb, mt, lt, rho: gde(q, mb, lb, mt, lt, 1.0), "not multiplied by rho"),
    ("eq5", _with(gde, lambda r: (r[0], r[1], r[2], np.tile(r[3], (r[2].shape[0], 1)))), "shared by every state"),
    ("eq5", _with(gde, lambda r: (r[0], r[1], r[2] * r[2].shape[0], r[3])), "forget the 1/B of the mean"),
    ("eq5_discrete", lambda *a: numpy_gdd(*a, baseline=False), "baseline"),
    ("eq5_discrete", _with(gdd, lambda r: (r[0], -r[1])), "wrong sign"),
    ("eq5_discrete", lambda q, zb, zt, rho: gdd(q, zb, zt, 1.0), "not multiplied by rho"),
    ("eq5_discrete", lambda *a: numpy_gdd(*a, shift=False), "subtract the row max"),
    ("cql_penalty", lambda q_all, actions, alpha: _cql_no_shift(q_all, actions, alpha), "subtract the row max"),
    ("cql_penalty", lambda q_all, actions, alpha: cql(q_all, actions, 1.0), "not multiplied by alpha"),
    ("cql_penalty", lambda q_all, actions, alpha: cql(q_all, np.argmax(q_all, axis=1), alpha), "dataset action"),
    ("cql_penalty", _with(cql, lambda r: (r[0], r[1] * r[1].shape[0])), "forget the 1/B of the mean"),
    ("nstep", lambda *a: numpy_nstep(*a, extra=1), "off by one in n"),
    ("nstep", lambda *a: numpy_nstep(*a, bootstrap_terminal=True), "bootstrap past the terminal"),
    ("nstep", lambda *a: numpy_nstep(*a, truncation_terminal=True), "truncation as a terminal"),
    ("nstep", lambda *a: numpy_nstep(*a, gamma_n=True), "not gamma^n"),
    ("nstep", lambda *a: numpy_nstep(*a)[:2] + (numpy_nstep(*a)[2] - 1,), "next_index is off by one"),
    ("rho_schedule", lambda rho0, t, T: rho0 * t / T, "grows with t"),
    ("rho_schedule", lambda rho0, t, T: rho0 * (1 - t // T), "integer division"),
    ("rho_schedule", lambda rho0, t, T: rho0 * (1 - (t + 1) / T), "one step ahead"),
    ("teacher_swap", teacher_rule(ge=True), "equal score"),
    ("teacher_swap", teacher_rule(first_swaps=True), "first stage"),
    ("teacher_swap", teacher_rule(last_score=True), "running max"),
    ("teacher_swap", teacher_rule(start=0.0), "at 0"),
]


@pytest.mark.parametrize("name, student, words", MISTAKES, ids=[f"{m[0]}-{m[2]}" for m in MISTAKES])
def test_checker_rejects_a_planted_mistake_and_names_it(name, student, words):
    result = check(name, student)
    assert not result.passed
    assert any(words in m for m in result.messages), str(result)


def test_every_checker_names_at_least_three_planted_mistakes():
    counts = {name: sum(m[0] == name for m in MISTAKES) for name in EXERCISES}
    assert min(counts.values()) >= 3, counts


def test_a_stub_and_a_wrong_return_get_one_clear_message():
    def stub(q, v, expectile):
        raise NotImplementedError
    result = check("eq2", stub)
    assert not result.passed and len(result.messages) == 1 and "YOUR CODE HERE" in result.messages[0]
    result = check("eq2", lambda q, v, expectile: 0.0)
    assert not result.passed and "(loss, d_v)" in result.messages[0]


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------
def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gde_ref.exercises", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_cli_list_shows_every_exercise():
    out = _cli("list")
    assert out.returncode == 0
    rows = out.stdout.strip().splitlines()[1:]
    assert len(rows) >= 13 and {r.split()[0] for r in rows} == set(EXERCISES)
    assert "Eq. 2" in out.stdout and "Algorithm 1" in out.stdout


def test_cli_check_passes_a_right_file_and_fails_a_wrong_one(tmp_path):
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    body = """
        import numpy as np

        def expectile_loss(q, v, expectile):
            u = q - v
            w = np.where(u < 0, 1.0 - expectile, expectile)
            return float(np.mean(w * u * u)), {grad} / len(u)
    """
    right.write_text(textwrap.dedent(body.format(grad="-2.0 * w * u")))
    wrong.write_text(textwrap.dedent(body.format(grad="-2.0 * w * u * len(u)")))
    out = _cli("check", "eq2", str(right))
    assert out.returncode == 0 and "passed" in out.stdout, out.stdout + out.stderr
    out = _cli("check", "eq2", str(wrong))
    assert out.returncode == 1 and "1/B" in out.stdout, out.stdout + out.stderr


def test_cli_usage_errors_exit_2_with_one_line(tmp_path):
    other = tmp_path / "other.py"
    other.write_text("def something_else():\n    pass\n")
    for args, words in [(("check", "eq9", str(other)), "unknown exercise"),
                        (("check", "eq2", str(tmp_path / "missing.py")), "no such file"),
                        (("check", "eq2", str(other)), "no function expectile_loss"),
                        (("check", "eq2"), "bad arguments")]:
        out = _cli(*args)
        assert out.returncode == 2 and words in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1
