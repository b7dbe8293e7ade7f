"""DQN and discrete CQL: one Q-network over discrete actions, with a target network.

CQL (Kumar et al., 2020) for discrete actions is DQN's TD loss (paper Eq. 1) plus the conservative
penalty alpha * (logsumexp_a Q(s, a) - Q(s, a_data)); alpha = 0 is DQN. The paper's toy maze trains
an offline CQL agent with alpha = 3 and fine-tunes it with alpha in {3, 1, 0} (Appendix B.4).
"""
import numpy as np

from gde_ref.data.batch import Batch
from gde_ref.losses.baselines import cql_penalty_kernel, dqn_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import frozen_net, net_adam, net_backward, net_forward, trained_net
from gde_ref.nn.checks import check_array, check_range
from gde_ref.nn.kernels import kernel, mlp_forward_single


@kernel
def q_learning_kernel(q, q_target, batch, cql_alpha, lr, stats):
    """One Adam step of Q on  mean (Q(s,a) - y)^2 + alpha * mean(logsumexp_a Q(s, .) - Q(s, a)),
    y = r + discount * max_a' Q_target(s', a'), on a Batch with integer actions.
    Fills stats = (td loss, cql penalty, mean Q(s, a))."""
    obs, actions, rewards, discounts, next_obs = batch
    q_all = net_forward(q, obs)
    next_q = net_forward(q_target, next_obs)
    d_q = np.empty_like(q_all)
    stats[0] = dqn_loss_kernel(q_all, actions, rewards, discounts, next_q, d_q)
    stats[1] = 0.0
    if cql_alpha > 0.0:
        d_penalty = np.empty_like(q_all)
        stats[1] = cql_penalty_kernel(q_all, actions, cql_alpha, d_penalty)
        for i in range(d_q.shape[0]):
            for a in range(d_q.shape[1]):
                d_q[i, a] += d_penalty[i, a]
    total = 0.0
    for i in range(q_all.shape[0]):
        total += q_all[i, actions[i]]
    stats[2] = total / q_all.shape[0]
    net_backward(q, obs, d_q, True, False)
    net_adam(q, lr)


@kernel
def greedy_action_kernel(params, layout, obs, hidden):
    """argmax_a Q(obs, a) for one observation, without allocating."""
    q = mlp_forward_single(params, layout, obs, hidden)
    best = 0
    for a in range(1, q.shape[0]):
        if q[a] > q[best]:
            best = a
    return best


def check_discrete_batch(name, batch, obs_dim, n_actions, dtype=np.float32):
    """Validate a discrete-action Batch (actions (B,) integers in [0, n_actions))."""
    if not isinstance(batch, Batch):
        raise TypeError(f"{name} expects a gde_ref.data.Batch, got {type(batch).__name__}")
    obs = check_array(f"{name} batch.obs", batch.obs, ndim=2, dtype=dtype, shape=(None, obs_dim))
    n = obs.shape[0]
    if n == 0:
        raise ValueError(f"{name}: the batch is empty; sample at least one transition")
    actions = np.ascontiguousarray(batch.actions)
    if actions.shape != (n,) or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"{name} batch.actions must be ({n},) integers, got {actions.shape} {actions.dtype}")
    if n and (actions.min() < 0 or actions.max() >= n_actions):
        raise ValueError(f"{name} batch.actions must lie in [0, {n_actions})")
    return Batch(obs, actions.astype(np.int64, copy=False),
                 check_array(f"{name} batch.rewards", batch.rewards, ndim=1, dtype=dtype, shape=(n,)),
                 check_array(f"{name} batch.discounts", batch.discounts, ndim=1, dtype=dtype, shape=(n,)),
                 check_array(f"{name} batch.next_obs", batch.next_obs, ndim=2, dtype=dtype, shape=(n, obs_dim)))


class QAgent:
    """DQN / discrete CQL.

    Parameters
    ----------
    obs_dim, n_actions : sizes. hidden : hidden widths. lr : Adam learning rate.
    cql_alpha : the conservative weight alpha (0: DQN). target_period : hard target-network update
        every this many updates (as in DQN).
    """

    def __init__(self, obs_dim, n_actions, hidden=(64, 64), lr=1e-3, cql_alpha=0.0, target_period=500, seed=0):
        check_range("cql_alpha", cql_alpha, 0.0)
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.lr, self.cql_alpha, self.target_period = float(lr), float(cql_alpha), int(target_period)
        self.q = MLP([obs_dim, *hidden, n_actions], np.random.default_rng(seed))
        self.q_target = self.q.params.copy()
        self.adam = AdamState(self.q.n_params)
        self.updates = 0
        self._hidden = np.zeros(int(self.q.layout[:, 1].sum()), np.float32)
        self._bundles = {}

    def _bundle(self, batch_size):
        if batch_size not in self._bundles:
            self._bundles[batch_size] = (trained_net(self.q, self.adam, batch_size),
                                         frozen_net(self.q_target, self.q, batch_size))
        return self._bundles[batch_size]

    def update(self, batch):
        """One TD (+ CQL penalty) step; hard target update every ``target_period`` steps."""
        obs, actions, rewards, discounts, next_obs = check_discrete_batch(
            "QAgent.update", batch, self.obs_dim, self.n_actions)
        q, q_target = self._bundle(obs.shape[0])
        stats = np.zeros(3)
        q_learning_kernel(q, q_target, Batch(obs, actions, rewards, discounts, next_obs), self.cql_alpha, self.lr, stats)
        self.updates += 1
        if self.updates % self.target_period == 0:
            self.q_target[:] = self.q.params
        return {"td_loss": stats[0], "cql_penalty": stats[1], "q_mean": stats[2]}

    def greedy(self, obs):
        """argmax_a Q(obs, a) for one observation (obs_dim,) float32."""
        if not isinstance(obs, np.ndarray) or obs.shape != (self.obs_dim,) or obs.dtype != np.float32:
            check_array("QAgent obs", obs, ndim=1, dtype=np.float32, shape=(self.obs_dim,))
        return int(greedy_action_kernel(self.q.params, self.q.layout, obs, self._hidden))

    def act(self, obs, rng, epsilon):
        """epsilon-greedy: a uniformly random action with probability epsilon, else the greedy one."""
        if rng.random() < epsilon:
            return int(rng.integers(self.n_actions))
        return self.greedy(obs)

    def q_values(self, obs):
        """Q(s, .) for a batch of observations (B, obs_dim) -> (B, n_actions)."""
        return self.q.forward(check_array("QAgent.q_values obs", obs, ndim=2, dtype=np.float32))

    def copy(self, cql_alpha=None):
        """An independent agent with the same networks (and optimiser state), e.g. to fine-tune an
        offline agent with another alpha."""
        twin = QAgent.__new__(QAgent)
        twin.__dict__.update(self.__dict__)
        twin.q, twin.q_target, twin.adam = self.q.copy(), self.q_target.copy(), self.adam.copy()
        twin._hidden, twin._bundles = np.zeros_like(self._hidden), {}
        if cql_alpha is not None:
            twin.cql_alpha = float(check_range("cql_alpha", cql_alpha, 0.0))
        return twin
