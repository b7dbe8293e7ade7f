"""Use what you trained: ``gde_ref.load_policy`` and ``gde-ref evaluate`` on fine-tuning and pretraining runs."""
import json

import numpy as np
import pytest

import gde_ref
from gde_ref.cli import main
from gde_ref.envs.make import make_env
from gde_ref.experiments.finetune import finetune
from gde_ref.experiments.pretrain import load_offline
from test_finetune_cli import BUDGET, offline_file


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    agent = offline_file(folder, "hopper", 11, 3)
    run = folder / "gde"
    summary = finetune("hopper-medium", "gde", str(run), offline_path=agent, **dict(BUDGET, steps=400))
    return {"agent": agent, "run": run, "summary": summary}


def test_policy_takes_raw_observations_and_returns_new_arrays(runs):
    agent, normalizer, _ = load_offline(runs["agent"], "hopper")
    policy = gde_ref.load_policy(runs["agent"])
    env = make_env("hopper")
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(policy.act(obs), agent.act(normalizer(obs)), rtol=1e-6)
    np.testing.assert_allclose(policy.act(obs.astype(np.float32)), policy.act(obs), rtol=1e-6)
    actions = [policy.act(obs), policy.act(obs + 1.0)]
    assert actions[0] is not actions[1] and not np.allclose(actions[0], actions[1]), "each call a new array"
    with pytest.raises(ValueError, match=r"shape \(11,\)"):
        policy.act(obs[:5])
    z = normalizer(obs)
    first, second = agent.act(z), agent.act(z + 1.0)     # the agent's own act (normalised input) too
    assert not np.array_equal(first, second), "a list of actions does not hold copies of the last one"


def test_the_three_policies_of_a_gde_run_are_its_saved_actors(runs):
    from gde_ref.checkpoint import load_npz
    arrays, _ = load_npz(runs["run"] / "checkpoint.npz")
    for which, key in (("exploit", "learner/agent/actor"), ("explore", "learner/gde/explore"),
                       ("teacher", "learner/gde/teacher")):
        np.testing.assert_array_equal(gde_ref.load_policy(runs["run"], which).actor.params, arrays[key])
    with pytest.raises(ValueError, match="one policy"):
        gde_ref.load_policy(runs["agent"], "teacher")


def test_evaluate_reproduces_the_runs_last_reporting_evaluation(runs, capsys):
    assert main(["evaluate", str(runs["run"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["normalized_score"] == pytest.approx(runs["summary"]["last_normalized_score"], rel=1e-12)
    assert result["episodes"] == runs["summary"]["report_episodes"]
    assert main(["evaluate", str(runs["run"]), "--json", "--episodes", "1", "--seed", "5"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["episodes"] == 1 and one["seed"] == 5 and len(one["returns"]) == 1


def test_evaluate_errors_are_one_line(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "holds no policy" in err and len(err.strip().splitlines()) == 1


def test_video_is_written_or_refused_with_the_fix(runs, tmp_path, capsys):
    """Recording needs an OpenGL backend for MuJoCo: with one, an .mp4 of the episode; without, one line
    naming MUJOCO_GL, and no file."""
    video = tmp_path / "policy.mp4"
    code = main(["evaluate", str(runs["run"]), "--episodes", "1", "--video", str(video)])
    err = capsys.readouterr().err.strip().splitlines()
    if code == 0:
        assert video.stat().st_size > 1000
    else:
        assert code == 2 and "MUJOCO_GL" in err[-1] and not video.exists()
        assert not list(tmp_path.iterdir()), "nothing half-written"
