"""The toy maze (gde_ref.envs.maze, paper Section 3.1 / Appendix B.4): dynamics, goals, returns along BFS
shortest paths, the registered env's time limit, input validation, rendering and the visitation heatmap."""
import gymnasium as gym
import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gde_ref.envs.maze import (ACTION_NAMES, ACTIONS, LAYOUT, MAX_EPISODE_STEPS, ToyMaze, draw_visitation,
                               goal_returns, render_maze, shortest_distances, visitation_counts)

UP, DOWN, LEFT, RIGHT = range(4)
# a small open room: the centre cell (2, 2) has all four neighbours free
OPEN = (
    "#####",
    "#L.R#",
    "#...#",
    "#S..#",
    "#####",
)


def place(env, cell):
    """Put the agent on a free cell (row, col) (``env.position`` is the agent's cell index)."""
    env.unwrapped.position = env.unwrapped.index[cell]


def cell_of_layout(layout, char):
    (cell,) = [(r, c) for r, row in enumerate(layout) for c, x in enumerate(row) if x == char]
    return cell


def bfs_actions(layout, goal_char):
    """Actions of one shortest path from S to the goal, walking back from the goal along BFS distances."""
    start, goal = cell_of_layout(layout, "S"), cell_of_layout(layout, goal_char)
    dist = shortest_distances(layout, start)
    path = [goal]
    while path[-1] != start:
        r, c = path[-1]
        path.append(next((r - dr, c - dc) for dr, dc in ACTIONS if dist.get((r - dr, c - dc)) == dist[(r, c)] - 1))
    path.reverse()
    return [ACTIONS.index((b[0] - a[0], b[1] - a[1])) for a, b in zip(path[:-1], path[1:])]


# ------------------------------------------------------------------------------------------------
# dynamics
# ------------------------------------------------------------------------------------------------
def test_reset_returns_the_start_one_hot():
    env = ToyMaze()
    env.step(UP)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (env.obs_dim,) == env.observation_space.shape
    assert obs.sum() == 1.0 and obs[env.index[env.start]] == 1.0
    assert env.cell_of(obs) == env.start == cell_of_layout(LAYOUT, "S") and info["cell"] == env.start
    assert env.observation_space.contains(obs)
    assert env.obs_dim == sum(ch != "#" for row in LAYOUT for ch in row)


def test_each_action_moves_as_named():
    """From the open room's centre: up/down/left/right change (row, col) by (-1,0)/(1,0)/(0,-1)/(0,1)."""
    env = ToyMaze(OPEN)
    expected = {"up": (1, 2), "down": (3, 2), "left": (2, 1), "right": (2, 3)}
    for action, name in enumerate(ACTION_NAMES):
        env.reset()
        place(env, (2, 2))
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["cell"] == env.cell_of(obs) == expected[name], name
        assert reward == -1.0 and not truncated
        assert terminated == (expected[name] in ((1, 1), (1, 3))), name   # up from the centre is not a goal


def test_moving_into_a_wall_keeps_the_position():
    """S = (6, 1) has walls to its left and below: those actions leave the agent on S."""
    env = ToyMaze()
    for action in (DOWN, LEFT):
        env.reset()
        obs, reward, terminated, truncated, info = env.step(action)
        assert info["cell"] == env.start and env.cell_of(obs) == env.start
        assert (reward, terminated, truncated) == (-1.0, False, False)
    env.reset()
    assert env.step(RIGHT)[4]["cell"] == (6, 2)
    env.reset()
    assert env.step(UP)[4]["cell"] == (5, 1)


def test_transition_table_matches_the_layout_everywhere():
    """Every (free cell, action) of the default maze: the neighbour if it is free, else the same cell."""
    env = ToyMaze()
    for cell in env.cells:
        if cell in env.goals:
            continue   # a goal ends the episode; stepping from it is never needed
        for action, (dr, dc) in enumerate(ACTIONS):
            env.reset()
            place(env, cell)
            nxt = (cell[0] + dr, cell[1] + dc)
            want = nxt if LAYOUT[nxt[0]][nxt[1]] != "#" else cell
            obs, reward, terminated, _, info = env.step(action)
            assert info["cell"] == env.cell_of(obs) == want, (cell, ACTION_NAMES[action])
            assert reward == -1.0
            assert terminated == (want in env.goals) and info.get("goal") == env.goals.get(want)


@pytest.mark.parametrize("goal_char, name, approach, action", [("L", "left", (3, 7), UP),
                                                                 ("R", "right", (1, 17), RIGHT)])
