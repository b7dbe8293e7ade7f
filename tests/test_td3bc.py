"""TD3+BC (gde_ref.agents.td3bc): the compiled update step against a slow NumPy reference, its gradients
against central differences, the actor loss's checks, determinism, the state round trip and acting."""
import copy

import numpy as np
import pytest

import reference_steps
import reference_td3bc as ref
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.bench import is_blas_product, step_products
from gde_ref.bench_passes import (EXPLORE_PASSES, GDE_TD3BC_PASSES, POLICY_FREQ, TD3BC_ACTOR_PASSES,
                                  TD3BC_CRITIC_PASSES, TD3BC_PASSES)
from gde_ref.config import TD3BCConfig
from gde_ref.losses.baselines import td3bc_actor_loss
from gradcheck import numerical_grad

OBS, ACT, B, HIDDEN = 5, 2, 8, (16, 16)
# strong target smoothing: most noise entries hit +-noise_clip and some smoothed actions hit +-1
CLIPPING = TD3BCConfig(hidden=HIDDEN, policy_noise=1.5, noise_clip=0.6, critic_lr=1e-2, actor_lr=1e-2, polyak=0.2)


def make_batch(rng, dtype=np.float64, n=B):
    return reference_steps.make_batch(rng, OBS, ACT, n, dtype)


def make_agent(seed=0, dtype=np.float64, cfg=None):
    """An agent whose three targets differ from their online networks (so mixing them up shows)."""
    agent = TD3BCAgent(OBS, ACT, cfg or TD3BCConfig(hidden=HIDDEN), seed=seed, dtype=dtype)
    rng = np.random.default_rng(99)
    for target in (agent.twins.q1_target, agent.twins.q2_target, agent.actor_target):
        target += (0.05 * rng.standard_normal(target.size)).astype(dtype)      # in place
    return agent


def next_noise(agent, n=B):
    """The target-smoothing noise eps (n, A) the agent's next update will draw (float64 agents)."""
    return copy.deepcopy(agent.noise_rng).standard_normal((n, ACT), dtype=np.float64)


def params_of(agent):
    out = {"q1": agent.q1.params, "q2": agent.q2.params, "pi": agent.actor.params, "q1t": agent.twins.q1_target,
           "q2t": agent.twins.q2_target, "pit": agent.actor_target}
    return {k: v.copy() for k, v in out.items()}


def arrays_of(agent):
    return {k: v.copy() for k, v in agent.state().items() if isinstance(v, np.ndarray)}


def run_updates(agent, batches):
    for b in batches:
        agent.update(b)


@pytest.mark.parametrize("cfg", [TD3BCConfig(hidden=HIDDEN), CLIPPING], ids=["defaults", "clipping"])
def test_td3bc_step_matches_reference(cfg):
    """Four float64 updates (critic-only steps 1 and 3, actor + Polyak steps 2 and 4 with policy_freq 2) give
    the reference's stats and parameters of Q1, Q2, their targets, the actor and its target. The actor and
    the targets stay put on critic-only steps."""
    agent = make_agent(cfg=cfg)
    nets = ref.RefTD3BC(agent)
    rng = np.random.default_rng(1)
    clipped_noise = clipped_action = 0
    for step in range(1, 5):
        b = make_batch(rng)
        noise = next_noise(agent)
        smoothing = np.clip(cfg.policy_noise * noise, -cfg.noise_clip, cfg.noise_clip)
        clipped_noise += np.sum(smoothing != cfg.policy_noise * noise)
        clipped_action += np.sum(np.abs(np.tanh(nets.net("pit", b.next_obs)[-1]) + smoothing) > 1)
        before = params_of(agent)
        stats = agent.update(b)
        expected = ref.td3bc_step(nets, b, noise)
        for name, value in expected.items():
            np.testing.assert_allclose(stats[name], value, rtol=1e-9, equal_nan=True, err_msg=f"{name} step {step}")
        after = params_of(agent)
        for name in ("pi", "q1t", "q2t", "pit"):
            assert np.array_equal(before[name], after[name]) == (step % 2 == 1), f"{name} step {step}"
        assert not np.array_equal(before["q1"], after["q1"])
    assert agent.updates == nets.updates == 4
    for name, p in params_of(agent).items():
        np.testing.assert_allclose(p, nets.p[name], rtol=1e-9, atol=1e-12, err_msg=name)
    if cfg is CLIPPING:
        assert clipped_noise > 0 and clipped_action > 0, "both clips of the smoothed target action must act"


