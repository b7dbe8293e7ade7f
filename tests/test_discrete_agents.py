"""The toy maze's discrete agents: QAgent (DQN / discrete CQL, gde_ref.agents.dqn) and the RND bonus
(gde_ref.agents.rnd).

QAgent's compiled step is checked against a slow float64 NumPy version written here from the equations
(TD target with a max over the target network's next actions, the CQL penalty, their gradient through
the MLP, Adam, the hard target update), its gradient against central differences, and its behaviour:
CQL pushes down actions the data never takes. The maze's softmax control updates its critic by that same
CQL alpha = 3 step. RND: rarely seen observations get the larger bonus, and
the running observation statistics equal the statistics of everything observed.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import reference_steps as ref
from gde_ref.agents.dqn import QAgent, check_discrete_batch, q_learning_kernel
from gde_ref.agents.rnd import RND
from gde_ref.data import Batch
from gde_ref.envs.maze import ToyMaze
from gradcheck import numerical_grad

MAZE = ToyMaze()
N_ACT, B, HIDDEN = 4, 16, (16, 16)


def maze_batch(rng, n=B, gamma=0.99):
    """Real maze transitions from random (non-goal) cells and random actions, as float32 one-hots."""
    free = [i for i, cell in enumerate(MAZE.cells) if cell not in MAZE.goals]
    cells = rng.choice(free, n)
    actions = rng.integers(0, N_ACT, n)
    nxt = MAZE.next_cell[cells, actions]
    terminal = np.isin(nxt, list(MAZE.goal_of))
    eye = np.eye(MAZE.obs_dim, dtype=np.float32)
    return Batch(eye[cells], actions, -np.ones(n, np.float32), (gamma * ~terminal).astype(np.float32), eye[nxt])


def random_batch(rng, obs_dim, n=B):
    """Dense random observations (every input weight gets a gradient), some terminals, varied rewards."""
    return Batch(rng.standard_normal((n, obs_dim)).astype(np.float32), rng.integers(0, N_ACT, n),
                 rng.standard_normal(n).astype(np.float32), (0.99 * (rng.random(n) > 0.25)).astype(np.float32),
                 rng.standard_normal((n, obs_dim)).astype(np.float32))


# ------------------------------------------------------------------------------------------------
# the slow float64 reference
# ------------------------------------------------------------------------------------------------
def q_loss(params, target_params, sizes, b, alpha):
    """(total, td, penalty, mean Q(s,a), activations, dtotal/dQ (B, K)) of
    mean_i (Q(s_i,a_i) - y_i)^2 + alpha mean_i [logsumexp_a Q(s_i, a) - Q(s_i, a_i)],
    y_i = r_i + discount_i max_a' Q_target(s'_i, a')."""
    rec = ref.Recorder()
    obs, next_obs = b.obs.astype(np.float64), b.next_obs.astype(np.float64)
    acts = ref.forward(params, sizes, obs, rec)
    q = acts[-1]
    n, rows = len(b.actions), np.arange(len(b.actions))
    y = b.rewards.astype(np.float64) + b.discounts.astype(np.float64) * \
        ref.forward(target_params, sizes, next_obs, rec)[-1].max(axis=1)
    q_taken = q[rows, b.actions]
    td = np.mean((q_taken - y) ** 2)
    penalty = alpha * np.mean(logsumexp(q, axis=1) - q_taken)
    d_q = np.zeros_like(q)
    d_q[rows, b.actions] = 2 * (q_taken - y) / n
    one_hot = np.zeros_like(q)
    one_hot[rows, b.actions] = 1.0
    d_q += alpha / n * (softmax(q, axis=1) - one_hot)
    return td + penalty, td, penalty, q_taken.mean(), acts, d_q


class RefQ:
    """Float64 copies of a QAgent's network, target and Adam state, stepped by the equations."""

    def __init__(self, agent):
        self.sizes = agent.q.sizes
        self.p = agent.q.params.astype(np.float64)
        self.target = agent.q_target.astype(np.float64)
        self.m, self.v, self.t = np.zeros_like(self.p), np.zeros_like(self.p), 0
        self.alpha, self.lr, self.period, self.updates = agent.cql_alpha, agent.lr, agent.target_period, 0

    def step(self, b):
        _, td, penalty, q_mean, acts, d_q = q_loss(self.p, self.target, self.sizes, b, self.alpha)
        grads, _ = ref.backward(self.p, self.sizes, acts, d_q, ref.Recorder())
        self.t = ref.adam(self.p, grads, self.m, self.v, self.t, self.lr)
        self.updates += 1
        if self.updates % self.period == 0:
            self.target[:] = self.p
        return {"td_loss": td, "cql_penalty": penalty, "q_mean": q_mean}


