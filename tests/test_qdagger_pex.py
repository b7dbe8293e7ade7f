"""The QDagger and PEX baselines (Table 2) on the IQL backbone: the decay rule, the selection probabilities,
their update steps against the slow float64 reference, and a quick CLI run with resume of each."""
import csv
import json
import math

import numpy as np
import pytest

import reference_steps as ref
from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz
from gde_ref.config import GDEConfig, IQLConfig
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.finetune.algos import make_buffer, make_learner
from gde_ref.finetune.gde import AgentInputs
from gde_ref.finetune.pex import PEXFinetuner, composite_actions, selection_probability
from gde_ref.finetune.qdagger import QDaggerFinetuner, distillation_decay
from gde_ref.nn.bundle import frozen_net
from test_finetune_cli import (BUDGET, CLI_BUDGET, STAGES, agents, assert_same_run,  # noqa: F401
                               run_cli, tiny_dataset)
from test_finetune_mujoco import fake_offline, reference_critics
from test_update_steps import make_batch, make_learner as float64_learner

OBS, ACT = 5, 2   # test_update_steps' float64 agents


def identity(n=OBS):
    return ObsNormalizer.identity(n)


# ------------------------------------------------------------------------------------------------
# QDagger
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("score, teacher, random, want", [
    (50.0, 100.0, 0.0, 0.5),          # half the teacher's return: half the weight
    (100.0, 100.0, 0.0, 0.0),         # matches the teacher (to the official's 1e-8): off
    (150.0, 100.0, 0.0, 0.0),         # beats it: off
    (-20.0, 100.0, 0.0, 1.2),         # below random: above 1, as the official
    (40.0, 100.0, -20.0, 0.5),        # (40 + 20) / (100 + 20) = 1/2
    (5.0, 0.0, 0.0, 0.0),             # a teacher at the random level: a better student stops distilling
    (0.0, 0.0, 0.0, 1.0),             # ... one no better keeps it (the official's value too)
    (-5.0, -10.0, 0.0, 0.0),          # a teacher below random, beaten: off (the raw formula would give 0.5)
    (-15.0, -10.0, 0.0, 1.0),
])
def test_distillation_decay_on_hand_computed_cases(score, teacher, random, want):
    assert distillation_decay(score, teacher, random) == pytest.approx(want, abs=1e-9)


def test_distillation_decay_refuses_non_finite_scores():
    with pytest.raises(ValueError, match="finite scores"):
        distillation_decay(float("nan"), 1.0)


def test_qdagger_weight_follows_the_evaluations():
    """Stage 0 scores the teacher (decay stays 1); later stages recompute it; once 0 it stays 0."""
    learner = make_learner("qdagger", IQLAgent(OBS, ACT, IQLConfig(hidden=(8, 8))), identity(), 1.0,
                           GDEConfig(kl_weight=0.3))
    assert learner.kl_weight == 0.3
    log = learner.after_evaluation(200.0, 0)
    assert log == {"teacher_score": 200.0, "teacher_swapped": 0, "kl_weight": 0.3}
    assert learner.after_evaluation(50.0, 100)["kl_weight"] == pytest.approx(0.3 * 0.75)
    assert learner.after_evaluation(20.0, 200)["kl_weight"] == pytest.approx(0.3 * 0.9)
    assert learner.after_evaluation(250.0, 300)["kl_weight"] == 0.0
    assert learner.after_evaluation(10.0, 400)["kl_weight"] == 0.0, "the official's guard: never recomputed at 0"
    assert learner.teacher_score == 200.0


def test_qdagger_update_is_the_guided_awr_step_then_plain_iql():
    """With lambda > 0 an update is GDE w/o explore's step (Eq. 4 + lambda KL(pi_t || pi), itself checked
    against the float64 reference in test_finetune_mujoco); with lambda = 0 it is IQL's own update."""
    rng = np.random.default_rng(0)
    a, gde_learner = float64_learner(3)
    b, _ = float64_learner(3)
    b.load_state(a.state())
    gde_learner.teacher_params[:] = a.actor.params
    q = QDaggerFinetuner(b, identity(), 1.0, coefficient=0.3)
    q.inputs = AgentInputs(identity(), 1.0, np.float64)
    q.after_evaluation(100.0, 0)
    q.after_evaluation(40.0, 1)                   # decay 0.6 (to the official's 1e-8): lambda = 0.18
    assert q.kl_weight == pytest.approx(0.18)
    for _ in range(2):
        batch = make_batch(rng)
        gde_learner.update_guided_exploitation(batch, q.kl_weight)
        q.update(batch, 0.5)
    for name, arr in a.state().items():
        np.testing.assert_array_equal(b.state()[name], arr, err_msg=name)
    q.after_evaluation(500.0, 2)
    assert q.kl_weight == 0.0
    batch = make_batch(rng)
    a.update(batch)
    q.update(batch, 0.6)
    for name, arr in a.state().items():
        np.testing.assert_array_equal(b.state()[name], arr, err_msg=name)
    with pytest.raises(ValueError, match="iql backbone"):
        make_learner("qdagger", object(), identity(), 1.0)


