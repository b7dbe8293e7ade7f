"""BpIQL (Table 1, B.6): the mixing weight's loss and gradient, the prior's data and fit, acting from the
mixture, and a quick CLI run that resumes bit-identically."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from gde_ref.agents.iql import IQLAgent
from gde_ref.checkpoint import load_npz
from gde_ref.cli import main
from gde_ref.config import IQLConfig
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.experiments.finetune import RunInterrupted, finetune
from gde_ref.experiments.pretrain import save_offline
from gde_ref.finetune.bpiql import BpIQLConfig, BpIQLFinetuner, consecutive_action_pairs
from gde_ref.losses.priors import mixing_weight_loss, sigmoid
from gradcheck import numerical_grad
from test_finetune_cli import tiny_dataset

SMALL = IQLConfig(hidden=(32, 32), batch_size=32)


def test_mixing_weight_loss_matches_its_definition_and_central_differences():
    rng = np.random.default_rng(0)
    z, qp, qa = rng.normal(size=7) * 3, rng.normal(size=7), rng.normal(size=7)
    loss, grad = mixing_weight_loss(z, qp, qa)
    assert loss == pytest.approx(-np.mean(1 / (1 + np.exp(-z)) * (qp - qa)), rel=1e-12)
    probe = z.copy()
    np.testing.assert_allclose(grad, numerical_grad(lambda: mixing_weight_loss(probe, qp, qa)[0], probe),
                               rtol=1e-6, atol=1e-10)
    # the prior's share grows (dL/dz < 0) exactly where its action is valued higher
    assert np.array_equal(grad < 0, qp > qa)
    assert sigmoid(np.array([-800.0, 0.0, 800.0])).tolist() == [0.0, 0.5, 1.0]


def trajectories(act_dim=3, lengths=(5, 4, 6), seed=0):
    """Episodes with actions a_{t+1} = 0.5 a_t + 0.4 u, u ~ U(-1, 1) (so E[a_{t+1} | a_t] = 0.5 a_t); the second ends by a time limit, the others by
    a terminal; states are the step counters so that s'_t = s_{t+1} inside an episode only."""
    rng = np.random.default_rng(seed)
    obs, nxt, actions, terms, timeouts = [], [], [], [], []
    for e, n in enumerate(lengths):
        a = rng.uniform(-0.8, 0.8, act_dim)
        for t in range(n):
            obs.append([e, t]), nxt.append([e, t + 1]), actions.append(a.copy())
            terms.append(t == n - 1 and e != 1), timeouts.append(t == n - 1 and e == 1)
            a = 0.5 * a + 0.4 * rng.uniform(-1, 1, act_dim)
    return SimpleNamespace(observations=np.array(obs, np.float32), next_observations=np.array(nxt, np.float32),
                           actions=np.array(actions, np.float32), terminals=np.array(terms), source="test",
                           timeouts=np.array(timeouts), rewards=np.zeros(len(obs), np.float32))


def test_action_pairs_stay_inside_episodes():
    data = trajectories()
    prev, following = consecutive_action_pairs(data)
    assert len(prev) == (5 - 1) + (4 - 1) + (6 - 1)
    starts = {0, 5, 9}     # the first action of each episode never follows another
    firsts = [i for i in range(len(data.actions)) if i not in starts]
    np.testing.assert_array_equal(following, data.actions[firsts])
    np.testing.assert_array_equal(prev, data.actions[[i - 1 for i in firsts]])
    shuffled = SimpleNamespace(**{**vars(data), "observations": data.observations + 100})
    with pytest.raises(ValueError, match="consecutive"):
        consecutive_action_pairs(shuffled)


def learner(data, lambda_init=0.95, prior_steps=300, prior_lr=3e-4):
    agent = IQLAgent(2, 3, SMALL, seed=0)
    cfg = BpIQLConfig(prior_hidden=(32, 32), prior_steps=prior_steps, lambda_hidden=(16, 16), lambda_init=lambda_init,
                      prior_lr=prior_lr)
    return BpIQLFinetuner(agent, ObsNormalizer.identity(2), 1.0, data, cfg, seed=3)