# ------------------------------------------------------------------------------------------------
# QAgent's step against the reference
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_one_step_matches_reference(alpha):
    """One DQN / CQL step (maze one-hots): same stats and parameters as the float64 reference."""
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, lr=1e-3, cql_alpha=alpha, seed=0)
    agent.q_target += 0.1 * np.random.default_rng(9).standard_normal(agent.q_target.size).astype(np.float32)
    nets = RefQ(agent)
    b = maze_batch(np.random.default_rng(1))
    stats, expected = agent.update(b), nets.step(b)
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert (stats["cql_penalty"] > 0) == (alpha > 0)
    np.testing.assert_allclose(agent.q.params, nets.p, rtol=1e-5, atol=1e-7)
    assert not np.allclose(agent.q.params, agent.q_target), "the step must move Q, not its target"


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_several_steps_and_hard_target_updates_match_reference(alpha):
    """Seven steps with target_period 3 (target copied after steps 3 and 6), dense random inputs."""
    obs_dim = 6
    agent = QAgent(obs_dim, N_ACT, HIDDEN, lr=3e-3, cql_alpha=alpha, target_period=3, seed=2)
    nets = RefQ(agent)
    rng = np.random.default_rng(3)
    for _ in range(7):
        b = random_batch(rng, obs_dim)
        stats, expected = agent.update(b), nets.step(b)
        for name, value in expected.items():
            assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert agent.updates == 7
    np.testing.assert_allclose(agent.q.params, nets.p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(agent.q_target, nets.target, rtol=1e-5, atol=1e-6)


def test_hard_target_update_every_target_period_updates():
    """The target is an exact copy of Q right after updates 4, 8, 12 and unchanged in between."""
    agent = QAgent(MAZE.obs_dim, N_ACT, (8,), lr=1e-2, target_period=4, seed=4)
    rng = np.random.default_rng(5)
    copied = agent.q.params.copy()
    for step in range(1, 13):
        agent.update(maze_batch(rng))
        if step % 4 == 0:
            assert np.array_equal(agent.q_target, agent.q.params), step
            copied = agent.q.params.copy()
        else:
            assert np.array_equal(agent.q_target, copied), step
            assert not np.array_equal(agent.q_target, agent.q.params), step


def test_loss_gradient_matches_central_differences():
    """d(TD + CQL)/d(Q parameters): the float32 kernel's gradient buffer against float64 central
    differences of the reference loss (lr = 0, so the step leaves the parameters in place).

    The reference's own analytic gradient must match the differences to float64 precision; the float32
    kernel to float32 precision (relative to the gradient's scale).
    """
    obs_dim, alpha = 5, 3.0
    agent = QAgent(obs_dim, N_ACT, (8, 8), lr=0.0, cql_alpha=alpha, seed=6)
    agent.q_target += 0.2 * np.random.default_rng(7).standard_normal(agent.q_target.size).astype(np.float32)
    b = random_batch(np.random.default_rng(8), obs_dim, n=12)
    before = agent.q.params.copy()
    agent.update(b)
    assert np.array_equal(agent.q.params, before), "lr = 0 must leave the parameters unchanged"
    kernel_grads = agent._bundle(12)[0].grads.astype(np.float64)

    p = agent.q.params.astype(np.float64)
    target = agent.q_target.astype(np.float64)
    numeric = numerical_grad(lambda: q_loss(p, target, agent.q.sizes, b, alpha)[0], p)
    _, _, _, _, acts, d_q = q_loss(p, target, agent.q.sizes, b, alpha)
    analytic, _ = ref.backward(p, agent.q.sizes, acts, d_q, ref.Recorder())
    scale = np.abs(numeric).max()
    assert scale > 1e-2 and np.count_nonzero(numeric) > numeric.size // 2
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8 * scale)
    np.testing.assert_allclose(kernel_grads, numeric, rtol=1e-4, atol=1e-6 * scale)

    # the CQL part alone has a gradient too: alpha = 0 gives a different buffer
    dqn = agent.copy(cql_alpha=0.0)
    dqn.update(b)
    td_only = numerical_grad(lambda: q_loss(p, target, agent.q.sizes, b, 0.0)[0], p)
    np.testing.assert_allclose(dqn._bundle(12)[0].grads, td_only, rtol=1e-4, atol=1e-6 * scale)
    assert np.abs(td_only - numeric).max() > 1e-3 * scale


