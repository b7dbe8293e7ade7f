"""Exercises on Algorithm 1's bookkeeping: n-step returns (as ``gde_ref.data.buffer.ReplayBuffer`` stores them),
the rho schedule and the teacher swap (as ``gde_ref.finetune.gde.GDEFinetuner.update`` and ``after_evaluation``
apply them). None of them has a gradient: the checkers compare values, case by case, with the references below,
which tests/test_exercises.py checks against the package's buffer and finetuner (so the two cannot drift; the
exercises import nothing above the losses)."""
import numpy as np

from gde_ref.exercises._core import Exercise, Report, call, close, explain, match_variant, unpack


# ------------------------------------------------------------------------------------------------
# n-step returns
# ------------------------------------------------------------------------------------------------
def reference_nstep(rewards, gamma, n, terminated):
    """The n-step transitions of one episode of T steps, as the replay buffer stores them: for each t, with
    m = min(n, T - t) steps in its window, R_t = sum_k<m gamma^k r_{t+k}, discount gamma^m (0 when the window
    reaches a terminal end), and the index t + m of the state it bootstraps from."""
    rewards = np.asarray(rewards, float)
    steps = len(rewards)
    returns, discounts, nxt = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    for t in range(steps):
        m = min(n, steps - t)
        returns[t] = sum(gamma ** k * rewards[t + k] for k in range(m))
        discounts[t] = 0.0 if (terminated and t + m == steps) else gamma ** m
        nxt[t] = t + m
    return returns, discounts, nxt


def _nstep_variants(rewards, gamma, n, terminated, ref):
    returns, discounts, nxt = ref
    reach_end = nxt == len(rewards)
    out = []
    for other in (n + 1, n - 1):
        if other >= 1:
            out.append(("off by one in n: each window sums n rewards r_t ... r_{t+n-1} (fewer at the episode's end) "
                        "and bootstraps from s_{t+n}.", reference_nstep(rewards, gamma, other, terminated)))
    flipped = reference_nstep(rewards, gamma, n, not terminated)
    out.append((("you bootstrap past the terminal: a window that reaches the terminal step gets discount 0 (its "
                 "return still sums the rewards up to the end).") if terminated else
                ("you treat the time-limit truncation as a terminal: a truncated episode still bootstraps from its "
                 "last next state (discount gamma^m, not 0)."), (None, flipped[1], None)))
    out.append(("at the episode's end a window has only m = T - t < n steps: its discount is gamma^m, not gamma^n.",
                (None, np.where(discounts != 0, gamma ** n, 0.0), None)))
    if gamma > 0:
        out.append(("the discount of an m-step window is gamma^m (one gamma per reward summed), not gamma^(m-1).",
                    (None, discounts / gamma, None)))
    out += [("the first reward is not discounted: R_t = r_t + gamma r_{t+1} + ... + gamma^{m-1} r_{t+m-1}.",
             (gamma * returns, None, None)),
            ("next_index is off by one: a window of m steps from t bootstraps from s_{t+m}, so next_index = t + m "
             "(T for the episode's last next state).", (None, None, nxt + 1)),
            ("next_index is off by one: a window of m steps from t bootstraps from s_{t+m}, so next_index = t + m "
             "(T for the episode's last next state).", (None, None, nxt - 1))]
    return out, [(reach_end, "for the windows that reach the episode's end")]


def check_nstep(student):
    """Check ``nstep_returns(rewards, gamma, n, terminated) -> (returns, discounts, next_index)``."""
    report, rng = Report("nstep"), np.random.default_rng(13)
    cases = [("terminal at the end, n = 3", 7, 0.9, 3, True),
             ("time-limit truncation at the end, n = 3", 7, 0.9, 3, False),
             ("n = 1", 5, 0.99, 1, True), ("episode shorter than n (T = 2, n = 5), terminal", 2, 0.9, 5, True),
             ("gamma = 1, truncated", 6, 1.0, 4, False), ("gamma = 0", 5, 0.0, 3, True),
             ("one-step episode, terminal", 1, 0.9, 3, True), ("one-step episode, truncated", 1, 0.9, 3, False)]
    names = ("returns", "discounts", "next_index")
    for title, steps, gamma, n, terminated in cases:
        if report.stopped:
            break
        report.cases += 1
        rewards = rng.normal(size=steps)
        ok, out = call(student, "nstep_returns", rewards.copy(), gamma, n, terminated)
        if not ok:
            report.stop(title, out)
            break
        got, problem = unpack(out, "nstep_returns", names)
        if problem:
            report.stop(title, problem)
            break
        ref = reference_nstep(rewards, gamma, n, terminated)
        if all(close(g, r) for g, r in zip(got, ref)):
            continue
        variants, rows = _nstep_variants(rewards, gamma, n, terminated, ref)
        whole = match_variant(got, [(t, v) for t, v in variants if all(x is not None for x in v)], ref)
        if whole:
            report.fail(title, whole)
            continue
        for k, (name, g, r) in enumerate(zip(names, got, ref)):
            text = explain(name, g, r, steps, [(t, v[k]) for t, v in variants if v[k] is not None],
                           rows if name == "discounts" else ())
            if text:
                report.fail(title, text)
    return report.result("your nstep_returns agrees with the replay buffer's n-step folding")