# ------------------------------------------------------------------------------------------------
# PEX
# ------------------------------------------------------------------------------------------------
def test_selection_probabilities_match_a_hand_computation():
    q_offline = np.array([1.0, 0.0, 2.0, 100.0, -100.0])
    q_new = np.array([1.0, 0.1, 1.9, -100.0, 100.0])
    p = np.empty(5)
    selection_probability(q_offline, q_new, 10.0, p)
    e = math.e
    want = [0.5, e / (1 + e), 1 / (1 + e), 0.0, 1.0]   # softmax(10 [q_off, q_new])[1]
    np.testing.assert_allclose(p, want, rtol=1e-12, atol=1e-300)
    logits = 10.0 * np.stack([q_offline, q_new])[:, :3]
    np.testing.assert_allclose(p[:3], np.exp(logits[1]) / np.exp(logits).sum(0), rtol=1e-12)


def pex_learner(seed=0):
    agent, _ = float64_learner(seed)
    learner = PEXFinetuner(agent, identity(), 1.0, seed=seed)
    learner.new.params += 0.3 * np.random.default_rng(seed + 7).standard_normal(learner.new.params.size)
    return agent, learner


def reference_mixture(nets, p_new_params, obs, noise, uniform, cfg, rec, beta=10.0):
    """The PEX mixture written from the equations (float64): (actions, P(new))."""
    _, a1, _, _ = ref.gaussian(nets.p["pi"], nets, obs, cfg, rec)
    _, mean, ls, _ = ref.gaussian(p_new_params, nets, obs, cfg, rec)
    a2 = np.clip(mean + np.exp(ls) * noise, -1.0, 1.0)

    def q(a):
        x = np.concatenate([obs, a], 1)
        return np.minimum(ref.forward(nets.p["q1"], nets.sizes["q"], x, rec)[-1],
                          ref.forward(nets.p["q2"], nets.sizes["q"], x, rec)[-1])[:, 0]
    logits = beta * np.stack([q(a1), q(a2)])
    p = np.exp(logits - logits.max(0))
    p = p[1] / p.sum(0)
    return np.where((uniform < p)[:, None], a2, a1), p


def test_composite_actions_match_the_reference():
    """Acting: pi_0's mean or a sample of pi_new, picked with probability softmax(10 Q); the deterministic
    version is the argmax."""
    agent, learner = pex_learner(1)
    nets = ref.RefNets(agent)
    rng = np.random.default_rng(2)
    n = 16
    obs = rng.standard_normal((n, OBS))
    noise, uniform, out = rng.standard_normal((n, ACT)), rng.random(n), np.empty((n, ACT))
    views = (frozen_net(agent.actor.params, agent.actor, n), frozen_net(learner.new.params, learner.new, n),
             agent.critics(n))
    p_mean = composite_actions(*views, obs, noise, uniform, learner.hyper, out)
    want, p = reference_mixture(nets, learner.new.params, obs, noise, uniform, agent.config, ref.Recorder())
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    assert p_mean == pytest.approx(p.mean(), rel=1e-12) and 0.05 < p.mean() < 0.95, "both policies are chosen"
    # the single-state paths: the learner's exploit action is the argmax of Q between the two means
    for i in range(4):
        want, _ = reference_mixture(nets, learner.new.params, obs[i:i + 1], np.zeros((1, ACT)), np.full(1, 0.5),
                                    agent.config, ref.Recorder())
        np.testing.assert_allclose(learner.exploit_action(obs[i]), want[0], rtol=1e-12, atol=1e-12)
        r = np.random.default_rng(i)
        action = learner.explore_action(obs[i], np.random.default_rng(i)).copy()
        want, _ = reference_mixture(nets, learner.new.params, obs[i:i + 1], r.standard_normal((1, ACT)), r.random(1),
                                    agent.config, ref.Recorder())
        np.testing.assert_allclose(action, want[0], rtol=1e-12, atol=1e-12)