def test_bench_products_are_the_steps_products():
    """The benchmark's TD3+BC BLAS floor (gde_ref.bench) uses exactly the BLAS products the reference step
    performs, in order: update 1 (policy_freq 2) is a critic-only step, update 2 a critic step then the actor
    step, and the two make TD3BC_PASSES; GDE on TD3+BC adds the exploration step's (checked against the IQL
    reference in test_update_steps) after each update."""
    assert POLICY_FREQ == TD3BCConfig().policy_freq == 2
    agent = make_agent()
    nets = ref.RefTD3BC(agent)
    rng = np.random.default_rng(11)
    recorded = []
    for _ in range(2):
        nets.rec = reference_steps.Recorder()
        ref.td3bc_step(nets, make_batch(rng), rng.standard_normal((B, ACT)))
        recorded.append([p for p in nets.rec.products if is_blas_product(p)])
        assert len(recorded[-1]) < len(nets.rec.products), "the one-output layers' outer products are loops"
    critic = step_products(TD3BC_CRITIC_PASSES, OBS, ACT, HIDDEN, B)
    assert recorded[0] == critic
    assert recorded[1] == critic + step_products(TD3BC_ACTOR_PASSES, OBS, ACT, HIDDEN, B)
    assert recorded[0] + recorded[1] == step_products(TD3BC_PASSES, OBS, ACT, HIDDEN, B)
    explore = step_products(EXPLORE_PASSES, OBS, ACT, HIDDEN, B)
    assert step_products(GDE_TD3BC_PASSES, OBS, ACT, HIDDEN, B) == recorded[0] + explore + recorded[1] + explore


def test_every_update_gradient_matches_central_differences():
    """Critic loss -> Q1, Q2 (targets from the smoothed target action and the target twins) and the actor
    loss -> the actor (through Q1's input gradient, lambda held constant) agree with central differences
    of the reference losses. Learning rates and Polyak are 0 and policy_freq 1, so the one update takes
    every gradient at the starting parameters and leaves them there."""
    cfg = TD3BCConfig(hidden=HIDDEN, critic_lr=0.0, actor_lr=0.0, polyak=0.0, policy_freq=1, policy_noise=0.5)
    agent = make_agent(seed=3, cfg=cfg)
    b = make_batch(np.random.default_rng(4))
    noise = next_noise(agent)
    before = params_of(agent)
    stats = agent.update(b)
    assert np.isfinite(stats["actor_loss"]), "policy_freq 1: the first update is an actor turn"
    for name, p in params_of(agent).items():
        assert np.array_equal(p, before[name]), f"{name} moved with learning rates 0"
    n = agent.nets(B)
    nets = ref.RefTD3BC(agent)
    lam = ref.actor_loss(nets.p["pi"], nets, b)[3]
    losses = {
        "q1": (n.critics.q1, nets.p["q1"], lambda p: ref.critic_loss(p, nets.p["q2"], nets, b, noise)[0]),
        "q2": (n.critics.q2, nets.p["q2"], lambda p: ref.critic_loss(nets.p["q1"], p, nets, b, noise)[0]),
        "actor": (n.actor, nets.p["pi"], lambda p: ref.actor_loss(p, nets, b, lam)[0]),
    }
    for name, (bundle, p, f) in losses.items():
        x = p.copy()
        numeric = numerical_grad(lambda: f(x), x)
        assert np.abs(numeric).max() > 1e-4, name
        np.testing.assert_allclose(bundle.grads, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_actor_loss_wrapper_gradients():
    """td3bc_actor_loss: the loss is -lam mean q + mean (pi - a)^2 with lam = alpha / mean|q|; dloss/dq is
    the derivative with lam held constant (-lam / B) and dloss/dpi the BC term's, by central differences."""
    rng = np.random.default_rng(5)
    q = rng.standard_normal(B)
    pi, actions = np.tanh(rng.standard_normal((B, ACT))), np.tanh(rng.standard_normal((B, ACT)))
    alpha = 2.5
    lam = alpha / np.mean(np.abs(q))
    loss, d_q, d_pi = td3bc_actor_loss(q, pi, actions, alpha)
    assert loss == pytest.approx(-lam * q.mean() + np.mean((pi - actions) ** 2), rel=1e-12)
    # lam held at its value: alpha' = lam mean|q'| makes the wrapper's lambda equal lam for any perturbed q'
    held = lambda: td3bc_actor_loss(q, pi, actions, lam * np.mean(np.abs(q)))[0]
    np.testing.assert_allclose(d_q, numerical_grad(held, q), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_q, -lam / B, rtol=1e-12)
    np.testing.assert_allclose(d_pi, numerical_grad(lambda: td3bc_actor_loss(q, pi, actions, alpha)[0], pi),
                               rtol=1e-6, atol=1e-9)
    # the undetached derivative differs: the check above does hold lambda constant
    full = numerical_grad(lambda: td3bc_actor_loss(q, pi, actions, alpha)[0], q)
    assert not np.allclose(full, d_q, rtol=1e-3)


def test_actor_loss_rejects_bad_input():
    """Shape mismatches, alpha <= 0, an all-zero q (lambda undefined) and mixed dtypes are clear errors."""
    rng = np.random.default_rng(6)
    q, pi, actions = rng.standard_normal(B), rng.standard_normal((B, ACT)), rng.standard_normal((B, ACT))
    with pytest.raises(ValueError, match=r"pi must have shape \(8, B\)"):
        td3bc_actor_loss(q, pi[:5], actions[:5])
    with pytest.raises(ValueError, match=r"actions must have shape \(8, 2\)"):
        td3bc_actor_loss(q, pi, actions[:, :1])
    with pytest.raises(ValueError, match="q_pi must be 1-D"):
        td3bc_actor_loss(q[:, None], pi, actions)
    for alpha in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"alpha must be in \(0.0, inf\]"):
            td3bc_actor_loss(q, pi, actions, alpha)
    with pytest.raises(ValueError, match="lambda = alpha / mean|Q| is undefined"):
        td3bc_actor_loss(np.zeros(B), pi, actions)
    with pytest.raises(TypeError, match="share one dtype"):
        td3bc_actor_loss(q.astype(np.float32), pi, actions)


