"""``gde-ref finetune`` and its recipe: outputs, resume bit-identity, the pretraining cache, bad input.

Small networks (2 x 32) and a few hundred env steps on Hopper-v5, so that the file runs in well under a minute.
"""
import csv
import json

import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.checkpoint import load_npz
from gde_ref.cli import main
from gde_ref.config import IQLConfig, TD3BCConfig
from gde_ref.data.datasets import save_dataset
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import REF_SCORES, make_env
from gde_ref.experiments.finetune import LOG_COLUMNS, RunInterrupted, finetune, read_checkpoint
from gde_ref.experiments.pretrain import save_offline

SMALL = IQLConfig(hidden=(32, 32), batch_size=32)
BUDGET = dict(steps=600, seed=1, preset="quick", eval_period=150, eval_steps=100, checkpoint_period=200)
CLI_BUDGET = ["--steps", "600", "--seed", "1", "--preset", "quick", "--checkpoint-period", "200"]
STAGES = ["--eval-period", "150", "--eval-steps", "100"]   # GDE's F and L (refused for a baseline without stages)


def offline_file(folder, task, obs_dim, act_dim, backbone="iql"):
    """An (untrained) offline agent as ``gde-ref pretrain`` writes it."""
    agent = IQLAgent(obs_dim, act_dim, SMALL, seed=0) if backbone == "iql" else \
        TD3BCAgent(obs_dim, act_dim, TD3BCConfig(hidden=(32, 32), batch_size=32), seed=0)
    path = folder / f"{task}-{backbone}" / "offline.npz"
    save_offline(path, agent, ObsNormalizer.identity(obs_dim),
                 {"task": task, "dataset": f"{task}-medium", "reward_scale": 1.0})
    return str(path)


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    return {"hopper": offline_file(folder, "hopper", 11, 3), "walker2d": offline_file(folder, "walker2d", 17, 6),
            "hopper-td3bc": offline_file(folder, "hopper", 11, 3, "td3bc")}


