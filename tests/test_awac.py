"""AWAC (gde_ref.agents.awac): the compiled update against a slow NumPy reference, its gradients and the batch-
softmax weighting against central differences, determinism and the state round trip, acting, and the recipes:
``gde-ref pretrain --backbone awac`` and ``gde-ref finetune --backbone awac --algo awac|gde`` (resume bit-identical)."""
import copy
import json

import numpy as np
import pytest

import reference_awac as ref
import reference_steps
from gde_ref.agents.awac import AWACAgent
from gde_ref.checkpoint import load_npz
from gde_ref.cli import main
from gde_ref.config import AWACConfig
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.experiments.pretrain import load_offline, save_offline
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.losses import awac_actor_loss
from gde_ref.nn.bundle import frozen_net
from gradcheck import assert_grad_close, numerical_grad
from test_finetune_cli import BUDGET, CLI_BUDGET, assert_same_checkpoint, run_cli, tiny_dataset

OBS, ACT, B, HIDDEN = 5, 2, 8, (16, 16)
# log_std_max below the initial log-std parameter 0: the clip is active (zero gradient), and wide stds make
# many samples hit +-1
CLIPPING = AWACConfig(hidden=HIDDEN, log_std_min=-2.0, log_std_max=-0.2, beta=0.3, critic_lr=1e-2, actor_lr=1e-2,
                      polyak=0.2, policy_weight_decay=1e-2)


def make_batch(rng, dtype=np.float64, n=B):
    return reference_steps.make_batch(rng, OBS, ACT, n, dtype)


def make_agent(seed=0, dtype=np.float64, cfg=None):
    """An agent whose targets differ from its critics, its log-std parameters off their initial 0 (the default
    clip's upper end, a kink central differences cannot take): -0.7 and -0.1 (above CLIPPING's log_std_max)."""
    agent = AWACAgent(OBS, ACT, cfg or AWACConfig(hidden=HIDDEN), seed=seed, dtype=dtype)
    rng = np.random.default_rng(99)
    for target in (agent.twins.q1_target, agent.twins.q2_target):
        target += (0.05 * rng.standard_normal(target.size)).astype(dtype)      # in place
    agent.actor.views["extra"][:] = (-0.7, -0.1)
    return agent


def next_noise(agent, n=B):
    """The noise (eps for a', then eps for a~) the agent's next update will draw (float64 agents)."""
    rng = copy.deepcopy(agent.noise_rng)
    return ref.Noise(rng.standard_normal((n, ACT)), rng.standard_normal((n, ACT)))


def params_of(agent):
    out = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params, "q1t": agent.twins.q1_target,
           "q2t": agent.twins.q2_target}
    return {k: v.copy() for k, v in out.items()}


def arrays_of(agent):
    return {k: v.copy() for k, v in agent.state().items() if isinstance(v, np.ndarray)}


def assert_matches(agent, nets, what):
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=f"{name} {what}")


@pytest.mark.parametrize("cfg", [AWACConfig(hidden=HIDDEN), CLIPPING], ids=["defaults", "clipping"])
def test_awac_step_matches_reference(cfg):
    """Four float64 updates give the reference's stats and parameters of Q1, Q2, their targets and the actor
    (advantages at the step's starting critics, samples clipped to [-1, 1], the log-std clip, weight decay)."""
    agent = make_agent(cfg=cfg)
    nets = ref.RefAWAC(agent)
    rng = np.random.default_rng(1)
    clipped = 0
    for step in range(4):
        b = make_batch(rng)
        noise = next_noise(agent)
        _, mean, ls, _ = ref.gaussian(nets.p["pi"], nets, b.obs)
        clipped += np.sum(np.abs(mean + np.exp(ls) * noise.policy) > 1)
        stats = agent.update(b)
        expected = ref.awac_step(nets, b, noise)
        assert stats.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(stats[name], value, rtol=1e-9, err_msg=f"{name} step {step}")
    assert_matches(agent, nets, "after 4 steps")
    if cfg is CLIPPING:
        assert clipped > 0, "some policy samples must be clipped to +-1"
        assert agent.actor.views["extra"][1] > cfg.log_std_max, "one log-std stays clipped (only decay moves it)"