def test_kernel_stats_match_reference_loss_terms():
    """q_learning_kernel called directly fills stats = (TD loss, CQL penalty, mean Q(s, a))."""
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, lr=0.0, seed=10)
    b = check_discrete_batch("test", maze_batch(np.random.default_rng(11)), MAZE.obs_dim, N_ACT)
    q, q_target = agent._bundle(B)
    stats = np.zeros(3)
    q_learning_kernel(q, q_target, b, 1.5, 0.0, stats)
    _, td, penalty, q_mean, _, _ = q_loss(agent.q.params.astype(np.float64), agent.q_target.astype(np.float64),
                                          agent.q.sizes, b, 1.5)
    np.testing.assert_allclose(stats, [td, penalty, q_mean], rtol=1e-5, atol=1e-7)


def test_softmax_control_updates_its_critic_with_cql_alpha3():
    """The maze's softmax control (``cql_alpha3_softmax``, SoftmaxQFinetuner) fine-tunes its critic exactly as
    ``cql_alpha3`` does: a copy of the offline network with alpha = 3 and lr ``finetune_lr``, each update one
    step of TD + 3 * CQL penalty (the float64 reference above), the same parameters as the epsilon-greedy
    learner's after the same batches; only the data-collecting policy differs."""
    from gde_ref.experiments.maze_fig2 import make_learner, preset
    from gde_ref.finetune.discrete import QFinetuner, SoftmaxQFinetuner
    cfg = preset("default")
    offline = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, lr=cfg.lr, cql_alpha=0.5, target_period=3, seed=27)
    control, cql = make_learner("cql_alpha3_softmax", offline, cfg), make_learner("cql_alpha3", offline, cfg)
    assert isinstance(control, SoftmaxQFinetuner) and isinstance(cql, QFinetuner)
    assert control.agent is not offline and control.agent.q.params is not offline.q.params
    assert (control.agent.cql_alpha, control.agent.lr) == (cql.agent.cql_alpha, cql.agent.lr) == (3.0, cfg.finetune_lr)
    assert control.temperature == cfg.temperature == 1.0
    control.agent.lr = cql.agent.lr = 1e-2    # large steps, so that the comparison sees the penalty's share
    nets = RefQ(control.agent)
    rng = np.random.default_rng(28)
    for step in range(5):
        b = maze_batch(rng)
        stats, expected = control.update(b, step / 5), nets.step(b)
        cql.update(b, step / 5)
        for name, value in expected.items():
            assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
        assert stats["cql_penalty"] > 0
    np.testing.assert_allclose(control.agent.q.params, nets.p, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(control.agent.q.params, cql.agent.q.params)
    np.testing.assert_array_equal(control.agent.q_target, cql.agent.q_target)
    dqn = make_learner("dqn_alpha0", offline, cfg)   # without the penalty the same batches go elsewhere
    dqn.agent.lr = 1e-2
    rng = np.random.default_rng(28)
    for step in range(5):
        dqn.update(maze_batch(rng), step / 5)
    assert np.abs(dqn.agent.q.params - control.agent.q.params).max() > 1e-3


# ------------------------------------------------------------------------------------------------
# behaviour: CQL is conservative on actions absent from the data
# ------------------------------------------------------------------------------------------------
def test_cql_lowers_actions_absent_from_the_data():
    """All four actions are in the data for the cells next to S, but S itself never has 'right'. After
    the same training, CQL (alpha = 3) ranks the unseen action lower (relative to the seen ones) than
    DQN (alpha = 0) does. DQN has no loss term on it at all and here even ranks it above the seen ones."""
    start = MAZE.index[MAZE.start]
    near = [start, MAZE.index[(5, 1)], MAZE.index[(5, 2)], MAZE.index[(6, 2)], MAZE.index[(6, 3)]]
    pairs = [(s, a) for s in near for a in range(N_ACT) if not (s == start and a == 3)]
    cells, actions = np.array(pairs).T
    eye = np.eye(MAZE.obs_dim, dtype=np.float32)
    data = Batch(eye[cells], actions, -np.ones(len(cells), np.float32), np.full(len(cells), 0.9, np.float32),
                 eye[MAZE.next_cell[cells, actions]])

    def gap(alpha):
        agent = QAgent(MAZE.obs_dim, N_ACT, (32, 32), lr=3e-3, cql_alpha=alpha, target_period=20, seed=12)
        for _ in range(400):
            agent.update(data)
        q = agent.q_values(eye[[start]])[0]
        return q[3] - q[:3].mean()

    dqn_gap, cql_gap = gap(0.0), gap(3.0)
    assert cql_gap < dqn_gap - 1.0, (dqn_gap, cql_gap)
    assert dqn_gap > 0.0, "with no data on the action, DQN's estimate of it is optimistic here"
    assert cql_gap < 0.0, "CQL must rank the unseen action below the seen ones"


# ------------------------------------------------------------------------------------------------
# acting, copies, validation
# ------------------------------------------------------------------------------------------------
def test_greedy_and_epsilon_greedy():
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, seed=13)
    rng = np.random.default_rng(14)
    for i in range(0, MAZE.obs_dim, 7):
        obs = MAZE.observation(i)
        best = int(np.argmax(agent.q_values(obs[None])[0]))
        assert agent.greedy(obs) == best
        assert all(agent.act(obs, rng, 0.0) == best for _ in range(20))
    obs = MAZE.observation(0)
    draws = np.array([agent.act(obs, np.random.default_rng(15), 1.0)] +
                     [agent.act(obs, rng, 1.0) for _ in range(3999)])
    counts = np.bincount(draws, minlength=N_ACT)
    assert counts.size == N_ACT and np.all(np.abs(counts / draws.size - 0.25) < 0.03), counts
    same = [agent.act(obs, np.random.default_rng(16), 1.0) for _ in range(5)]
    assert len(set(same)) == 1, "a seeded rng gives reproducible actions"
    half = np.array([agent.act(obs, rng, 0.5) for _ in range(4000)])
    assert abs(np.mean(half == agent.greedy(obs)) - (0.5 + 0.5 / N_ACT)) < 0.03
    with pytest.raises(ValueError, match="shape"):
        agent.greedy(np.zeros(MAZE.obs_dim + 1, np.float32))
    with pytest.raises(TypeError, match="float32"):
        agent.greedy(np.zeros(MAZE.obs_dim))


