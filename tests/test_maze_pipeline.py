"""The maze recipe end to end at the quick preset: files, dataset, invariants of the data mix, JSON.

The 5-seed result needs the default budgets (minutes; figures/maze_fig2 reports it). Here: the outputs, what
the data mix promises, the evaluation protocol of each method (GDE's stages for GDE only, a reporting
evaluation every F for all), and the paper's claim for one seed at a smaller budget."""
import io
import json
from contextlib import redirect_stdout

import minari
import numpy as np
import pytest

from gde_ref.cli import main
from gde_ref.envs.maze import ToyMaze, goal_returns
from gde_ref.data.datasets import datasets_root
from gde_ref.experiments.maze_fig2 import DATASET_ID, METHODS, preset


@pytest.fixture(scope="module")
def quick_cli(tmp_path_factory):
    """``gde-ref maze --preset quick --seeds 2 --json``: (output directory, what it printed)."""
    out = tmp_path_factory.mktemp("maze")
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(["maze", "--preset", "quick", "--seeds", "2", "--out", str(out), "--json"])
    assert code == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def quick_run(quick_cli):
    return quick_cli[0]


def test_json_output_has_every_method(quick_cli):
    """--json prints, per method, one goal and one final return per seed, as results.json has them."""
    out, printed = quick_cli
    shown, results = json.loads(printed), json.loads((out / "results.json").read_text())
    assert set(shown["methods"]) == set(METHODS)
    for m, d in shown["methods"].items():
        assert set(d) == {"final_return", "goal"}
        assert d["goal"] == results["methods"][m]["goal"] and len(d["goal"]) == 2
        assert d["final_return"] == results["methods"][m]["final_return"]
    assert shown["offline"] == results["offline"] and shown["dataset"] == results["dataset"]


def test_outputs_and_results(quick_run):
    results = json.loads((quick_run / "results.json").read_text())
    left, right = goal_returns()
    cfg = preset("quick")
    assert results["optimal_return"] == left and results["right_goal_return"] == right and left > right
    assert set(results["methods"]) == set(METHODS) >= {"cql_alpha3", "cql_alpha3_softmax", "gde"}
    for m in METHODS:
        d = results["methods"][m]
        assert len(d["final_return"]) == len(d["goal"]) == 2
        assert all(g in ("left", "right", "none") for g in d["goal"])
        assert all(-200 <= r <= left for r in d["final_return"])
        # the curves are the reporting evaluations: at t = 0, every F env steps, and at t = T
        assert d["curve_steps"] == list(range(0, cfg.finetune_steps + 1, cfg.eval_period)), m
        assert all(len(c) == len(d["curve_steps"]) for c in d["curves"])
        # the final return is the last reporting evaluation (one episode: the maze and a greedy policy are
        # deterministic)
        assert d["final_return"] == [c[-1] for c in d["curves"]], m
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


def test_only_gde_spends_budget_on_evaluation_stages():
    """The loop's protocol (gde_ref/finetune/loop.py) on the maze: GDE's evaluation stages (at every multiple
    of F, L steps of the greedy policy, stored and counted in the budget T) run for GDE only; CQL, DQN and the
    softmax control spend all T steps collecting data with their own policy. Every method is reported at
    t = 0, every F and at T by a greedy episode that is stored nowhere, and its final return is the last report."""
    from gde_ref.agents.dqn import QAgent
    from gde_ref.experiments.maze_fig2 import finetune
    cfg = preset("quick", finetune_steps=1_200, eval_period=400, eval_steps=100, learning_starts=100)
    offline = QAgent(ToyMaze().obs_dim, 4, cfg.hidden, cfg.lr, cfg.offline_alpha, cfg.target_period, seed=3)
    for m in METHODS:
        stored = []
        run = finetune(m, offline, cfg, seed=0, on_step=lambda stage, *rest: stored.append(stage))
        assert [r["env_step"] for r in run["rows"]] == [0, 400, 800, 1200], m
        assert all(r["kind"] == "report" for r in run["rows"]), m
        assert run["final_return"] == run["rows"][-1]["eval_return"], m
        assert len(stored) == cfg.finetune_steps, m        # the budget, and nothing of the reports
        if m == "gde":
            assert [r["env_step"] for r in run["stage_rows"]] == [100, 500, 900]
            assert stored.count("eval") == 300 and run["visited"].sum() == cfg.finetune_steps - 300
        else:
            assert run["stage_rows"] == [] and stored.count("eval") == 0, m
            assert run["visited"].sum() == cfg.finetune_steps, m


def test_finetune_runs_do_not_depend_on_the_number_of_workers():
    """Each fine-tuning run is seeded on its own: spread over 2 processes, the same runs give the same logs."""
    from gde_ref.agents.dqn import QAgent
    from gde_ref.experiments.maze_fig2 import finetune_all
    cfg = preset("quick", finetune_steps=1_200, eval_period=400, learning_starts=100)
    offline = QAgent(ToyMaze().obs_dim, 4, cfg.hidden, cfg.lr, cfg.offline_alpha, cfg.target_period, seed=3)
    jobs = [("gde", 0), ("dqn_alpha0", 1), ("cql_alpha3_softmax", 2)]
    serial, parallel = finetune_all(offline, cfg, jobs, workers=1), finetune_all(offline, cfg, jobs, workers=2)
    for a, b in zip(serial, parallel):
        assert a["rows"] == b["rows"] and a["goal"] == b["goal"]
        np.testing.assert_array_equal(a["visited"], b["visited"])
