"""Statistics across tasks for the results tables (paper Fig. 6a, after Agarwal et al., 2021, "Deep RL at the
edge of the statistical precipice"), computed with ``scipy.stats``:

    iqm(scores)                         interquartile mean: the mean of the middle 50% of all (task, seed) scores
    iqm_with_ci(scores_by_task)         the IQM and a stratified bootstrap CI (seeds resampled within each task)
    probability_of_improvement(x, y)    P(X > Y) averaged over tasks, X and Y two methods' per-seed scores
    performance_profile(scores, taus)   the fraction of (task, seed) scores above each threshold tau

``scores_by_task`` is a list with one 1-D array of per-seed scores per task. Stratified bootstrap: ``scipy.stats
.bootstrap`` given one sample per task (``paired=False``) resamples each task's seeds independently, which is
rliable's stratified bootstrap; percentile intervals, seeded.
"""
import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 5_000


def iqm(scores):
    """The interquartile mean of a 1-D array: ``scipy.stats.trim_mean(scores, 0.25)``."""
    return float(stats.trim_mean(np.asarray(scores, float), 0.25))


def _stratified_ci(samples, statistic, confidence, seed):
    """A percentile bootstrap CI of ``statistic(*samples)``, each sample resampled on its own (stratified). A
    sample of one value (a task with one seed) or of equal values is the same in every resample: it is held."""
    varying = [k for k, s in enumerate(samples) if len(s) > 1 and not np.all(s == s[0])]
    if not varying:
        value = statistic(*samples)
        return value, value

    def with_held(*resampled):
        full = list(samples)
        for k, x in zip(varying, resampled):
            full[k] = x
        return statistic(*full)
    ci = stats.bootstrap([samples[k] for k in varying], with_held, paired=False, vectorized=False,
                         confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                         rng=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def iqm_with_ci(scores_by_task, confidence=CONFIDENCE, seed=0):
    """{"iqm", "ci_low", "ci_high", "runs"}: the IQM of every (task, seed) score and its stratified bootstrap CI."""
    samples = [np.asarray(s, float) for s in scores_by_task]
    if not samples or any(len(s) == 0 for s in samples):
        raise ValueError("iqm_with_ci needs at least one score for every task")
    statistic = lambda *xs: iqm(np.concatenate(xs))  # noqa: E731
    low, high = _stratified_ci(samples, statistic, confidence, seed)
    return {"iqm": statistic(*samples), "ci_low": low, "ci_high": high, "runs": int(sum(len(s) for s in samples))}


def probability_of_improvement(x_by_task, y_by_task, confidence=CONFIDENCE, seed=0):
    """{"probability", "ci_low", "ci_high"}: P(X > Y) = mean over tasks of U / (n m), U the Mann-Whitney statistic
    of task k's per-seed scores (ties count one half); CI by the stratified bootstrap over both methods' seeds."""
    if len(x_by_task) != len(y_by_task) or not x_by_task:
        raise ValueError("probability_of_improvement needs both methods' scores on the same tasks")
    samples = [np.asarray(s, float) for pair in zip(x_by_task, y_by_task) for s in pair]

    def statistic(*xs):
        values = [stats.mannwhitneyu(xs[2 * k], xs[2 * k + 1]).statistic / (len(xs[2 * k]) * len(xs[2 * k + 1]))
                  for k in range(len(xs) // 2)]
        return float(np.mean(values))
    low, high = _stratified_ci(samples, statistic, confidence, seed)
    return {"probability": statistic(*samples), "ci_low": low, "ci_high": high}


def performance_profile(scores_by_task, taus):
    """The fraction of all (task, seed) scores strictly above each tau (``1 - ECDF``, as rliable's profiles)."""
    scores = np.concatenate([np.asarray(s, float) for s in scores_by_task])
    return [float(np.mean(scores > tau)) for tau in taus]
