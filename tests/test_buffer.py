"""The replay buffer: n-step targets against a hand computation, terminals vs truncations, ring, resume."""
import numpy as np
import pytest

from gde_ref.data.buffer import ReplayBuffer

GAMMA = 0.9


def fill(buf, rewards, terminated_at=None, truncated_at=None):
    """Episode with obs = step index, action = step index; ends by termination or truncation."""
    for t, r in enumerate(rewards):
        buf.add([t], t, r, [t + 1], terminated=(t == terminated_at), truncated=(t == truncated_at))


def test_one_step_transitions():
    """n = 1: each step is stored as (s, a, r, s', gamma (1 - terminal))."""
    buf = ReplayBuffer(10, 1, None, n_step=1, discount=GAMMA)
    fill(buf, [1.0, 2.0, 3.0], terminated_at=2)
    assert len(buf) == 3
    np.testing.assert_allclose(buf.rewards[:3], [1, 2, 3])
    np.testing.assert_allclose(buf.discounts[:3], [GAMMA, GAMMA, 0.0])
    np.testing.assert_allclose(buf.next_obs[:3, 0], [1, 2, 3])


def test_three_step_returns_by_hand_terminal_episode():
    """n = 3 on a 5-step episode that terminates: returns, discounts and bootstrap states by hand."""
    r = [1.0, 2.0, 3.0, 4.0, 5.0]
    buf = ReplayBuffer(10, 1, None, n_step=3, discount=GAMMA)
    fill(buf, r, terminated_at=4)
    g = GAMMA
    want_returns = [r[0] + g * r[1] + g * g * r[2], r[1] + g * r[2] + g * g * r[3], r[2] + g * r[3] + g * g * r[4],
                    r[3] + g * r[4], r[4]]
    want_next = [3, 4, 5, 5, 5]
    want_disc = [g ** 3, g ** 3, 0.0, 0.0, 0.0]  # the last three reach the terminal: no bootstrap
    order = np.argsort(buf.obs[:5, 0])
    np.testing.assert_allclose(buf.rewards[order], want_returns, rtol=1e-6)
    np.testing.assert_allclose(buf.next_obs[order, 0], want_next)
    np.testing.assert_allclose(buf.discounts[order], want_disc, rtol=1e-6)
    np.testing.assert_array_equal(buf.actions[order], np.arange(5))


def test_truncation_keeps_bootstrapping():
    """A time-limit cut is not a terminal: the partial n-step returns bootstrap with gamma^m."""
    buf = ReplayBuffer(10, 1, None, n_step=3, discount=GAMMA)
    fill(buf, [1.0, 1.0, 1.0, 1.0], truncated_at=3)
    order = np.argsort(buf.obs[:4, 0])
    np.testing.assert_allclose(buf.discounts[order], [GAMMA ** 3, GAMMA ** 3, GAMMA ** 2, GAMMA], rtol=1e-6)
    np.testing.assert_allclose(buf.rewards[order], [1 + GAMMA + GAMMA ** 2] * 2 + [1 + GAMMA, 1], rtol=1e-6)


def test_ring_overwrites_oldest_and_sampling_is_seeded():
    """Past capacity the oldest transitions go; the same rng seed gives the same batch."""
    buf = ReplayBuffer(4, 1, 2, n_step=1, discount=GAMMA)
    for t in range(6):
        buf.add([t], [t, -t], 0.0, [t + 1], terminated=False)
    assert len(buf) == 4 and buf.total_added == 6
    assert sorted(buf.obs[:, 0]) == [2, 3, 4, 5]
    a = buf.sample(8, np.random.default_rng(0))
    b = buf.sample(8, np.random.default_rng(0))
    np.testing.assert_array_equal(a.obs, b.obs)
    assert a.actions.shape == (8, 2) and a.rewards.shape == (8,)