def test_same_seed_bit_identical_state():
    """Two float32 agents with one seed and the same 6 batches end bit-identical in every array of state()
    (and in the noise generator and count); another seed gives other parameters."""
    def run(seed):
        agent = TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=HIDDEN), seed=seed, dtype=np.float32)
        rng = np.random.default_rng(7)
        run_updates(agent, [make_batch(rng, np.float32) for _ in range(6)])
        return agent
    a, b, c = run(0), run(0), run(1)
    sa, sb = a.state(), b.state()
    for name, value in sa.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, sb[name]), name
        else:
            assert value == sb[name], name
    assert not np.array_equal(a.q1.params, c.q1.params)
    assert not np.array_equal(a.actor.params, c.actor.params)


def test_state_round_trip_continues_identically():
    """A state() copy taken after 3 updates, loaded into an agent of another seed (which has already run an
    update of its own), continues bit-identically for 3 more updates: arrays, noise generator and update
    count (update 4 is an actor turn) are all part of the state."""
    rng = np.random.default_rng(8)
    first, more = [make_batch(rng, np.float32) for _ in range(3)], [make_batch(rng, np.float32) for _ in range(3)]
    agent = TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=HIDDEN), seed=0, dtype=np.float32)
    run_updates(agent, first)
    saved = {k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in agent.state().items()}
    other = TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=HIDDEN), seed=1, dtype=np.float32)
    other.update(more[0])                              # its compiled records exist before the load
    other.load_state(saved)
    assert other.updates == 3
    for name, value in arrays_of(agent).items():
        assert np.array_equal(arrays_of(other)[name], value), name
    run_updates(agent, more)
    run_updates(other, more)
    a, o = arrays_of(agent), arrays_of(other)
    for name in a:
        assert np.array_equal(a[name], o[name]), name
    assert not np.array_equal(a["actor"], saved["actor"]), "the actor must have moved after the load"
    assert agent.updates == other.updates == 6


def test_act_mean_and_exploration_noise():
    """act(obs) is tanh(actor(obs)) as a new array; act(obs, rng) samples lie in [-1, 1], centred on it with
    std exploration_std (0.1), times the temperature; a huge temperature clips to +-1."""
    agent = TD3BCAgent(OBS, ACT, TD3BCConfig(hidden=HIDDEN), seed=0, dtype=np.float64)
    obs = 0.3 * np.random.default_rng(9).standard_normal(OBS)
    mean = agent.act(obs)
    np.testing.assert_allclose(mean, np.tanh(agent.actor.forward(obs[None]))[0], rtol=1e-12, atol=1e-14)
    assert agent.act(obs) is not mean
    assert np.abs(mean).max() < 0.6, "the test needs a mean well inside [-1, 1]"
    rng = np.random.default_rng(10)
    for temperature in (1.0, 2.0):
        samples = np.array([agent.act(obs, rng, temperature) for _ in range(4000)])
        assert samples.min() >= -1 and samples.max() <= 1
        np.testing.assert_allclose(samples.mean(0), mean, atol=0.02 * temperature)
        np.testing.assert_allclose(samples.std(0), 0.1 * temperature, rtol=0.1)
    wide = np.array([agent.act(obs, rng, 100.0) for _ in range(200)])
    assert wide.min() == -1 and wide.max() == 1
    with pytest.raises(TypeError, match="float64"):
        agent.act(obs.astype(np.float32))