def test_reaching_a_goal_ends_the_episode(goal_char, name, approach, action):
    env = ToyMaze()
    env.reset()
    place(env, approach)
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.cell_of(obs) == cell_of_layout(LAYOUT, goal_char)
    assert (reward, terminated, truncated) == (-1.0, True, False)
    assert info["goal"] == name


def test_no_goal_in_info_before_a_goal():
    env = ToyMaze()
    env.reset()
    assert "goal" not in env.step(RIGHT)[4]


def test_default_layout_goal_returns():
    """The default layout (S bottom-left, 85 free cells): the shortest path to the left goal L takes 10
    steps (7 to the pocket's opening, 3 up it) and the one to the right goal R takes 22, so with -1 per
    step ``goal_returns()`` is (-10, -22): the left goal is the optimal one, the right goal the
    sub-optimal one."""
    left, right = goal_returns()
    assert (left, right) == (-10, -22)
    assert right < left
    assert goal_returns(LAYOUT) == (left, right)
    assert goal_returns(OPEN) == (-2, -4)


@pytest.mark.parametrize("goal_char, name, index", [("L", "left", 0), ("R", "right", 1)])
def test_bfs_shortest_path_return_equals_goal_returns(goal_char, name, index):
    """Following a shortest path in the registered env: return = goal_returns()[index], terminal exactly at the goal."""
    env = gym.make("gde_ref/ToyMaze-v0")
    env.reset(seed=0)
    actions = bfs_actions(LAYOUT, goal_char)
    total = 0.0
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert not truncated
        assert terminated == (t == len(actions) - 1), f"terminated at step {t} of {len(actions)}"
    assert info["goal"] == name and env.unwrapped.cell_of(obs) == cell_of_layout(LAYOUT, goal_char)
    assert total == goal_returns()[index] == -len(actions)


def test_shortest_distances_is_a_bfs():
    """Distances from S: 0 at S, every free cell reached, neighbours differ by at most 1, and every
    cell but S has a neighbour one step closer."""
    start = cell_of_layout(LAYOUT, "S")
    dist = shortest_distances(LAYOUT, start)
    free = {(r, c) for r, row in enumerate(LAYOUT) for c, ch in enumerate(row) if ch != "#"}
    assert set(dist) == free and dist[start] == 0
    for (r, c), d in dist.items():
        near = [dist[(r + dr, c + dc)] for dr, dc in ACTIONS if (r + dr, c + dc) in dist]
        assert all(abs(n - d) <= 1 for n in near)
        assert d == 0 or d - 1 in near


def test_registered_env_truncates_at_the_time_limit():
    """Bumping into the wall for MAX_EPISODE_STEPS steps: truncated (not terminated) exactly at step 200."""
    env = gym.make("gde_ref/ToyMaze-v0")
    assert env.spec.max_episode_steps == MAX_EPISODE_STEPS == 200
    assert isinstance(env.unwrapped, ToyMaze)
    env.reset(seed=0)
    for t in range(1, MAX_EPISODE_STEPS + 1):
        _, reward, terminated, truncated, info = env.step(LEFT)
        assert reward == -1.0 and not terminated and info["cell"] == env.unwrapped.start
        assert truncated == (t == MAX_EPISODE_STEPS), t


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [4, -1, 1.5, "up", None, np.array([0, 1])])
def test_invalid_actions_raise(action):
    env = ToyMaze()
    env.reset()
    with pytest.raises(ValueError, match=r"ToyMaze action must be an int in \[0, 4\)"):
        env.step(action)
    assert env.position == env.index[env.start], "a rejected action must not move the agent"


def test_numpy_integer_actions_are_accepted():
    env = ToyMaze()
    env.reset()
    assert env.step(np.int64(RIGHT))[4]["cell"] == (6, 2)


@pytest.mark.parametrize("layout, char", [
    (("#####", "#S.R#", "#####"), "L"),                        # no L
    (("#####", "#SLR#", "#S..#", "#####"), "S"),               # two S
    (("######", "#SLRR#", "######"), "R"),                     # two R
    (("#####", "#...#", "#####"), "S"),                        # none at all
])
def test_layout_needs_exactly_one_start_and_goal_each(layout, char):
    with pytest.raises(ValueError, match=f"exactly one '{char}'"):
        ToyMaze(layout)


def test_ragged_layout_raises():
    with pytest.raises(ValueError, match="same length"):
        ToyMaze(("#####", "#SLR#", "####"))