def test_state_dict_resumes_mid_episode():
    """Saving mid-episode (pending n-step steps included) and loading gives the same future contents."""
    def run(split):
        buf = ReplayBuffer(20, 1, None, n_step=3, discount=GAMMA)
        for t in range(7):
            if t == split:
                state = {k: np.copy(v) for k, v in buf.state_dict().items()}
                buf = ReplayBuffer(20, 1, None, n_step=3, discount=GAMMA)
                buf.load_state_dict(state)
            buf.add([t], t, float(t), [t + 1], terminated=(t == 6))
        return buf
    full, resumed = run(-1), run(4)
    for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
        np.testing.assert_array_equal(getattr(full, name), getattr(resumed, name))


def stored(buf):
    """{first obs: (n-step return, next obs, discount)} of everything folded so far."""
    return {float(buf.obs[i, 0]): (float(buf.rewards[i]), float(buf.next_obs[i, 0]), float(buf.discounts[i]))
            for i in range(len(buf))}


def test_two_interleaved_streams_keep_their_own_n_step_returns():
    """Exploration (obs 0, 1, 2, ...) and an evaluation stage (obs 100, 101, ...) feed one buffer in turns,
    as the loop does: explore 2 steps, a 2-step stage, explore 2 more. Each n = 3 return sums its own
    stream's rewards and bootstraps from its own stream's state; the stage's unfinished steps are folded
    as a truncation when the stage ends (end_stream), the exploration stream's stay pending across it."""
    g = GAMMA
    buf = ReplayBuffer(20, 1, None, n_step=3, discount=g)
    explore_r = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    stage_r = {100: 10.0, 101: 20.0}

    def step(t, r, stream):
        buf.add([t], t, r, [t + 1], terminated=False, stream=stream)

    step(0, explore_r[0], "explore")
    step(1, explore_r[1], "explore")
    step(100, stage_r[100], "stage")
    step(101, stage_r[101], "stage")
    assert len(buf) == 0 and buf.pending_steps("explore") == 2 and buf.pending_steps("stage") == 2
    buf.end_stream("stage")   # the stage ends mid-episode: a truncation at state 102
    assert buf.pending_steps("stage") == 0 and buf.pending_steps("explore") == 2
    step(2, explore_r[2], "explore")
    step(3, explore_r[3], "explore")
    got = stored(buf)
    want = {100: (10 + g * 20, 102, g ** 2), 101: (20.0, 102, g),                     # the stage's own two steps
            0: (1 + g * 2 + g * g * 3, 3, g ** 3), 1: (2 + g * 3 + g * g * 4, 4, g ** 3)}   # exploration only
    assert set(got) == set(want)
    for first, (ret, nxt, disc) in want.items():
        np.testing.assert_allclose(got[first], (ret, nxt, disc), rtol=1e-6, err_msg=f"transition from {first}")
    buf.end_stream("stage")   # nothing pending: a no-op
    assert len(buf) == 4


def test_state_dict_keeps_every_streams_pending_steps():
    def run(split):
        buf = ReplayBuffer(20, 1, None, n_step=3, discount=GAMMA)
        for t in range(6):
            if t == split:
                state = {k: np.copy(v) for k, v in buf.state_dict().items()}
                buf = ReplayBuffer(20, 1, None, n_step=3, discount=GAMMA)
                buf.load_state_dict(state)
            buf.add([t], t, float(t), [t + 1], terminated=False, stream="explore")
            buf.add([100 + t], t, 10.0 + t, [101 + t], terminated=False, stream="stage")
        buf.end_stream("stage")
        return buf
    full, resumed = run(-1), run(4)
    assert len(full) == 10
    for name in ("obs", "next_obs", "actions", "rewards", "discounts"):
        np.testing.assert_array_equal(getattr(full, name), getattr(resumed, name))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_step >= 1"):
        ReplayBuffer(10, 1, None, n_step=0)
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(10, 1, None).sample(4, np.random.default_rng(0))
    other = ReplayBuffer(5, 1, None)
    with pytest.raises(ValueError, match="another task or capacity"):
        other.load_state_dict(ReplayBuffer(6, 1, None).state_dict())