def test_split_step_with_a_teacher_matches_reference():
    """The contract's split update (GDE's "w/o explore"): critic_step then actor_step with a teacher Net and
    rho = 0.3 equals the reference's critic half and its actor loss + rho KL(teacher || actor)."""
    agent = make_agent(cfg=CLIPPING)
    nets = ref.RefAWAC(agent)
    teacher = agent.actor.params + 0.1 * np.random.default_rng(3).standard_normal(agent.actor.n_params)
    rng = np.random.default_rng(2)
    for step in range(3):
        b = make_batch(rng)
        noise = next_noise(agent)
        stats = np.zeros(len(agent.STAT_NAMES))
        context = agent.critic_step(b, stats)
        agent.actor_step(b, context, stats, teacher=frozen_net(teacher, agent.actor, B), kl_weight=0.3)
        expected, adv = ref.critic_half(nets, b, noise)
        np.testing.assert_allclose(context, adv, rtol=1e-9, atol=1e-12)
        expected["actor_loss"], g = ref.actor_grads(nets, b, adv, teacher, 0.3)
        nets.step("pi", g, nets.cfg.actor_lr)
        got = dict(zip(agent.STAT_NAMES, stats))
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, rtol=1e-9, err_msg=f"{name} step {step}")
    assert_matches(agent, nets, "after 3 guided steps")


@pytest.mark.parametrize("teacher", [False, True], ids=["plain", "teacher"])
def test_every_update_gradient_matches_central_differences(teacher):
    """Critic loss -> Q1, Q2 and actor loss (advantages held fixed, + rho KL with a teacher) -> the actor agree
    with central differences of the reference losses; the actor's gradient also carries weight_decay * params.
    Learning rates and Polyak are 0, so the update takes every gradient at the starting parameters."""
    cfg = AWACConfig(hidden=HIDDEN, critic_lr=0.0, actor_lr=0.0, polyak=0.0, beta=0.5, policy_weight_decay=0.01)
    agent = make_agent(seed=3, cfg=cfg)
    b = make_batch(np.random.default_rng(4))
    noise = next_noise(agent)
    before = params_of(agent)
    teacher_params = agent.actor.params + 0.2 * np.random.default_rng(5).standard_normal(agent.actor.n_params)
    stats = np.zeros(len(agent.STAT_NAMES))
    adv = agent.critic_step(b, stats)
    agent.actor_step(b, adv, stats, teacher=frozen_net(teacher_params, agent.actor, B) if teacher else None,
                     kl_weight=0.3)
    for name, p in params_of(agent).items():
        assert np.array_equal(p, before[name]), f"{name} moved with learning rates 0"
    n = agent.nets(B)
    nets = ref.RefAWAC(agent)
    adv_ref = ref.advantage(nets, b, noise)[0]
    np.testing.assert_allclose(adv, adv_ref, rtol=1e-9, atol=1e-12)
    assert adv.std() > 0.1, "the weights must differ across the batch"
    t, rho = (teacher_params, 0.3) if teacher else (None, 0.0)
    losses = {
        "q1": (n.critics.q1, nets.p["q1"], 0.0, lambda p: ref.critic_loss(p, nets.p["q2"], nets, b, noise)[0]),
        "q2": (n.critics.q2, nets.p["q2"], 0.0, lambda p: ref.critic_loss(nets.p["q1"], p, nets, b, noise)[0]),
        "actor": (n.actor, nets.p["pi"], cfg.policy_weight_decay,
                  lambda p: ref.actor_loss(p, nets, b, adv_ref, t, rho)[0]),
    }
    for name, (bundle, p, decay, f) in losses.items():
        x = p.copy()
        numeric = numerical_grad(lambda: f(x), x)
        assert np.abs(numeric).max() > 1e-4, name
        np.testing.assert_allclose(bundle.grads, numeric + decay * p, rtol=1e-5, atol=1e-8, err_msg=name)