def test_copy_is_independent_and_sets_alpha():
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, cql_alpha=3.0, target_period=2, seed=17)
    rng = np.random.default_rng(18)
    agent.update(maze_batch(rng))
    twin = agent.copy(cql_alpha=0.0)
    assert (twin.cql_alpha, agent.cql_alpha) == (0.0, 3.0) and agent.copy().cql_alpha == 3.0
    assert np.array_equal(twin.q.params, agent.q.params) and np.array_equal(twin.q_target, agent.q_target)
    assert twin.updates == agent.updates == 1 and twin.adam.t[0] == agent.adam.t[0] == 1
    saved = {"q": agent.q.params.copy(), "target": agent.q_target.copy(), "m": agent.adam.m.copy(),
             "v": agent.adam.v.copy(), "t": agent.adam.t.copy()}
    for _ in range(3):
        twin.update(maze_batch(rng))
    assert twin.updates == 4 and agent.updates == 1
    current = {"q": agent.q.params, "target": agent.q_target, "m": agent.adam.m, "v": agent.adam.v,
               "t": agent.adam.t}
    for name, value in saved.items():
        assert np.array_equal(current[name], value), f"training the copy changed the original's {name}"
    assert not np.array_equal(twin.q.params, agent.q.params)
    # and the other way round
    twin_q = twin.q.params.copy()
    agent.update(maze_batch(rng))
    assert np.array_equal(twin.q.params, twin_q)
    # a copy continues exactly like the original would (same optimiser state)
    a, b = agent.copy(), agent.copy()
    batch = maze_batch(rng)
    a.update(batch)
    b.update(batch)
    assert np.array_equal(a.q.params, b.q.params)
    with pytest.raises(ValueError, match="cql_alpha"):
        agent.copy(cql_alpha=-1.0)


def test_bad_batches_raise_clear_errors():
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, seed=19)
    good = maze_batch(np.random.default_rng(20), n=8)
    before = agent.q.params.copy()
    cases = [
        (tuple(good), TypeError, "gde_ref.data.Batch"),
        (good._replace(obs=good.obs.astype(np.float64)), TypeError, "batch.obs must have dtype float32"),
        (good._replace(obs=good.obs[:, :-1]), ValueError, rf"batch.obs must have shape \(B, {MAZE.obs_dim}\)"),
        (good._replace(actions=good.actions.astype(np.float32)), ValueError, r"batch.actions must be \(8,\) integers"),
        (good._replace(actions=good.actions[:5]), ValueError, r"batch.actions must be \(8,\) integers"),
        (good._replace(actions=np.full(8, 4)), ValueError, r"batch.actions must lie in \[0, 4\)"),
        (good._replace(actions=np.full(8, -1)), ValueError, r"batch.actions must lie in \[0, 4\)"),
        (good._replace(rewards=good.rewards[:3]), ValueError, r"batch.rewards must have shape \(8,\)"),
        (good._replace(discounts=good.discounts.astype(np.float64)), TypeError, "batch.discounts must have dtype"),
        (good._replace(next_obs=good.next_obs[:4]), ValueError, rf"batch.next_obs must have shape \(8, {MAZE.obs_dim}\)"),
        (good._replace(rewards=good.rewards.tolist()), TypeError, "batch.rewards must be a numpy array"),
    ]
    for batch, error, message in cases:
        with pytest.raises(error, match=message):
            agent.update(batch)
    assert np.array_equal(agent.q.params, before) and agent.updates == 0 and agent.adam.t[0] == 0
    with pytest.raises(ValueError, match="cql_alpha"):
        QAgent(MAZE.obs_dim, N_ACT, cql_alpha=-0.5)
    assert agent.update(good)["td_loss"] > 0   # the good batch itself is fine