# ------------------------------------------------------------------------------------------------
# the rho schedule
# ------------------------------------------------------------------------------------------------
def reference_rho(rho0, t, total):
    """rho at step t of T (Section 4.2.3): rho_0 decayed linearly to 0, rho_0 (1 - t / T)."""
    return rho0 * (1.0 - t / total)


def check_rho_schedule(student):
    """Check ``rho_schedule(rho0, t, T) -> rho`` against the schedule ``GDEFinetuner.update`` applies."""
    report = Report("rho_schedule")
    cases = [("rho0 = 0.3, T = 10, every t", 0.3, 10, list(range(11))),
             ("T = 7 (t / T not a round number)", 0.3, 7, list(range(8))),
             ("numpy integer steps", 0.5, 4, [np.int64(t) for t in range(5)]),
             ("rho0 = 0", 0.0, 5, list(range(6))),
             ("a long run, T = 1000000", 0.3, 10 ** 6, [0, 1, 250000, 999999, 10 ** 6])]
    for title, rho0, total, steps in cases:
        report.cases += 1
        got = []
        for t in steps:
            ok, out = call(student, "rho_schedule", rho0, t, total)
            if not ok:
                report.stop(title, out)
                return report.result("")
            value, problem = unpack(out, "rho_schedule", ("rho",))
            if problem or value[0].shape != ():
                report.stop(title, problem or f"rho_schedule must return one number, got shape {value[0].shape}.")
                return report.result("")
            got.append(float(value[0]))
        got, t = np.array(got), np.array(steps, np.float64)
        ref = np.array([reference_rho(rho0, s, total) for s in steps])
        variants = [("rho grows with t: it starts at rho_0 and decays linearly to 0, rho_t = rho_0 (1 - t / T).",
                     rho0 * t / total),
                    ("rho stays at rho_0 until t = T: t // T is integer division; use t / T.",
                     rho0 * (1 - np.floor_divide(t, total))),
                    ("rho never changes: it decays linearly from rho_0 at t = 0 to 0 at t = T.", np.full_like(t, rho0)),
                    ("the schedule is one step ahead: rho_t = rho_0 (1 - t / T), so rho = rho_0 at t = 0.",
                     rho0 * (1 - (t + 1) / total)),
                    ("the schedule decays too early: rho_t = rho_0 (1 - t / T), with T itself (not T - 1).",
                     rho0 * (1 - t / (total - 1)))]
        text = explain("rho", got, ref, 1, variants)
        if text:
            if text.startswith("rho is wrong"):
                k = int(np.argmax(np.abs(got - ref)))
                text = (f"at t = {steps[k]} of T = {total} with rho_0 = {rho0} you return {got[k]:.6g}; expected "
                        f"rho_0 (1 - t / T) = {ref[k]:.6g}.")
            report.fail(title, text)
    return report.result("your rho_schedule agrees with the schedule GDE applies")


# ------------------------------------------------------------------------------------------------
# the teacher swap
# ------------------------------------------------------------------------------------------------
def reference_swaps(scores):
    """(teacher score, swapped) after each evaluation stage (Algorithm 1 as GDEFinetuner.after_evaluation applies
    it): the first stage scores the offline policy, the first teacher, and sets the bar; a later stage swaps only
    on a strictly higher score, which becomes the bar (a running maximum, never re-measured)."""
    out, bar = [], None
    for score in scores:
        swapped = bar is not None and score > bar
        bar = score if bar is None or swapped else bar
        out.append((bar, swapped))
    return out


def _rule(scores, swap_if, first_swaps=False, keep_max=True, start=None):
    """(teacher score, swapped) per stage under a rule, only to name a mistake."""
    teacher, out = start, []
    for score in scores:
        if teacher is None:
            teacher, swapped = score, first_swaps
        else:
            swapped = swap_if(score, teacher)
            if swapped or not keep_max:
                teacher = score
        out.append((teacher, swapped))
    return out