def test_the_prior_learns_the_data_s_action_dynamics():
    data = trajectories(lengths=(200,) * 20)
    bp = learner(data, prior_steps=3000, prior_lr=1e-3)   # Adam moves log sigma <= lr per step
    prev, _ = consecutive_action_pairs(data)
    error = np.abs(np.tanh(bp.prior.forward(prev)) - 0.5 * prev)
    assert error.mean() < 0.03 and np.percentile(error, 90) < 0.06   # noise std 0.23 on each pair, minibatch Adam
    # sigma: from exp(0) = 1 to about the noise's std, 0.4 / sqrt(3) = 0.23
    np.testing.assert_allclose(np.exp(bp.prior.views["extra"]), 0.4 / np.sqrt(3), rtol=0.25)


@pytest.mark.parametrize("lambda_init, from_prior", [(1 - 1e-6, True), (1e-6, False)])
def test_acting_follows_the_mixing_weight(lambda_init, from_prior):
    """Lambda ~ 1: every action is the prior's given the previous one (the first from the offline actions);
    Lambda ~ 0: every action is the policy's."""
    data = trajectories()
    bp = learner(data, lambda_init)
    rng, obs = np.random.default_rng(1), np.zeros(2, np.float32)
    actions = [bp.explore_action(obs, rng).copy() for _ in range(50)]
    assert bp.prior_actions == (50 if from_prior else 0) and bp.actions == 50
    replay = np.random.default_rng(1)
    if from_prior:
        start = data.actions[replay.integers(0, len(data.actions))]
        replay.random()
        want = np.clip(np.tanh(bp.prior.forward(start[None])[0])
                       + np.exp(bp.prior.views["extra"]) * replay.standard_normal(3), -1, 1)
    else:
        replay.integers(0, len(data.actions)), replay.random()
        want = np.clip(np.tanh(bp.agent.actor.forward(obs[None])[0])
                       + np.exp(np.clip(bp.agent.actor.views["extra"], -5, 2)) * replay.standard_normal(3), -1, 1)
    np.testing.assert_allclose(actions[0], want, rtol=1e-5, atol=1e-6)
    bp.end_episode(0.0, 50)
    assert bp.episode_start


def test_update_moves_lambda_towards_the_better_valued_actions_and_leaves_the_prior():
    data = trajectories()
    bp = learner(data)
    from gde_ref.data.batch import Batch
    rng = np.random.default_rng(2)
    batch = Batch(rng.normal(size=(32, 2)).astype(np.float32), rng.uniform(-1, 1, (32, 3)).astype(np.float32),
                  rng.normal(size=32).astype(np.float32), np.full(32, 0.99, np.float32),
                  rng.normal(size=(32, 2)).astype(np.float32))
    prior, mixing, actor = bp.prior.params.copy(), bp.mixing.params.copy(), bp.agent.actor.params.copy()
    stats = bp.update(batch, 0.0)
    assert np.array_equal(prior, bp.prior.params), "the prior is fitted once, before fine-tuning"
    assert not np.array_equal(mixing, bp.mixing.params) and not np.array_equal(actor, bp.agent.actor.params)
    assert {"mixing_loss", "lambda_mean", "critic_loss"} <= stats.keys() and 0 < stats["lambda_mean"] < 1


@pytest.mark.parametrize("prior_better", [True, False])
def test_update_moves_lambda_towards_the_better_valued_actions(prior_better):
    """Q(s, a) = sum(a), the prior's actions near +1 and the policy's near -1 (or the reverse): Lambda, the
    prior's share, rises at every batch state when the prior's actions are valued higher, and falls when not."""
    from gde_ref.data.batch import Batch
    bp = learner(trajectories(), lambda_init=0.5)
    sign = 1.0 if prior_better else -1.0
    bp.prior.views["2.bias"][:], bp.prior.views["extra"][:] = 5.0 * sign, -5.0
    bp.agent.actor.views["2.bias"][:], bp.agent.actor.views["extra"][:] = -5.0 * sign, -5.0
    bp.agent.q_values = lambda states, actions: actions.sum(1)
    rng = np.random.default_rng(2)
    batch = Batch(rng.normal(size=(32, 2)).astype(np.float32), rng.uniform(-1, 1, (32, 3)).astype(np.float32),
                  rng.normal(size=32).astype(np.float32), np.full(32, 0.99, np.float32),
                  rng.normal(size=(32, 2)).astype(np.float32))
    before = sigmoid(bp.mixing.forward(batch.next_obs)[:, 0])
    for _ in range(3):
        bp.update(batch, 0.0)
    after = sigmoid(bp.mixing.forward(batch.next_obs)[:, 0])
    assert np.all(after > before) if prior_better else np.all(after < before)


