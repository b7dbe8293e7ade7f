"""Exercises on the critic and exploitation losses, Eq. 1-4, checked against ``gde_ref.losses.equations``."""
import numpy as np

from gde_ref.exercises._core import Exercise, LossSpec, check_loss
from gde_ref.losses.equations import AWR_MAX_WEIGHT, awr_loss, expectile_loss, iql_q_loss, td_loss

B = 6


# ------------------------------------------------------------------------------------------------
# Eq. 1  TD loss
# ------------------------------------------------------------------------------------------------
def _td_cases():
    rng = np.random.default_rng(1)
    q = rng.normal(size=B)
    return [("random batch", dict(q=q, target=rng.normal(size=B)), B, True),
            ("Q equals its target", dict(q=q.copy(), target=q.copy()), B, True),
            ("one transition", dict(q=rng.normal(size=1), target=rng.normal(size=1)), 1, True),
            ("large TD errors", dict(q=100 * rng.normal(size=B), target=rng.normal(size=B)), B, True)]


def _td_variants(inputs, ref):
    diff = inputs["q"] - inputs["target"]
    n = diff.size
    return [("you used |Q - y|: Eq. 1 squares the TD error, mean (y - Q)^2.",
             (np.abs(diff).mean(), np.sign(diff) / n))]


TD = LossSpec("eq1", "td_loss", ("loss", "d_q"), {"d_q": "q"}, td_loss,
              "d/dQ_i of mean (Q - y)^2 is 2 (Q_i - y_i) / B, with the target y held fixed.",
              variants=_td_variants,
              hints={"loss": {"B": "the loss is B times too large: Eq. 1 is a mean over the batch, not a sum.",
                              "1/2": "the loss is half the expected value: Eq. 1 is mean (y - Q)^2, no 1/2."},
                     "d_q": {"sign": "d_q has the wrong sign: d/dQ (Q - y)^2 = 2 (Q - y), positive where Q is "
                                     "above its target (the target is fixed; differentiate w.r.t. Q)."}})


def check_eq1(student):
    """Check ``td_loss(q, target) -> (loss, d_q)`` (Eq. 1) against ``gde_ref.losses.td_loss``."""
    return check_loss(TD, student, _td_cases())


# ------------------------------------------------------------------------------------------------
# Eq. 2  expectile loss
# ------------------------------------------------------------------------------------------------
def _expectile_cases():
    rng = np.random.default_rng(2)
    q = rng.normal(size=B)
    size = rng.uniform(0.2, 1.5, size=B)
    mixed = np.where(np.arange(B) % 2 == 0, 1.0, -1.0) * size
    zero_u = mixed.copy()
    zero_u[:2] = 0.0
    return [("mixed signs of u = Q - V, tau = 0.7", dict(q=q, v=q - mixed, expectile=0.7), B, True),
            ("every Q above V (u > 0)", dict(q=q, v=q - size, expectile=0.7), B, True),
            ("every Q below V (u < 0)", dict(q=q, v=q + size, expectile=0.7), B, True),
            ("tau = 0.9", dict(q=q, v=q - mixed, expectile=0.9), B, True),
            ("tau = 0.5 (symmetric)", dict(q=q, v=q - mixed, expectile=0.5), B, True),
            ("some Q exactly equal to V", dict(q=q, v=q - zero_u, expectile=0.7), B, True)]


def _expectile_variants(inputs, ref):
    q, v, tau = inputs["q"], inputs["v"], inputs["expectile"]
    u, n = q - v, q.size
    return [("the weights are swapped: |tau - 1(u < 0)| is tau where u = Q - V >= 0 and 1 - tau where u < 0 "
             "(or you took u = V - Q; Eq. 2 uses u = Q - V).", expectile_loss(q, v, 1.0 - tau)),
            ("the loss has no asymmetry: the weight is tau only where u = Q - V >= 0, and 1 - tau where u < 0.",
             (tau * np.mean(u * u), -2.0 * tau * u / n)),
            ("you computed the plain squared error: Eq. 2 weighs each u^2 by |tau - 1(u < 0)|.",
             (np.mean(u * u), -2.0 * u / n))]


def _expectile_rows(inputs):
    u = inputs["q"] - inputs["v"]
    return {"d_v": [(u < 0, "where Q < V (u < 0): there the weight is 1 - tau"),
                    (u >= 0, "where Q >= V (u >= 0): there the weight is tau")]}


def _expectile_grad_variants(inputs, ref):
    q, v, tau = inputs["q"], inputs["v"], inputs["expectile"]
    u = q - v
    return {"d_v": [("d_v uses the weight tau on every row: where u = Q - V < 0 the weight is 1 - tau.",
                     -2.0 * tau * u / u.size),
                    ("d_v uses the weights the wrong way round: tau where u = Q - V >= 0, 1 - tau where u < 0.",
                     expectile_loss(q, v, 1.0 - tau)[1])]}


