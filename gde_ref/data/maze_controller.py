"""The waypoint controller that makes the PointMaze datasets (D4RL's maze2d and Minari's pointmaze protocol),
in pure NumPy: a shortest path over the maze grid, waypoints along it, a PD law towards the next one.

    controller = WaypointController(layout, rng)          # layout: rows of 1 (wall) / anything else (free)
    action = controller.act(xy, velocity, goal_xy)        # noise-free, in [-1, 1]^2
    action = noisy_action(action, rng, 0.5)               # the datasets' behaviour: + N(0, 0.5^2), clipped

One function per rule, the rule in its docstring: ``free_cells``, ``cell_center``, ``xy_to_cell``,
``bfs_path``, ``path_waypoints``, ``advance_waypoint``, ``pd_action``, ``noisy_action``. Maze coordinates
are Gymnasium-Robotics' at scale 1 (a cell is 1 x 1, the maze centred on the origin, row 0 at the top).

Where ours differs from D4RL (``d4rl/pointmaze/waypoint_controller.py``) and Minari (``controller.py``):
* the planner is a breadth-first search over the 4-connected free cells (moves tried up, down, left, right):
  a shortest path in cells. D4RL runs Q-iteration on the grid (50 iterations, gamma 0.99), whose greedy
  path is also a shortest one (ties may break otherwise); Minari's default is a depth-first search (its
  dataset says "QIteration"), whose path need not be shortest.
* a waypoint is passed when the point is within 0.1 of it (Minari's rule). D4RL also asks its speed proxy
  (the position change since the previous call) to be below 0.1.
* the plan is made again only when the goal changes (as both), and from the nearest free cell if the
  point's centre is ever inside a wall cell (it cannot be, bar contact penetration; neither handles it).
"""
from collections import deque

import numpy as np

KP, KD = 10.0, -1.0          # PD gains: a = KP (waypoint - xy) + KD velocity
THRESHOLD = 0.1              # a waypoint is passed within this distance
JITTER = 0.2                 # intermediate waypoints: centre - JITTER U(0, 1) per axis
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))   # up, down, left, right (rows grow downwards)


def free_cells(layout):
    """Bool grid (rows, cols): True where a cell is free. Rule: a cell is a wall iff it holds the integer 1
    (Gymnasium-Robotics' maps: 1 wall; 0, "r", "g", "c" free)."""
    rows = [list(row) for row in layout]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("a maze layout must be a non-empty rectangle: rows of equal length")
    return np.array([[not (isinstance(c, (int, np.integer)) and c == 1) for c in row] for row in rows])


def cell_center(cell, shape):
    """(x, y) of a cell's centre. Rule (scale 1): x = col + 0.5 - cols / 2, y = rows / 2 - (row + 0.5)."""
    rows, cols = shape
    return np.array([cell[1] + 0.5 - cols / 2.0, rows / 2.0 - (cell[0] + 0.5)])


def xy_to_cell(xy, shape):
    """(row, col) of the cell holding (x, y). Rule: row = floor(rows / 2 - y), col = floor(x + cols / 2)."""
    rows, cols = shape
    return int(np.floor(rows / 2.0 - xy[1])), int(np.floor(xy[0] + cols / 2.0))


def nearest_free_cell(xy, free):
    """The cell holding (x, y) if it is free, else the free cell whose centre is nearest (ties: the first)."""
    cell = xy_to_cell(xy, free.shape)
    if 0 <= cell[0] < free.shape[0] and 0 <= cell[1] < free.shape[1] and free[cell]:
        return cell
    cells = np.argwhere(free)
    centres = np.array([cell_center(c, free.shape) for c in cells])
    return tuple(int(v) for v in cells[np.argmin(np.linalg.norm(centres - np.asarray(xy), axis=1))])