@pytest.mark.parametrize("layout", [("S.LR",),                                  # no walls at all
                                    ("#####", ".SLR#", "#####"),               # open on the left edge
                                    ("#####", "#SLR.", "#####"),               # open on the right edge
                                    ("##.##", "#SLR#", "#####")])              # open at the top
def test_layout_not_enclosed_by_walls_raises_a_clear_error(layout):
    """Without a wall border a move off the grid would index outside the layout (or wrap around)."""
    with pytest.raises(ValueError, match="enclosed by walls"):
        ToyMaze(layout)


# ------------------------------------------------------------------------------------------------
# rendering and the visitation heatmap
# ------------------------------------------------------------------------------------------------
def test_render_is_an_rgb_uint8_image_with_the_agent_highlighted():
    env = ToyMaze(render_mode="rgb_array")
    env.reset()
    img = env.render()
    px = 16
    assert img.dtype == np.uint8 and img.shape == (env.height * px, env.width * px, 3)

    def colour(cell):
        block = img[cell[0] * px:(cell[0] + 1) * px, cell[1] * px:(cell[1] + 1) * px]
        assert (block == block[0, 0]).all(), "each cell is one flat colour block"
        return tuple(block[0, 0])

    agent, wall, free = colour(env.start), colour((0, 0)), colour((6, 2))
    assert agent == (40, 90, 220) and wall == (40, 40, 40) and free == (235, 235, 235)
    assert colour((2, 7)) != colour((1, 18)), "the two goals have different colours"
    env.step(RIGHT)
    img = env.render()
    assert colour((6, 2)) == (40, 90, 220) and colour(env.start) == (170, 170, 170)
    made = gym.make("gde_ref/ToyMaze-v0", render_mode="rgb_array")
    made.reset(seed=0)
    assert np.array_equal(made.render(), render_maze(made.unwrapped, highlight=made.unwrapped.start))
    assert render_maze(env, cell_pixels=3).shape == (env.height * 3, env.width * 3, 3)


def test_visitation_counts_counts_cells():
    env = ToyMaze()
    cells = [env.start, (6, 2), (6, 2), (2, 7), (6, 2), env.start, (1, 18)]
    obs = np.stack([env.observation(env.index[c]) for c in cells])
    counts = visitation_counts(env, obs)
    assert counts.shape == (env.height, env.width)
    expected = np.zeros((env.height, env.width))
    for c in cells:
        expected[c] += 1
    np.testing.assert_array_equal(counts, expected)
    # any leading shape of one-hot rows, e.g. (episodes, steps, obs_dim)
    np.testing.assert_array_equal(visitation_counts(env, np.stack([obs, obs])), 2 * expected)
    walls = np.array([[ch == "#" for ch in row] for row in LAYOUT])
    assert counts[walls].sum() == 0 and counts.sum() == len(cells)


def test_draw_visitation_masks_walls_on_an_agg_figure():
    env = ToyMaze()
    cells = [env.start] * 30 + [(6, 2)] * 3 + [(2, 7)]
    counts = visitation_counts(env, np.stack([env.observation(env.index[c]) for c in cells]))
    fig = Figure(figsize=(4, 3), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = draw_visitation(ax, env, counts, title="offline data")
    assert isinstance(image, matplotlib.image.AxesImage)
    data = image.get_array()
    walls = np.array([[ch == "#" for ch in row] for row in LAYOUT])
    np.testing.assert_array_equal(np.ma.getmaskarray(data), walls)
    np.testing.assert_array_equal(data.data[~walls], counts[~walls] + 1.0)   # +1 for the log scale
    assert isinstance(image.norm, matplotlib.colors.LogNorm)
    assert (image.norm.vmin, image.norm.vmax) == (1.0, 31.0)
    assert matplotlib.colors.same_color(image.get_cmap().get_bad(), "black")
    assert ax.get_title() == "offline data"
    labels = {t.get_text(): t.get_position() for t in ax.texts}
    assert labels == {"L": (7, 2), "R": (18, 1), "S": (1, 6)}
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    x, y = ax.transData.transform((8, 0))           # the centre of wall cell (row 0, col 8)
    assert tuple(pixels[int(pixels.shape[0] - y), int(x), :3]) == (0, 0, 0), "walls are drawn black"
    # an all-zero heatmap still has a valid log scale
    assert draw_visitation(fig.add_subplot(), env, np.zeros_like(counts)).norm.vmax == 2.0