def test_pex_step_matches_reference_and_keeps_pi0_frozen():
    """Three PEX updates (float64): IQL's critics and V, then pi_new's AWR on actions re-drawn from the
    mixture with min(Q1', Q2') - V; every network equals the slow reference's, and pi_0 (the agent's actor,
    with its Adam state) is bit-for-bit unchanged."""
    agent, learner = pex_learner(2)
    nets = ref.RefNets(agent)
    for k in ("new",):
        nets.p[k] = learner.new.params.astype(np.float64)
        nets.m[k], nets.v2[k], nets.t[k] = np.zeros_like(nets.p[k]), np.zeros_like(nets.p[k]), 0
    pi0 = {k: v.copy() for k, v in agent.state().items() if "actor" in k}
    new0, q0 = learner.new.params.copy(), agent.q1.params.copy()
    cfg, rng, rec = agent.config, np.random.default_rng(6), ref.Recorder()
    for _ in range(3):
        b = make_batch(rng)
        draws = np.random.default_rng()
        draws.bit_generator.state = learner.noise_rng.bit_generator.state
        noise, uniform = draws.standard_normal((len(b.rewards), ACT)), draws.random(len(b.rewards))
        stats = learner.update(b, 0.5)
        _, v = reference_critics(nets, b, cfg, rec)
        actions, p = reference_mixture(nets, nets.p["new"], b.obs, noise, uniform, cfg, rec)
        x = np.concatenate([b.obs, actions], 1)
        qt = np.minimum(ref.forward(nets.p["q1t"], nets.sizes["q"], x, rec)[-1],
                        ref.forward(nets.p["q2t"], nets.sizes["q"], x, rec)[-1])[:, 0]
        loss, acts, d_raw, d_ls = ref.awr_loss(nets.p["new"], nets, b._replace(actions=actions), qt, v, cfg, rec)
        g, _ = ref.backward(nets.p["new"], nets.sizes["pi"], acts, d_raw, rec)
        nets.step("new", np.concatenate([g, d_ls]), cfg.actor_lr)
        assert stats["actor_loss"] == pytest.approx(loss, rel=1e-9) and stats["p_new"] == pytest.approx(p.mean())
    got = {"q1": agent.q1.params, "q2": agent.q2.params, "v": agent.value.params, "q1t": agent.q1_target,
           "q2t": agent.q2_target, "new": learner.new.params}
    for name, arr in got.items():
        np.testing.assert_allclose(arr, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)
    for k, v in pi0.items():
        np.testing.assert_array_equal(agent.state()[k], v, err_msg=f"pi_0 ({k}) must stay frozen")
    assert not np.allclose(learner.new.params, new0) and not np.allclose(agent.q1.params, q0)


def test_pex_buffer_is_half_offline_and_refuses_what_it_cannot_do():
    cfg = GDEConfig(buffer_size=100)
    buffer = make_buffer("pex", 11, 3, cfg, offline=fake_offline(50))
    for i in range(10):
        buffer.add(np.zeros(11), np.zeros(3), 0.0, np.zeros(11), False, False)
    batch = buffer.sample(32, np.random.default_rng(0))
    assert (batch.obs[:16] == 1e6).all() and (batch.obs[16:] == 0).all()
    with pytest.raises(ValueError, match="offline dataset"):
        make_buffer("pex", 11, 3, cfg)
    with pytest.raises(ValueError, match="n_step=1"):
        make_buffer("pex", 11, 3, GDEConfig(n_step=3), offline=fake_offline())
    with pytest.raises(ValueError, match="iql backbone"):
        PEXFinetuner(object(), identity(11), 1.0)
    with pytest.raises(ValueError, match="action_temperature"):
        make_learner("pex", IQLAgent(11, 3, IQLConfig(hidden=(8, 8))), identity(11), 1.0, action_temperature=2.0)