def run_cli(args, capsys):
    code = main(["finetune", "--json", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_checkpoint(a, b):
    arrays_a, meta_a = load_npz(a)
    arrays_b, meta_b = load_npz(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].dtype == arrays_b[name].dtype, name
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name, strict=True)
    assert meta_a == meta_b  # loop position, log rows, rng and env states, teacher score, swaps, rho


def assert_same_run(a, b, summary_a, summary_b):
    """Run directories ``a`` and ``b`` ended the same: every checkpoint array and its metadata, log.csv, and the
    summaries (all but their speed)."""
    assert_same_checkpoint(a / "checkpoint.npz", b / "checkpoint.npz")
    assert (a / "log.csv").read_text() == (b / "log.csv").read_text()
    speed = "env_steps_per_second"
    assert {k: v for k, v in summary_a.items() if k != speed} == {k: v for k, v in summary_b.items() if k != speed}


@pytest.mark.parametrize("algo, backbone", [("gde", "iql"), ("rnd", "iql"), ("gde", "td3bc")])
def test_resume_is_bit_identical_to_an_uninterrupted_run(agents, tmp_path, capsys, algo, backbone):
    """Run A straight through (CLI); run B killed right after its checkpoint at step 400 (mid-run, between
    two evaluation stages), then resumed with --resume: every saved array, the log and summary are equal.
    TD3+BC: its noise generator and update count (the delayed actor) are part of the state too."""
    a, b = tmp_path / "A", tmp_path / "B"
    budget = CLI_BUDGET + (STAGES if algo == "gde" else []) + ["--backbone", backbone]
    agent = agents["hopper" if backbone == "iql" else f"hopper-{backbone}"]
    code, out, err = run_cli(["--dataset", "hopper-medium", "--algo", algo, "--from", agent,
                              "--out", str(a), *budget], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", algo, str(b), offline_path=agent, interrupt_at=300, backbone=backbone, **BUDGET)
    arrays, meta = load_npz(b / "checkpoint.npz")
    # rows before the checkpoint at 400. gde: reports at 0 and 250 (due at 200, inside the stage [150, 250)),
    # stages ending at 100, 250 and 400; rnd (no stages): reports at 0 and 200. The report due at 400 comes
    # after the checkpoint.
    want = ([("report", 0), ("stage", 100), ("stage", 250), ("report", 250), ("stage", 400)] if algo == "gde"
            else [("report", 0), ("report", 200)])
    assert [(r["kind"], r["env_step"]) for r in meta["loop"]["rows"]] == want
    assert meta["loop"]["env_step"] == 400 and not (b / "summary.json").exists()
    assert meta["envs"]["env"]["elapsed_steps"] > 0, "killed mid-episode: the MuJoCo state must be restored"
    # gde: resumed with every setting repeated; rnd: with --out and --resume only (the rest from config.json)
    again = ["--dataset", "hopper-medium", "--algo", algo, "--from", agent, *budget] if algo == "gde" else []
    code, out, err = run_cli(["--out", str(b), "--resume", *again], capsys)
    assert code == 0, err
    assert_same_run(a, b, summary_a, json.loads(out))
    assert summary_a["algo"] == algo and summary_a["env_steps"] == 600 and np.isfinite(
        summary_a["final_normalized_score"])


def test_outputs_of_a_gde_run(agents, tmp_path):
    out = tmp_path / "run"
    summary = finetune("hopper-medium", "gde", str(out), offline_path=agents["hopper"], **BUDGET)
    assert {"algo", "final_normalized_score", "env_steps", "teacher_swaps"} <= set(summary)
    assert json.loads((out / "summary.json").read_text()) == summary
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "gde" and config["eval_period"] == 150 and config["n_step"] == 1
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == LOG_COLUMNS
    stages = [r for r in rows if r["kind"] == "stage"]
    reports = [r for r in rows if r["kind"] == "report"]
    # stages at every multiple of F = 150, L = 100 steps each; the first precedes every update (no losses
    # yet), rho decays to 0; reports every 200 steps (the one due inside a stage right after it) and at T
    assert [int(r["env_step"]) for r in stages] == [100, 250, 400, 550]
    assert [int(r["env_step"]) for r in reports] == [0, 250, 400, 600]
    assert stages[0]["critic_loss"] == "nan" and float(stages[1]["critic_loss"]) > 0
    kl = [float(r["kl_weight"]) for r in stages]
    assert kl[0] == 0.3 > kl[1] > kl[2] > kl[3] > 0
    assert sum(int(r["teacher_swapped"]) for r in stages) == summary["teacher_swaps"]
    assert summary["evaluation_stage_steps"] == 400 and summary["exploration_steps"] == 200
    assert summary["updates"] == int(reports[-1]["updates"]) == 200, "one update per exploration step"
    scores = [float(r["normalized_score"]) for r in reports]
    assert np.isclose(summary["final_normalized_score"], np.mean(scores[-10:]))
    assert np.isclose(summary["last_normalized_score"], scores[-1])
    assert (out / "curve.png").stat().st_size > 1000
    arrays, meta = load_npz(out / "checkpoint.npz")
    assert meta["loop"]["env_step"] == 600 and meta["learner"]["swaps"] == summary["teacher_swaps"]
    assert {"learner/gde/teacher", "learner/gde/adam/explore/t", "buffer/obs", "env/mj_state", "loop/obs"} <= set(arrays)
    with pytest.raises(ValueError, match="saved on 'hopper', not 'walker2d'"):
        read_checkpoint(out / "checkpoint.npz", "walker2d")


def test_final_score_is_the_mean_of_the_last_ten_reporting_rows_and_baselines_spend_nothing_on_stages(agents, tmp_path):
    out = tmp_path / "run"
    summary = finetune("hopper-medium", "oniql", str(out), offline_path=agents["hopper"],
                       **dict(BUDGET, report_period=50, report_episodes=1))
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    reports = [float(r["normalized_score"]) for r in rows if r["kind"] == "report"]
    assert len(reports) == 13 and all(r["kind"] == "report" for r in rows), "every 50 steps, 0 to 600; no stage"
    assert summary["final_normalized_score"] == pytest.approx(np.mean(reports[-10:]), rel=1e-12)
    assert summary["last_normalized_score"] == pytest.approx(reports[-1], rel=1e-12)
    assert summary["evaluation_stage_steps"] == 0 and summary["exploration_steps"] == summary["env_steps"] == 600
    assert not summary["evaluation_stages"] and json.loads((out / "config.json").read_text())["stage_share"] == 0.0


def tiny_dataset(root, monkeypatch, seed=0):
    """A hopper-medium Minari dataset of 4 short rollouts of a fixed linear policy (``seed``: its noise)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    env, rng = make_env("hopper"), np.random.default_rng(seed)
    weights = rng.normal(0, 0.3, (11, 3))
    episodes = []
    for ep in range(4):
        obs, _ = env.reset(seed=ep)
        o, a, r, te, tr = [obs], [], [], [], []
        for t in range(40):
            act = np.clip(np.tanh(obs @ weights) + rng.normal(0, 0.1, 3), -1, 1).astype(np.float32)
            obs, rew, term, trunc, _ = env.step(act)
            trunc = trunc or t == 39
            o.append(obs), a.append(act), r.append(rew), te.append(term), tr.append(trunc and not term)
            if term or trunc:
                break
        episodes.append({"observations": np.array(o), "actions": np.array(a), "rewards": np.array(r),
                         "terminations": np.array(te), "truncations": np.array(tr), "seed": ep})
    save_dataset("hopper-medium", episodes, "Hopper-v5", *REF_SCORES["hopper"], metadata={"command": "test"})


def test_pretrains_once_then_reuses_the_cache(tmp_path, monkeypatch):
    """Without an offline agent: pretrain into RUNS/pretrained/..., reused by the next run; ``iql`` keeps
    the offline transitions in its buffer."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    kw = dict(BUDGET, steps=300, backbone_settings=SMALL, pretrain_steps=50)
    finetune("hopper-medium", "oniql", str(tmp_path / "runs" / "a"), **kw)
    cached = tmp_path / "runs" / "pretrained" / "hopper-medium-quick-seed1" / "offline.npz"
    stamp = cached.stat().st_mtime_ns
    summary = finetune("hopper-medium", "iql", str(tmp_path / "runs" / "b"), **kw)
    assert cached.stat().st_mtime_ns == stamp, "the cached agent was reused, not trained again"
    assert json.loads((tmp_path / "runs" / "b" / "config.json").read_text())["offline_agent"] == str(cached)
    arrays, _ = load_npz(tmp_path / "runs" / "b" / "checkpoint.npz")
    online = 300
    assert int(arrays["buffer/counters"][2]) > online, "iql's buffer holds the offline transitions too"
    assert summary["teacher_swaps"] == 0


@pytest.mark.parametrize("args, message", [
    (["--from", "MISSING"], "no offline agent at"),
    (["--from", "WALKER"], "trained on 'walker2d'"),
    (["--from", "HOPPER", "--kl-weight", "-0.1"], "kl_weight (rho) must be >= 0"),
    (["--from", "HOPPER", "--algo", "sac"], "invalid choice: 'sac'"),
    (["--from", "HOPPER", "--resume"], "to resume"),
])
def test_bad_input_gives_one_clear_line(agents, tmp_path, capsys, args, message):
    paths = {"MISSING": str(tmp_path / "nothing" / "offline.npz"), "WALKER": agents["walker2d"],
             "HOPPER": agents["hopper"]}
    args = [paths.get(a, a) for a in args]
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["--dataset", "hopper-medium", "--out", str(out_dir), *CLI_BUDGET, *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out_dir.exists(), "nothing written for a failed run"


def test_an_existing_run_needs_resume_with_its_own_settings(agents, tmp_path, capsys):
    out_dir = str(tmp_path / "run")
    base = ["--dataset", "hopper-medium", "--from", agents["hopper"], "--out", out_dir, *CLI_BUDGET]
    assert run_cli(base + ["--algo", "offline"], capsys)[0] == 0
    code, _, err = run_cli(base + ["--algo", "offline"], capsys)
    assert code == 2 and "already holds this run" in err and "--resume" in err and "--force" in err
    code, _, err = run_cli(base + ["--algo", "gde", "--resume"], capsys)
    assert code == 2 and "algo='offline'" in err and "its own settings" in err and "--force" in err
    code, _, err = run_cli(["--out", str(tmp_path / "elsewhere")], capsys)
    assert code == 2 and "--dataset is required" in err and not (tmp_path / "elsewhere").exists()
