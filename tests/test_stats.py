"""Statistics across tasks (``gde_ref.experiments.stats``) against their definitions."""
import numpy as np
import pytest

from gde_ref.experiments.stats import iqm, iqm_with_ci, performance_profile, probability_of_improvement


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.array([100.0, -50.0, 3.0, 1.0, 4.0, 2.0, 7.0, 6.0])
    assert iqm(x) == pytest.approx(np.mean(np.sort(x)[2:6]))


def test_stratified_bootstrap_resamples_within_each_task():
    """Two tasks far apart: resampling seeds within each task keeps half the runs in each, so the IQM stays
    near 51.5 in every resample; pooled resampling would let it wander from ~1.5 to ~101.5."""
    tasks = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([100.0, 101.0, 102.0, 103.0])]
    out = iqm_with_ci(tasks)
    assert out["iqm"] == pytest.approx(iqm(np.concatenate(tasks))) and out["runs"] == 8
    assert 49.0 <= out["ci_low"] <= out["iqm"] <= out["ci_high"] <= 54.0
    same = iqm_with_ci([np.full(3, 5.0), np.full(2, 5.0)])
    assert (same["iqm"], same["ci_low"], same["ci_high"]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="at least one score"):
        iqm_with_ci([np.array([1.0]), np.array([])])


def test_probability_of_improvement_counts_pairs_and_ties_half():
    x = [np.array([1.0, 2.0, 3.0]), np.array([5.0, 5.0])]
    y = [np.array([2.0, 0.0]), np.array([5.0, 4.0, 6.0])]
    brute = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a in xs for b in ys]) for xs, ys in zip(x, y)])
    out = probability_of_improvement(x, y)
    assert out["probability"] == pytest.approx(brute)
    assert out["ci_low"] <= out["probability"] <= out["ci_high"]
    better = probability_of_improvement([np.array([9.0, 10.0])], [np.array([1.0, 2.0])])
    assert (better["probability"], better["ci_low"], better["ci_high"]) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement(x, y[:1])


def test_performance_profile_is_the_fraction_above_each_threshold():
    tasks = [np.array([10.0, 50.0]), np.array([30.0, 70.0, 90.0])]
    assert performance_profile(tasks, [0.0, 30.0, 50.0, 100.0]) == [1.0, 0.6, 0.4, 0.0]