def test_awac_actor_loss_is_the_batch_softmax_weighted_likelihood():
    """awac_actor_loss: -sum_i softmax_i(A / beta) log pi_i; its gradient w.r.t. log pi is -w (central
    differences); shifting every advantage by a constant changes nothing; huge advantages do not overflow."""
    rng = np.random.default_rng(6)
    logp, adv, beta = rng.standard_normal(B), 2.0 * rng.standard_normal(B), 0.7
    w = np.exp(adv / beta) / np.exp(adv / beta).sum()
    loss, d_logp = awac_actor_loss(logp, adv, beta)
    assert loss == pytest.approx(-np.sum(w * logp), rel=1e-12)
    assert_grad_close(lambda: awac_actor_loss(logp, adv, beta)[0], logp, d_logp, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(d_logp, -w, rtol=1e-12)
    assert awac_actor_loss(logp, adv + 1e4, beta)[0] == pytest.approx(loss, rel=1e-9)
    assert np.isfinite(awac_actor_loss(logp, 1e4 * adv, beta)[0])
    # the mean-of-B-weights form rlkit writes: mean_i(-log pi_i * B * w_i)
    assert loss == pytest.approx(np.mean(-logp * B * w), rel=1e-12)


def test_awac_actor_loss_rejects_bad_input():
    rng = np.random.default_rng(7)
    logp, adv = rng.standard_normal(B), rng.standard_normal(B)
    for beta in (0.0, -1.0, np.inf):
        with pytest.raises(ValueError, match=r"awac beta must be in \(0.0, inf\]"):
            awac_actor_loss(logp, adv, beta)
    with pytest.raises(ValueError, match="advantage"):
        awac_actor_loss(logp, adv[:5])
    with pytest.raises(TypeError, match="share one dtype"):
        awac_actor_loss(logp.astype(np.float32), adv)
    with pytest.raises(ValueError, match="batch is empty"):
        awac_actor_loss(np.zeros(0), np.zeros(0))
    with pytest.raises(ValueError, match="beta must be > 0"):
        AWACConfig(beta=0.0)
    with pytest.raises(ValueError, match="log_std_min < log_std_max"):
        AWACConfig(log_std_min=0.0, log_std_max=-1.0)


def test_same_seed_bit_identical_and_state_round_trip():
    """Two float32 agents with one seed end bit-identical after the same batches; a state() copy taken after
    3 updates, loaded into an agent of another seed, continues bit-identically (the noise generator included);
    a state without the generator is a clear error."""
    rng = np.random.default_rng(8)
    first, more = [make_batch(rng, np.float32) for _ in range(3)], [make_batch(rng, np.float32) for _ in range(3)]
    a = AWACAgent(OBS, ACT, AWACConfig(hidden=HIDDEN), seed=0)
    twin = AWACAgent(OBS, ACT, AWACConfig(hidden=HIDDEN), seed=0)
    for agent in (a, twin):
        for b in first:
            agent.update(b)
    for name, value in arrays_of(a).items():
        assert np.array_equal(value, arrays_of(twin)[name]), name
    saved = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in a.state().items()}
    other = AWACAgent(OBS, ACT, AWACConfig(hidden=HIDDEN), seed=1)
    assert not np.array_equal(other.q1.params, a.q1.params)
    other.update(more[0])                              # its compiled records exist before the load
    other.load_state(saved)
    for b in more:
        a.update(b)
        other.update(b)
    for name, value in arrays_of(a).items():
        assert np.array_equal(arrays_of(other)[name], value), name
    assert not np.array_equal(a.actor.params, saved["actor"])
    with pytest.raises(ValueError, match="no noise_rng"):
        other.load_state({k: v for k, v in saved.items() if k != "noise_rng"})


def test_act_mean_and_sample():
    """act(obs) is tanh(f(obs)); act(obs, rng) samples N(mean, (t sigma)^2) clipped to [-1, 1], sigma =
    exp(clip(log_std))."""
    agent = make_agent(seed=0)
    obs = 0.3 * np.random.default_rng(9).standard_normal(OBS)
    mean = agent.act(obs)
    np.testing.assert_allclose(mean, np.tanh(agent.actor.forward(obs[None]))[0], rtol=1e-12, atol=1e-14)
    rng = np.random.default_rng(10)
    samples = np.array([agent.act(obs, rng, 0.2) for _ in range(4000)])
    np.testing.assert_allclose(samples.std(0), 0.2 * np.exp([-0.7, -0.1]), rtol=0.1)
    np.testing.assert_allclose(samples.mean(0), mean, atol=0.02)
    with pytest.raises(TypeError, match="float64"):
        agent.act(obs.astype(np.float32))


