"""The maze recipe end to end at the quick preset: files, dataset, invariants of the data mix, JSON.

The 5-seed result needs the default budgets (minutes; figures/maze_fig2 reports it). Here: the outputs, what
the data mix promises, and the paper's claim for one seed at a smaller budget."""
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


def test_dataset_is_a_minari_dataset_of_the_stated_mix(quick_run):
    with datasets_root(quick_run / "minari"):
        dataset = minari.load_dataset(DATASET_ID)
        results = json.loads((quick_run / "results.json").read_text())
        kept = results["dataset"]["kept"]
        assert kept["right"] >= 1, "the quick data agent reaches the right goal (it did in 4 of 30 episodes)"
        assert dataset.total_episodes == kept["right"] + kept["noisy"] + kept["left"]
        env = ToyMaze()
        ends = {"left": 0, "right": 0, None: 0}
        for episode in dataset.iterate_episodes():
            # the env's own reward, -1 per step (not the data agent's penalised training reward)
            assert episode.rewards.sum() == -len(episode.rewards)
            ends[env.goal_of.get(int(np.argmax(episode.observations[-1])))] += 1
            if not episode.terminations[-1]:
                assert len(episode.rewards) == 200, "a noisy episode runs to the time limit"
        # right-goal episodes of the checkpoints, goal-less noisy ones and the few optimal (left-goal) ones
        assert ends == {"left": kept["left"], "right": kept["right"], None: kept["noisy"]}
        assert kept["left"] == round(preset("quick").optimal_per_right * kept["right"])


def test_seeded_small_run_reproduces_the_claim_for_one_seed():
    """Fig. 2 at half the fine-tuning budget (10k steps), seed 0: the offline CQL agent
    goes to the right goal; fine-tuned with alpha = 3 it stays there and mostly re-collects the offline route,
    while the same network fine-tuned without the penalty (DQN) collects more off that route (Fig. 2b)
    and finds the left goal, and so does GDE with the CQL backbone."""
    from gde_ref.experiments.maze_fig2 import (collect_dataset, finetune, greedy_goal, maze_env, rollout, to_buffer,
                                               train_data_agent, train_offline)
    cfg = preset("default", finetune_steps=10_000)
    episodes, composition = collect_dataset(cfg, train_data_agent(cfg, seed=0), seed=1)
    assert composition["kept"]["right"] >= 50 and composition["kept"]["left"] >= 1, composition
    buffer = to_buffer(episodes, ToyMaze().obs_dim, cfg.discount)
    offline = train_offline(cfg, buffer, seed=2)
    assert greedy_goal(offline.greedy) == ("right", -22.0)
    cql, dqn, gde = (finetune(m, offline, cfg, seed=0) for m in ("cql_alpha3", "dqn_alpha0", "gde"))
    assert (cql["goal"], dqn["goal"], gde["goal"]) == ("right", "left", "left")
    greedy_episode, _ = rollout(maze_env(), offline.greedy, np.random.default_rng(0))
    route = greedy_episode["observations"][:-1].max(axis=0)   # cells the offline greedy policy walks through
    on_route = {name: float(run["visited"][route > 0].sum() / run["visited"].sum()) for name, run in
                (("cql", cql), ("dqn", dqn))}
    assert on_route["cql"] > on_route["dqn"] + 0.1, on_route


def test_finetune_runs_do_not_depend_on_the_number_of_workers():
    """Each fine-tuning run is seeded on its own: spread over 2 processes, the same runs give the same logs."""
    from gde_ref.agents.dqn import QAgent
    from gde_ref.experiments.maze_fig2 import finetune_all
    cfg = preset("quick", finetune_steps=1_200, eval_period=400, learning_starts=100)
    offline = QAgent(ToyMaze().obs_dim, 4, cfg.hidden, cfg.lr, cfg.offline_alpha, cfg.target_period, seed=3)
    jobs = [("gde", 0), ("dqn_alpha0", 1)]
    serial, parallel = finetune_all(offline, cfg, jobs, workers=1), finetune_all(offline, cfg, jobs, workers=2)
    for a, b in zip(serial, parallel):
        assert a["rows"] == b["rows"] and a["goal"] == b["goal"]
        np.testing.assert_array_equal(a["visited"], b["visited"])
