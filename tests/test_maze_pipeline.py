"""The maze recipe end to end at the quick preset: files, dataset, invariants of the data mix, JSON.

The qualitative result (CQL stays right, DQN finds the left goal) needs the default budgets, minutes
not seconds; figures/maze_fig2 reports it. Here: the outputs, and what the data mix promises."""
import json

import minari
import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.envs.maze import ToyMaze, goal_returns
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
        kept = results["dataset"]["kept"]
        assert kept["right"] >= 1, "the quick data agent reaches the right goal (it did in 4 of 30 episodes)"
        assert dataset.total_episodes == kept["right"] + kept["noisy"]
        env = ToyMaze()
        ends = {"left": 0, "right": 0, None: 0}
        for episode in dataset.iterate_episodes():
            # the env's own reward, -1 per step (not the data agent's penalised training reward)
            assert episode.rewards.sum() == -len(episode.rewards)
            ends[env.goal_of.get(int(np.argmax(episode.observations[-1])))] += 1
            if not episode.terminations[-1]:
                assert len(episode.rewards) == 200, "a noisy episode runs to the time limit"
        # right-goal episodes of the checkpoints and goal-less noisy ones; none ends at the left goal
        assert ends == {"left": 0, "right": kept["right"], None: kept["noisy"]}


def test_seeded_small_run_shows_cql_keeping_to_the_data_and_dqn_exploring():
    """The qualitative part of Fig. 2 at a small budget, one seed: the offline CQL agent goes to the right
    goal; fine-tuned with alpha = 3 it keeps to the right goal and mostly re-collects the offline route,
    while the same network fine-tuned without the penalty (DQN) spreads its exploration over more of the
    maze (Fig. 2b). (Whether DQN then finds the left goal needs the full budget: figures/maze_fig2.)"""
    from gde_ref.experiments.maze_fig2 import (collect_dataset, finetune, greedy_goal, maze_env, rollout, to_buffer,
                                               train_data_agent, train_offline)
    cfg = preset("default", data_agent_steps=20_000, checkpoint_period=5_000, finetune_steps=8_000)
    episodes, composition = collect_dataset(cfg, train_data_agent(cfg, seed=0), seed=1)
    assert composition["kept"]["right"] >= 50, composition
    buffer = to_buffer(episodes, ToyMaze().obs_dim, cfg.discount)
    offline = train_offline(cfg, buffer, seed=2)
    assert greedy_goal(offline.greedy) == ("right", -22.0)
    cql, dqn = finetune("cql_alpha3", offline, cfg, seed=0), finetune("dqn_alpha0", offline, cfg, seed=0)
    assert cql["goal"] == "right"
    greedy_episode, _ = rollout(maze_env(), offline.greedy, np.random.default_rng(0))
    route = greedy_episode["observations"][:-1].max(axis=0)   # cells the offline greedy policy walks through
    on_route = {name: float(run["visited"][route > 0].sum() / run["visited"].sum()) for name, run in
                (("cql", cql), ("dqn", dqn))}
    cells = {name: int((run["visited"] > 0).sum()) for name, run in (("cql", cql), ("dqn", dqn))}
    assert on_route["cql"] > on_route["dqn"] + 0.1, (on_route, cells)
    assert cells["dqn"] >= cells["cql"], cells