def test_quick_run_resumes_bit_identically(tmp_path, monkeypatch, capsys):
    tiny_dataset(tmp_path / "minari", monkeypatch)
    agent = tmp_path / "offline.npz"
    save_offline(agent, IQLAgent(11, 3, SMALL, seed=0), ObsNormalizer.identity(11),
                 {"task": "hopper", "dataset": "hopper-medium", "reward_scale": 1.0})
    args = ["finetune", "--json", "--dataset", "hopper-medium", "--algo", "bpiql", "--from", str(agent), "--steps",
            "400", "--seed", "1", "--preset", "quick", "--checkpoint-period", "200"]
    assert main([*args, "--out", str(tmp_path / "A")]) == 0
    summary_a = json.loads(capsys.readouterr().out)
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "bpiql", str(tmp_path / "B"), offline_path=str(agent), interrupt_at=100, steps=400,
                 seed=1, preset="quick", checkpoint_period=200)
    assert main(["finetune", "--json", "--out", str(tmp_path / "B"), "--resume"]) == 0
    summary_b = json.loads(capsys.readouterr().out)
    a, meta_a = load_npz(tmp_path / "A" / "checkpoint.npz")
    b, meta_b = load_npz(tmp_path / "B" / "checkpoint.npz")
    assert a.keys() == b.keys() and "learner/mixing" in a and "learner/prior" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k, strict=True)
    assert meta_a == meta_b
    speed = "env_steps_per_second"
    assert {k: v for k, v in summary_a.items() if k != speed} == {k: v for k, v in summary_b.items() if k != speed}


def test_raw_inputs_are_normalised_once():
    """With the data's normaliser and reward scale, fed raw observations and batches, BpIQL acts (Lambda, prior
    and policy) and updates (IQL and Lambda) exactly as its twin with the identity and scale 1 fed the
    normalised ones."""
    from gde_ref.data.batch import Batch
    data = trajectories()
    norm, scale = ObsNormalizer(np.array([2.0, -1.0], np.float32), np.array([0.25, 3.0], np.float32)), np.float32(7.0)
    cfg = BpIQLConfig(prior_hidden=(32, 32), prior_steps=50, lambda_hidden=(16, 16), lambda_init=0.5)
    raw_learner = BpIQLFinetuner(IQLAgent(2, 3, SMALL, seed=0), norm, scale, data, cfg, seed=3)
    twin = BpIQLFinetuner(IQLAgent(2, 3, SMALL, seed=0), ObsNormalizer.identity(2), 1.0, data, cfg, seed=3)
    rng = np.random.default_rng(2)
    obs = (3.0 * rng.normal(size=(32, 2)) + 1.0).astype(np.float32)
    x = (obs - norm.mean) / norm.std
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    for t in range(20):
        np.testing.assert_array_equal(raw_learner.explore_action(obs[t], r1), twin.explore_action(x[t], r2))
        np.testing.assert_array_equal(raw_learner.exploit_action(obs[t]), twin.exploit_action(x[t]))
    assert 0 < raw_learner.prior_actions < 20, "both the prior and the policy acted"
    raw = Batch(obs, rng.uniform(-1, 1, (32, 3)).astype(np.float32), rng.normal(size=32).astype(np.float32),
                np.full(32, 0.99, np.float32), obs[::-1].copy())
    assert raw_learner.update(raw, 0.0) == twin.update(raw._replace(obs=x, next_obs=x[::-1].copy(),
                                                                    rewards=raw.rewards * scale), 0.0)
    for name, arr in twin.state().items():
        if isinstance(arr, np.ndarray):
            np.testing.assert_array_equal(raw_learner.state()[name], arr, err_msg=name)


def test_a_state_of_another_learner_is_one_clear_error():
    bp = learner(trajectories())
    other = {k: v for k, v in bp.state().items() if not k.startswith(("prior", "mixing"))}
    with pytest.raises(ValueError, match="no BpIQL prior or mixing weight .*saved by another algorithm"):
        bp.load_state(other)
