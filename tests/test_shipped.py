"""The files the package ships in gde_ref/policies: behaviour policies and the tutorial's offline agent.

Each must load, fit its task's spaces, say how it was made, hold no machine path, and (random policies)
be exactly the randomly initialised SAC actor of its seed, so the dataset they make is the one we report.
"""
import json

import numpy as np
import pytest

from gde_ref.agents.sac import SACAgent
from gde_ref.checkpoint import load_npz
from gde_ref.data.behaviour import POLICY_DIR, load_policy
from gde_ref.envs.make import make_env
from gde_ref.experiments.pretrain import load_offline

BEHAVIOUR = sorted(p for p in POLICY_DIR.glob("*.npz") if not p.stem.endswith("-iql"))
OFFLINE = sorted(POLICY_DIR.glob("*-iql.npz"))
MACHINE_PATHS = ("/tmp", "/home", "/root", "/Users", "C:\\")


def test_the_package_ships_the_policies_the_readme_names():
    names = {p.stem for p in BEHAVIOUR}
    assert {"hopper-random", "hopper-medium", "halfcheetah-random", "halfcheetah-medium", "walker2d-random",
            "walker2d-medium"} <= names
    assert [p.stem for p in OFFLINE] == ["hopper-medium-iql"]


@pytest.mark.parametrize("path", BEHAVIOUR, ids=lambda p: p.stem)
def test_behaviour_policy_is_small_fits_its_task_and_says_how_it_was_made(path):
    assert path.stat().st_size < 1_000_000
    task, kind = path.stem.split("-", 1)
    agent, info = load_policy(path)
    env = make_env(task)
    assert (agent.obs_dim, agent.act_dim) == (env.observation_space.shape[0], env.action_space.shape[0])
    obs, _ = env.reset(seed=0)
    action = agent.act(obs.astype(np.float32))
    assert action.shape == env.action_space.shape and np.all(np.abs(action) <= 1.0)
    env.close()
    assert info["policy_preset"] == "laptop" and info["policy_seed"] == 0
    assert not any(m in json.dumps(info) for m in MACHINE_PATHS)
    if kind == "random":
        fresh = SACAgent(agent.obs_dim, agent.act_dim, agent.config, seed=info["policy_seed"])
        np.testing.assert_array_equal(agent.actor.params, fresh.actor.params)
        assert info["sac_steps"] == 0
    else:
        assert info["medium_level_reached"] is True
        assert info["policy_eval_score"] >= info["medium_level"]


@pytest.mark.parametrize("path", OFFLINE, ids=lambda p: p.stem)
def test_shipped_offline_agent_loads_for_its_task_only(path):
    agent, normalizer, meta = load_offline(path, "hopper")
    assert meta["dataset"] == "hopper-medium" and meta["steps"] == 100_000
    assert meta["command"].startswith("gde-ref pretrain") and not any(m in meta["command"] for m in MACHINE_PATHS)
    arrays, _ = load_npz(path)
    np.testing.assert_array_equal(agent.actor.params, arrays["actor"])
    assert normalizer.mean.shape == (agent.obs_dim,)
    with pytest.raises(ValueError, match="trained on 'hopper'"):
        load_offline(path, "walker2d")