EXPECTILE = LossSpec("eq2", "expectile_loss", ("loss", "d_v"), {"d_v": "v"}, expectile_loss,
                     "check the derivative of |tau - 1(u<0)| u^2 with respect to V: u = Q - V, so "
                     "dL/dV_i = -2 |tau - 1(u_i<0)| u_i / B.",
                     variants=_expectile_variants, rows=_expectile_rows, array_variants=_expectile_grad_variants,
                     hints={"d_v": {"sign": "d_v has the wrong sign: u = Q - V, so du/dV = -1 and "
                                            "dL/dV = -2 |tau - 1(u<0)| u / B."}})


def check_eq2(student):
    """Check ``expectile_loss(q, v, expectile) -> (loss, d_v)`` (Eq. 2) against ``gde_ref.losses.expectile_loss``."""
    return check_loss(EXPECTILE, student, _expectile_cases())


# ------------------------------------------------------------------------------------------------
# Eq. 3  IQL twin Q loss
# ------------------------------------------------------------------------------------------------
def _iql_q_cases():
    rng = np.random.default_rng(3)

    def draw(discount):
        return dict(q1=rng.normal(size=discount.size), q2=rng.normal(size=discount.size),
                    reward=rng.normal(size=discount.size), discount=discount, next_v=rng.normal(size=discount.size))
    some_terminal = np.where(np.arange(B) % 3 == 0, 0.0, 0.99)
    same = draw(some_terminal)
    same["q2"] = same["q1"].copy()
    return [("random batch, some terminal transitions", draw(some_terminal), B, True),
            ("every transition terminal (discount 0)", draw(np.zeros(B)), B, True),
            ("discount 1 (gamma = 1, no terminal)", draw(np.ones(B)), B, True),
            ("n-step discounts gamma^m (1 - terminal)", draw(np.array([0.99 ** 3, 0.99 ** 2, 0.0, 0.99, 0.99 ** 3,
                                                                         0.0])), B, True),
            ("the twin critics agree", same, B, True),
            ("one transition", draw(np.array([0.99])), 1, True)]


def _iql_q_variants(inputs, ref):
    loss, d1, d2 = ref
    k = dict(inputs)
    only_q1 = iql_q_loss(k["q1"], k["q1"], k["reward"], k["discount"], k["next_v"])
    return [("the loss is the mean of the two critics' losses: Eq. 3 for twin critics is their sum, "
             "mean (Q1 - y)^2 + mean (Q2 - y)^2, so each critic gets its full gradient 2 (Q_k - y) / B.",
             (loss / 2, d1 / 2, d2 / 2)),
            ("the target ignores discount: y = r + discount * V(s'), and discount is 0 at a terminal.",
             iql_q_loss(k["q1"], k["q2"], k["reward"], np.ones_like(k["discount"]), k["next_v"])),
            ("you multiplied V(s') by (1 - discount): discount already is gamma^n (1 - terminal); "
             "use y = r + discount * V(s').",
             iql_q_loss(k["q1"], k["q2"], k["reward"], 1.0 - k["discount"], k["next_v"])),
            ("the loss covers only Q1: add the second critic's term mean (Q2 - y)^2, and its gradient d_q2.",
             (only_q1[0] / 2, only_q1[1], np.zeros_like(d2)))]


def _iql_q_rows(inputs):
    terminal = inputs["discount"] == 0.0
    groups = [(terminal, "at the terminal transitions (discount = 0): there y = r, no bootstrap"),
              (~terminal, "where the target bootstraps: y = r + discount * V(s')")]
    return {"d_q1": groups, "d_q2": groups}


IQL_Q = LossSpec("eq3", "iql_q_loss", ("loss", "d_q1", "d_q2"), {"d_q1": "q1", "d_q2": "q2"}, iql_q_loss,
                 "each critic's gradient is 2 (Q_k - y) / B, with y = r + discount * V(s') held fixed.",
                 variants=_iql_q_variants, rows=_iql_q_rows,
                 array_variants=lambda inputs, ref: {"d_q2": [("d_q2 equals d_q1: each critic's gradient uses "
                                                               "its own error, 2 (Q2 - y) / B.", ref[1])]})


def check_eq3(student):
    """Check ``iql_q_loss(q1, q2, reward, discount, next_v) -> (loss, d_q1, d_q2)`` (Eq. 3)."""
    return check_loss(IQL_Q, student, _iql_q_cases())


# ------------------------------------------------------------------------------------------------
# Eq. 4  AWR with the weight clip
# ------------------------------------------------------------------------------------------------
def _awr_cases():
    rng = np.random.default_rng(4)
    log_prob, q = rng.normal(size=B) - 1.0, rng.normal(size=B)

    def case(adv, temperature=3.0, **kw):
        return dict(log_prob=log_prob, q=q, v=q - np.asarray(adv, float), temperature=temperature, **kw)
    at_clip = np.log(AWR_MAX_WEIGHT) / 3.0
    return [("advantages below the clip (default max_weight)", case(rng.uniform(-1, 1, B)), B, True),
            ("some weights above the clip 100", case([-0.5, 2.0, 0.3, 3.0, 1.7, -1.0], max_weight=100.0), B, True),
            ("weights exactly at the clip 100", case([at_clip, 0.2, at_clip, -0.4, 0.5, at_clip],
                                                     max_weight=100.0), B, True),
            ("temperature 0 (every weight 1)", case(rng.uniform(-1, 1, B), 0.0, max_weight=100.0), B, True),
            ("every advantage negative", case(-rng.uniform(0.1, 2, B), max_weight=100.0), B, True),
            ("max_weight = 10", case([0.1, 1.0, 2.0, -0.3, 0.9, 2.5], max_weight=10.0), B, True)]