TEACHER_VARIANTS = [
    ("you swap on an equal score: the rule is strictly higher (score > teacher_score); a tie keeps the current "
     "teacher.",
     dict(swap_if=lambda s, t: s >= t)),
    ("the first stage sets the teacher's score but is no swap: the policy evaluated then is the offline policy, "
     "already the teacher.", dict(swap_if=lambda s, t: s > t, first_swaps=True)),
    ("the teacher's score is the best stage score so far (a running max): after a lower score it stays where it was.",
     dict(swap_if=lambda s, t: s > t, keep_max=False)),
    ("do not start the teacher's score at 0: the first stage (teacher_score None) sets it, whatever its sign.",
     dict(swap_if=lambda s, t: s > t, start=0.0)),
    ("you swap when the score is lower: swap only when it is strictly higher than the teacher's.",
     dict(swap_if=lambda s, t: s < t))]


def check_teacher_swap(student):
    """Check ``teacher_swap(teacher_score, score) -> (teacher_score, swapped)`` against ``after_evaluation``."""
    report = Report("teacher_swap")
    cases = [("rising, falling and tied scores", [10.0, 12.0, 12.0, 11.0, 15.0, 15.0, 14.0]),
             ("negative returns", [-50.0, -70.0, -40.0, -40.0, -45.0]), ("one stage", [3.0]),
             ("every score equal", [5.0, 5.0, 5.0]), ("falling scores", [9.0, 8.0, 7.0]),
             ("a first stage scoring 0", [0.0, -1.0, 0.0, 2.0])]
    for title, scores in cases:
        report.cases += 1
        teacher, got = None, []
        for score in scores:
            ok, out = call(student, "teacher_swap", teacher, score)
            if not ok:
                report.stop(title, out)
                return report.result("")
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                report.stop(title, "teacher_swap must return the tuple (teacher_score, swapped).")
                return report.result("")
            teacher = out[0]
            try:
                got.append((None if out[0] is None else float(out[0]), bool(out[1])))
            except (TypeError, ValueError):
                report.stop(title, f"teacher_swap's teacher_score must be a number, got {type(out[0]).__name__}.")
                return report.result("")
        ref = reference_swaps(scores)
        if got == ref:
            continue
        text = next((t for t, kw in TEACHER_VARIANTS if got == _rule(scores, **kw) != ref), None)
        if text is None:
            k = next(k for k, (g, r) in enumerate(zip(got, ref)) if g != r)
            before = None if k == 0 else ref[k - 1][0]
            text = (f"at stage {k + 1} (score {scores[k]:g}, the teacher's score before it {before}) you return "
                    f"(teacher_score={got[k][0]}, swapped={got[k][1]}); expected (teacher_score={ref[k][0]:g}, "
                    f"swapped={ref[k][1]}). The rule: the first stage sets the score; later, swap only on a strictly "
                    "higher score, which becomes the teacher's score.")
        report.fail(title, text)
    return report.result("your teacher_swap agrees with Algorithm 1's rule, stage after stage")


EXERCISES = [
    Exercise("nstep", "nstep_returns",
             "nstep_returns(rewards, gamma, n, terminated) -> (returns, discounts, next_index)",
             "n-step returns and discounts of one episode (terminal or truncated)", "Sec. 5.5, App. C.4",
             "rewards (T,): one episode's rewards r_0 ... r_{T-1}; terminated: True if the episode ended in a "
             "terminal state, False if a time limit cut it (it still bootstraps). For each start t, with m = "
             "min(n, T - t): returns[t] = sum_{k<m} gamma^k r_{t+k}; discounts[t] = gamma^m, or 0 if the window "
             "reaches the terminal; next_index[t] = t + m, the state it bootstraps from. Return three (T,) arrays.",
             check_nstep),
    Exercise("rho_schedule", "rho_schedule", "rho_schedule(rho0, t, T) -> rho", "the KL weight's linear decay",
             "Sec. 4.2.3, Table 7",
             "rho_t = rho_0 (1 - t / T) for the environment step t in [0, T] (ints or numpy ints). Return a float.",
             check_rho_schedule),
    Exercise("teacher_swap", "teacher_swap", "teacher_swap(teacher_score, score) -> (teacher_score, swapped)",
             "Algorithm 1's teacher update after an evaluation stage", "Algorithm 1",
             "Called after each evaluation stage with the teacher's score so far (None before the first stage) and "
             "the stage's score. The first stage sets the teacher's score (no swap: the offline policy is the "
             "teacher); later the teacher becomes the exploitation policy only on a strictly higher score, which "
             "becomes its score. Return (the teacher's score, whether it swapped).", check_teacher_swap),
]