# ------------------------------------------------------------------------------------------------
# the recipes
# ------------------------------------------------------------------------------------------------
SMALL = AWACConfig(hidden=(32, 32), batch_size=32)


def test_pretrain_writes_an_awac_agent(tmp_path, monkeypatch, capsys):
    """``gde-ref pretrain --backbone awac`` at a tiny budget writes an offline agent that records backbone awac
    and its config; loading it as another backbone is one clear error, in Python and on the command line."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    out = tmp_path / "pre"
    code = main(["pretrain", "--backbone", "awac", "--dataset", "hopper-medium", "--steps", "20", "--preset", "quick",
                 "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["backbone"] == "awac" and summary["steps"] == 20
    agent, _, meta = load_offline(out / "offline.npz", "hopper")
    assert isinstance(agent, AWACAgent) and meta["backbone"] == "awac" and meta["config"]["beta"] == 2.0
    assert int(agent.adam["actor"].t[0]) == 20
    with pytest.raises(ValueError, match="is a awac agent, not iql"):
        load_offline(out / "offline.npz", backbone="iql")
    code, _, err = run_cli(["--dataset", "hopper-medium", "--algo", "naive", "--from", str(out / "offline.npz"),
                            "--out", str(tmp_path / "run"), *CLI_BUDGET], capsys)
    assert code == 2 and "is a awac agent, not iql" in err and len(err.strip().splitlines()) == 1, err


def awac_offline_file(folder):
    path = folder / "offline.npz"
    save_offline(path, AWACAgent(11, 3, SMALL, seed=0), ObsNormalizer.identity(11),
                 {"task": "hopper", "dataset": "hopper-medium", "reward_scale": 1.0})
    return str(path)


def test_awac_finetune_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    """``gde-ref finetune --backbone awac --algo awac``: its buffer holds the offline transitions; a run killed
    after its checkpoint at step 400 and resumed equals an uninterrupted one in every saved array and the log.
    The algo refuses another backbone's agent."""
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    agent = awac_offline_file(tmp_path)
    a, b = tmp_path / "A", tmp_path / "B"
    args = ["--dataset", "hopper-medium", "--algo", "awac", "--backbone", "awac", "--from", agent, *CLI_BUDGET]
    code, out, err = run_cli([*args, "--out", str(a)], capsys)
    assert code == 0, err
    summary_a = json.loads(out)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "awac", str(b), offline_path=agent, interrupt_at=300, backbone="awac", **BUDGET)
    code, out, err = run_cli(["--out", str(b), "--resume"], capsys)
    assert code == 0, err
    assert_same_checkpoint(a / "checkpoint.npz", b / "checkpoint.npz")
    assert (a / "log.csv").read_text() == (b / "log.csv").read_text()
    speed = "env_steps_per_second"
    assert {k: v for k, v in json.loads(out).items() if k != speed} == {
        k: v for k, v in summary_a.items() if k != speed}
    arrays, _ = load_npz(a / "checkpoint.npz")
    assert int(arrays["buffer/counters"][2]) > 600, "awac's buffer holds the offline transitions too"
    code, _, err = run_cli(["--dataset", "hopper-medium", "--algo", "awac", "--out", str(tmp_path / "C"), *CLI_BUDGET],
                           capsys)
    assert code == 2 and "defined on the awac backbone" in err, err


@pytest.mark.parametrize("algo", ["gde", "naive"])
def test_gde_and_naive_run_on_awac(tmp_path, algo):
    """GDE (Algorithm 1; Eq. 5's exploration policy against AWAC's critics) and naive fine-tuning (online data
    only) on the awac backbone: the updates run, the buffer holds the online steps only."""
    agent = awac_offline_file(tmp_path)
    summary = finetune("hopper-medium", algo, str(tmp_path / "run"), offline_path=agent, backbone="awac",
                       **dict(BUDGET, steps=300))
    assert summary["algo"] == algo and summary["updates"] > 0 and np.isfinite(summary["final_normalized_score"])
    arrays, _ = load_npz(tmp_path / "run" / "checkpoint.npz")
    assert int(arrays["buffer/counters"][2]) == 300