def _awr_weights(inputs):
    return np.exp(inputs["temperature"] * (inputs["q"] - inputs["v"]))


def _awr_variants(inputs, ref):
    lp, q, v, lam = inputs["log_prob"], inputs["q"], inputs["v"], inputs["temperature"]
    mw = inputs.get("max_weight", AWR_MAX_WEIGHT)
    n, adv = lp.size, q - v

    def weighted(w):
        return -np.mean(w * lp), -w / n
    out = []
    if mw != AWR_MAX_WEIGHT:
        out.append((f"you clipped at 100 but this call passes max_weight={mw:g}: use the max_weight argument.",
                    awr_loss(lp, q, v, lam, AWR_MAX_WEIGHT)))
    out.append((f"weights above the clip {mw:g} are not clipped: w = min(exp(lambda A), {mw:g}).",
                awr_loss(lp, q, v, lam, 1e300)))
    if lam > 0:
        out.append(("the temperature multiplies the advantage: w = exp(lambda (Q - V)), not exp((Q - V) / lambda).",
                    awr_loss(lp, q, v, 1.0 / lam, mw)))
    out += [("the advantage is A = Q - V (a better-than-average action gets a larger weight), not V - Q.",
             awr_loss(lp, v, q, lam, mw)),
            ("the clip applies to the weight exp(lambda A), not to the exponent lambda A: "
             f"w = min(exp(lambda A), {mw:g}).", weighted(np.exp(np.minimum(lam * adv, mw)))),
            ("you used lambda exp(A), as the paper prints Eq. 4; IQL (and this package) weighs by exp(lambda A).",
             weighted(np.minimum(lam * np.exp(adv), mw)))]
    return out


def _awr_rows(inputs):
    mw = inputs.get("max_weight", AWR_MAX_WEIGHT)
    return {"d_log_prob": [(_awr_weights(inputs) > mw,
                            f"where exp(lambda A) is above the clip {mw:g}: those weights are clipped to {mw:g}")]}


AWR = LossSpec("eq4", "awr_loss", ("loss", "d_log_prob"), {"d_log_prob": "log_prob"}, awr_loss,
               "the weights are constants (Q and V get no gradient from the actor): dL/dlog pi_i = -w_i / B.",
               variants=_awr_variants, rows=_awr_rows,
               hints={"loss": {"sign": "the loss has the wrong sign: AWR minimises -mean w log pi (it maximises "
                                       "the weighted log-likelihood of the dataset actions)."},
                      "d_log_prob": {"sign": "d_log_prob has the wrong sign: dL/dlog pi_i = -w_i / B."}})


def check_eq4(student):
    """Check ``awr_loss(log_prob, q, v, temperature, max_weight=100.0) -> (loss, d_log_prob)`` (Eq. 4)."""
    return check_loss(AWR, student, _awr_cases())


EXERCISES = [
    Exercise("eq1", "td_loss", "td_loss(q, target) -> (loss, d_q)", "TD loss (squared TD error)", "Eq. 1",
             "Eq. 1: loss = mean_i (y_i - Q_i)^2 over a batch of B; q, target: (B,) float arrays; the target "
             "y = r + discount * max Q_target is held fixed. Return (loss as a float, d_q = dloss/dq (B,)).",
             check_eq1),
    Exercise("eq2", "expectile_loss", "expectile_loss(q, v, expectile) -> (loss, d_v)",
             "expectile regression for V (IQL's value loss)", "Eq. 2",
             "Eq. 2: loss = mean_i |tau - 1(u_i < 0)| u_i^2 with u = Q - V and tau = expectile in (0, 1); "
             "q (B,) is a target (no gradient), v (B,). Return (loss, d_v = dloss/dv (B,)).", check_eq2),
    Exercise("eq3", "iql_q_loss", "iql_q_loss(q1, q2, reward, discount, next_v) -> (loss, d_q1, d_q2)",
             "IQL's twin Q loss", "Eq. 3",
             "Eq. 3 for twin critics: y = reward + discount * next_v (held fixed; discount = gamma^n (1 - "
             "terminal)), loss = mean (Q1 - y)^2 + mean (Q2 - y)^2. All arrays (B,). Return (loss, d_q1, d_q2).",
             check_eq3),
    Exercise("eq4", "awr_loss", "awr_loss(log_prob, q, v, temperature, max_weight=100.0) -> (loss, d_log_prob)",
             "advantage-weighted regression with the weight clip", "Eq. 4",
             "Eq. 4 as IQL implements it: w_i = min(exp(temperature (Q_i - V_i)), max_weight), loss = -mean_i "
             "w_i log_prob_i; the weights are constants. All arrays (B,). Return (loss, d_log_prob (B,)).",
             check_eq4),
]
