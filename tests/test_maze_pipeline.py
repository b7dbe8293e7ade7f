"""The maze recipe end to end at the quick preset: files, dataset, invariants of the data mix, JSON.

The qualitative result of the paper (CQL stays right, DQN/GDE find the left goal) does not reproduce
yet with this maze and data mix (see the issue notes), so it is not asserted here."""
import json

import minari
import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.envs.maze import goal_returns
from gde_ref.data.datasets import datasets_root
from gde_ref.experiments.maze_fig2 import DATASET_ID, METHODS, preset


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("maze")
    code = main(["maze", "--preset", "quick", "--seeds", "2", "--out", str(out), "--json"])
    assert code == 0
    return out


def test_outputs_and_results(quick_run, capsys):
    results = json.loads((quick_run / "results.json").read_text())
    left, right = goal_returns()
    assert results["optimal_return"] == left and results["right_goal_return"] == right and left > right
    assert set(results["methods"]) == set(METHODS)
    for m in METHODS:
        d = results["methods"][m]
        assert len(d["final_return"]) == len(d["goal"]) == 2
        assert all(g in ("left", "right", "none") for g in d["goal"])
        assert all(-200 <= r <= left for r in d["final_return"])
        cfg = preset("quick")
        # the first stage ends at L; one every F exploration steps after it, all within the budget
        assert d["curve_steps"][0] == cfg.eval_steps and d["curve_steps"][-1] <= cfg.finetune_steps
    for name in ("fig2a_dataset_heatmap.png", "fig2b_finetune_heatmaps.png", "fig2c_learning_curves.png"):
        assert (quick_run / name).stat().st_size > 1000


def test_dataset_is_a_minari_dataset_without_left_goal_episodes(quick_run):
    with datasets_root(quick_run / "minari"):
        dataset = minari.load_dataset(DATASET_ID)
        results = json.loads((quick_run / "results.json").read_text())
        assert dataset.total_episodes == sum(results["dataset"]["kept"].values())
        for episode in dataset.iterate_episodes():
            assert episode.rewards.sum() == -len(episode.rewards)          # -1 per step
            # no kept episode ends at the left goal (the data mix drops them unless keep_left)
            last_cell = int(np.argmax(episode.observations[-1]))
            from gde_ref.envs.maze import ToyMaze
            env = ToyMaze()
            assert env.goal_of.get(last_cell) != "left"