# ------------------------------------------------------------------------------------------------
# quick CLI runs, resumed bit-identically
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["qdagger", "pex"])
def test_cli_run_and_resume_is_bit_identical(agents, tmp_path, capsys, monkeypatch, algo):  # noqa: F811
    """Run A straight through (CLI, quick preset); run B interrupted after its checkpoint at step 400, then
    resumed: every saved array, the log and the summary are equal. PEX reads the offline dataset."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    a, b = tmp_path / "A", tmp_path / "B"
    budget = CLI_BUDGET + (STAGES if algo == "qdagger" else [])
    code, out, err = run_cli(["--dataset", "hopper-medium", "--algo", algo, "--from", agents["hopper"],
                              "--out", str(a), *budget], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    kw = dict(BUDGET) if algo == "qdagger" else {k: v for k, v in BUDGET.items()
                                                 if k not in ("eval_period", "eval_steps")}
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", algo, str(b), offline_path=agents["hopper"], interrupt_at=300, **kw)
    code, out, err = run_cli(["--out", str(b), "--resume"], capsys)
    assert code == 0, err
    assert_same_run(a, b, summary_a, json.loads(out))
    assert summary_a["algo"] == algo and np.isfinite(summary_a["final_normalized_score"])
    assert summary_a["evaluation_stages"] == (algo == "qdagger")
    if algo == "pex":   # the online part is saved; the offline part is remade from the dataset
        arrays, meta = load_npz(a / "checkpoint.npz")
        assert int(arrays["buffer/online/counters"][2]) == 600 and "pex/noise_rng" in meta["learner"]
        assert "learner/pex/new" in arrays and "learner/agent/actor" in arrays
    if algo == "qdagger":   # stages ending at 100, 250, 400, 550: the first scores the teacher, lambda stays 0.3
        with open(a / "log.csv") as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "stage"]
        assert [int(r["env_step"]) for r in rows] == [100, 250, 400, 550]
        assert float(rows[0]["kl_weight"]) == 0.3 and float(rows[0]["teacher_score"]) == float(rows[0]["eval_return"])
        assert all(0.0 <= float(r["kl_weight"]) for r in rows)


# ------------------------------------------------------------------------------------------------
# raw inputs: each learner normalises observations and scales rewards exactly once
# ------------------------------------------------------------------------------------------------
def skewed(n=OBS):
    """A normaliser far from the identity (mean 3, std 0.25 .. 4), so that a missing or a doubled
    normalisation changes every action and every update."""
    return ObsNormalizer(np.linspace(-3.0, 3.0, n).astype(np.float32), np.geomspace(0.25, 4.0, n).astype(np.float32))


def normalised(norm, raw, reward_scale):
    """What AgentInputs should make of a raw batch (float64): (s - mean) / std, r * scale."""
    m, s = norm.mean.astype(np.float64), norm.std.astype(np.float64)
    return raw._replace(obs=(raw.obs - m) / s, next_obs=(raw.next_obs - m) / s, rewards=raw.rewards * reward_scale)


@pytest.mark.parametrize("algo", ["pex", "qdagger"])
def test_raw_inputs_are_normalised_once(algo):
    """A learner with the data's normaliser and reward scale, fed raw observations and batches, acts and
    updates exactly as its twin with the identity and scale 1 fed the normalised ones (float64)."""
    norm, scale = skewed(), 7.0

    def build(normalizer, reward_scale):
        agent, _ = float64_learner(4)
        if algo == "pex":
            return PEXFinetuner(agent, normalizer, reward_scale, seed=4)
        q = QDaggerFinetuner(agent, normalizer, reward_scale, coefficient=0.3)
        q.teacher_params += 0.05                       # a teacher that differs from the student: the KL term acts
        q.after_evaluation(100.0, 0)
        q.after_evaluation(40.0, 1)
        return q
    raw_learner, twin = build(norm, scale), build(identity(), 1.0)
    rng = np.random.default_rng(5)
    for _ in range(2):
        raw = make_batch(rng)
        raw = raw._replace(obs=3.0 * raw.obs + 1.0, next_obs=3.0 * raw.next_obs + 1.0)
        stats_raw, stats_twin = raw_learner.update(raw, 0.5), twin.update(normalised(norm, raw, scale), 0.5)
        assert stats_raw == stats_twin
        o = raw.obs[0]
        x = normalised(norm, raw, scale).obs[0]
        np.testing.assert_array_equal(raw_learner.exploit_action(o), twin.exploit_action(x))
        np.testing.assert_array_equal(raw_learner.explore_action(o, np.random.default_rng(1)).copy(),
                                      twin.explore_action(x, np.random.default_rng(1)))
    for name, arr in twin.state().items():
        np.testing.assert_array_equal(raw_learner.state()[name], arr, err_msg=name)