def bfs_path(free, start, goal):
    """Shortest 4-connected path of free cells from ``start`` to ``goal``, both included (``[start]`` when they
    are equal). Rule: breadth-first search from start, neighbours tried in the order up, down, left, right,
    each cell's parent the first cell that reached it; the path is read back from goal."""
    start, goal = tuple(int(v) for v in start), tuple(int(v) for v in goal)
    for name, cell in (("start", start), ("goal", goal)):
        if not (0 <= cell[0] < free.shape[0] and 0 <= cell[1] < free.shape[1]) or not free[cell]:
            raise ValueError(f"the {name} cell {cell} is not a free cell of the maze")
    parent, queue = {start: None}, deque([start])
    while queue and goal not in parent:
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nxt = (r + dr, c + dc)
            if 0 <= nxt[0] < free.shape[0] and 0 <= nxt[1] < free.shape[1] and free[nxt] and nxt not in parent:
                parent[nxt] = (r, c)
                queue.append(nxt)
    if goal not in parent:
        raise ValueError(f"no path from {start} to {goal}: the maze's free cells are not connected")
    path = [goal]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return path[::-1]


def path_waypoints(path, goal_xy, shape, rng, jitter=JITTER):
    """(k, 2) waypoints for a cell path: the centres of the cells after the first (the point is in the first),
    each minus ``jitter`` U(0, 1) drawn per axis, and last the goal itself (not jittered), which replaces the
    goal cell's centre. A one-cell path gives just the goal."""
    points = [cell_center(c, shape) - jitter * rng.uniform(size=2) for c in path[1:-1]]
    return np.array(points + [np.asarray(goal_xy, np.float64)]).reshape(-1, 2)


def advance_waypoint(index, waypoints, xy, threshold=THRESHOLD):
    """The index of the waypoint to steer to: move past every waypoint within ``threshold`` of the point, in
    order, never past the last (the goal)."""
    while index < len(waypoints) - 1 and np.linalg.norm(waypoints[index] - xy) < threshold:
        index += 1
    return index


def pd_action(waypoint, xy, velocity, kp=KP, kd=KD):
    """The PD law a = kp (waypoint - xy) + kd velocity (D4RL and Minari: kp = 10, kd = -1), clipped to [-1, 1]."""
    return np.clip(kp * (np.asarray(waypoint) - xy) + kd * np.asarray(velocity), -1.0, 1.0)


def noisy_action(action, rng, std):
    """The datasets' behaviour action: a + N(0, std^2) per dimension (D4RL's --noisy and Minari: std 0.5),
    clipped to [-1, 1]. std = 0 returns the action unchanged."""
    if std < 0:
        raise ValueError(f"the action noise std must be >= 0, got {std}")
    return np.clip(action + std * rng.standard_normal(np.shape(action)), -1.0, 1.0) if std > 0 else action


class WaypointController:
    """Follows a BFS path to the goal through jittered waypoints with the PD law (the module's rules).

    layout: the maze (rows of 1 wall / free); rng: numpy Generator for the waypoint jitter. ``act(xy,
    velocity, goal)`` plans again whenever ``goal`` differs from the goal of the current plan."""

    def __init__(self, layout, rng, jitter=JITTER, threshold=THRESHOLD, kp=KP, kd=KD):
        self.free = free_cells(layout)
        self.rng, self.jitter, self.threshold, self.kp, self.kd = rng, jitter, threshold, kp, kd
        self.goal, self.waypoints, self.index = None, None, 0

    def plan(self, xy, goal):
        """A new path from the point's cell to the goal's cell, and its waypoints."""
        path = bfs_path(self.free, nearest_free_cell(xy, self.free), nearest_free_cell(goal, self.free))
        self.goal = np.array(goal, np.float64)
        self.waypoints = path_waypoints(path, self.goal, self.free.shape, self.rng, self.jitter)
        self.index = 0

    def act(self, xy, velocity, goal):
        """The noise-free action towards ``goal`` from position ``xy`` at ``velocity``."""
        xy = np.asarray(xy, np.float64)
        if self.goal is None or not np.array_equal(self.goal, goal):
            self.plan(xy, goal)
        self.index = advance_waypoint(self.index, self.waypoints, xy, self.threshold)
        return pd_action(self.waypoints[self.index], xy, velocity, self.kp, self.kd)