def test_empty_batch_is_rejected():
    agent = QAgent(MAZE.obs_dim, N_ACT, HIDDEN, seed=21)
    empty = maze_batch(np.random.default_rng(22), n=0)
    with pytest.raises(ValueError, match="empty|at least one"):
        agent.update(empty)


# ------------------------------------------------------------------------------------------------
# RND
# ------------------------------------------------------------------------------------------------
def test_rnd_bonus_is_larger_for_unseen_cells():
    """Train the predictor on a few maze cells only: afterwards their bonus is below every unseen cell's."""
    rnd = RND(MAZE.obs_dim, hidden=(32, 32), features=8, lr=1e-3, seed=23)
    eye = np.eye(MAZE.obs_dim, dtype=np.float32)
    seen = np.array([0, 1, 2, 3])
    unseen = np.array([40, 60, 80, MAZE.obs_dim - 1])
    data = eye[np.repeat(seen, 4)]                       # (16, obs_dim)
    rnd.observe(data)
    first = rnd.bonus_and_update(data)
    for _ in range(300):
        bonus = rnd.bonus_and_update(data)
    assert bonus.shape == (16,) and bonus.dtype == np.float32
    assert bonus.mean() < 0.1 * first.mean(), "the predictor must learn the seen cells"
    rnd.lr = 0.0                                         # probe without training on the unseen cells
    probe = rnd.bonus_and_update(eye[np.concatenate([seen, unseen] * 2)])
    assert probe[:4].max() < probe[4:8].min(), probe
    assert probe[4:8].min() > 10 * probe[:4].max(), probe


def test_rnd_observe_running_statistics_equal_full_data_statistics():
    """The Chan et al. merge of batch means/variances gives np.mean / np.var of everything observed."""
    rnd = RND(7, seed=24)
    rng = np.random.default_rng(25)
    np.testing.assert_array_equal(rnd.obs_mean, np.zeros(7))   # before any data: identity normalisation
    np.testing.assert_array_equal(rnd.obs_var, np.ones(7))
    seen = []
    for n in (1, 5, 64, 3, 200):
        batch = (rng.standard_normal((n, 7)) * np.arange(1, 8) + np.arange(7) * 10).astype(np.float32)
        rnd.observe(batch)
        seen.append(batch.astype(np.float64))
        all_data = np.concatenate(seen)
        assert rnd.obs_count == len(all_data)
        np.testing.assert_allclose(rnd.obs_mean, all_data.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rnd.obs_var, all_data.var(0), rtol=1e-10, atol=1e-12)
    one_hots = np.eye(7, dtype=np.float32)[[0, 0, 3]]
    fresh = RND(7, seed=26)
    fresh.observe(one_hots[:1])
    fresh.observe(one_hots[1:].reshape(1, 2, 7))          # any leading shape
    np.testing.assert_allclose(fresh.obs_var, one_hots.astype(np.float64).var(0), atol=1e-15)


RND_WRONG_SHAPE = textwrap.dedent("""
    import numpy as np
    from gde_ref.agents.rnd import RND
    rnd = RND(6, hidden=(8, 8), features=4)
    rnd.bonus_and_update(np.zeros((5, 6), np.float32))
    try:
        rnd.bonus_and_update(np.zeros((5, 7), np.float32))
    except ValueError as e:
        print("ValueError:", e)
    else:
        print("accepted")
""")


def test_rnd_rejects_observations_of_the_wrong_size():
    """Run in a subprocess: the unchecked call corrupts memory and could take the test process down."""
    done = subprocess.run([sys.executable, "-c", RND_WRONG_SHAPE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ValueError") and "obs" in done.stdout, \
        (done.returncode, done.stdout, done.stderr[-500:])
