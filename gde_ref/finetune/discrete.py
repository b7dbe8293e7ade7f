"""Fine-tuning learners for discrete actions (the toy maze), for the shared loop ``finetune.loop``.

* ``QFinetuner``: CQL (alpha > 0) or DQN (alpha = 0) fine-tuned from an offline Q-network, acting
  epsilon-greedily: the paper's Fig. 2 baselines.
* ``SoftmaxQFinetuner``: the same fine-tuning, collecting data by sampling softmax(Q / tau) of its own
  critic: a control for GDE's decoupling (the distribution DiscreteGDE's exploration policy starts from, with
  no exploration network, no Eq. 5 and no teacher).
* ``DiscreteGDE``: GDE with a CQL backbone (paper Section 4.2.3 with Section 5.4's CQL backbone):
    - critic: the backbone's loss, CQL (TD + alpha * penalty), on online samples;
    - exploitation policy pi_e: the critic's greedy policy;
    - exploration policy pi_b: a categorical actor softmax(f_mu(s)), trained with Eq. 5,
      -E_{a ~ pi_b}[Q(s, a)] + rho KL(pi_t || pi_b), the expectation over the 4 actions exact;
    - teacher pi_t: a snapshot of the critic, as the distribution softmax(Q_snapshot(s) / tau). A softmax,
      not the greedy one-hot, because the KL to a one-hot teacher is infinite unless pi_b is one-hot too;
      and it is the family pi_b = softmax(f_mu(s) / tau) starts in: f_mu is initialised as a copy of the
      offline critic, so at the start pi_b = pi_t and the KL is 0 (Algorithm 1: all three from the
      offline agent). The temperature tau (``temperature``) sets how close to greedy both are: with the
      maze's action gaps of about one step of reward or less, tau = 1 is far from greedy (at the maze's
      pocket opening the offline teacher is about [0.36, 0.14, 0.08, 0.42] over up, down, left, right).
    - every F steps the loop's evaluation stage scores pi_e; if it beats the teacher's score, the
      teacher becomes the current critic; rho decays linearly from its initial value to 0.

  What this exploration can and cannot do: the minimiser of Eq. 5 over a categorical pi_b is
  pi_b(a) = rho pi_t(a) / (lambda - Q(a)) (lambda > max Q normalises it), so an action the critic rates dQ
  below the best gets at most rho pi_t(a) / dQ. With a CQL critic, the actions the data rarely took are
  the ones the penalty pushes down: where that gap is large next to rho, pi_b explores them less than
  epsilon-greedy does; where it is small (on the maze, "up" at the pocket's opening is 0.15 below "right",
  thanks to the few left-goal episodes in the data), pi_b keeps them at a rate epsilon-greedy never reaches
  (36% against 2.5% there), and GDE's own online data then lifts them (tutorials/01b_maze_finetune.ipynb
  measures it; figures/maze_fig2/README.md has the data mix without left-goal episodes, where GDE never
  reached L).
"""
import numpy as np

from gde_ref.agents.dqn import QAgent, greedy_action_kernel
from gde_ref.losses.equations import gde_exploration_loss_discrete_kernel
from gde_ref.nn import AdamState
from gde_ref.nn.bundle import frozen_net, net_adam, net_backward, net_forward, trained_net
from gde_ref.nn.checks import check_array, check_range
from gde_ref.nn.kernels import kernel, mlp_forward_single


@kernel
def categorical_exploration_kernel(explore, critic, teacher, obs, kl_weight, temperature, lr):
    """Eq. 5 for a categorical exploration policy softmax(f_mu / tau): one Adam step of f_mu. Returns the loss."""
    q_all = net_forward(critic, obs).copy()
    c = np.empty(1, q_all.dtype)
    c[0] = 1.0 / temperature  # 1 / tau in the networks' dtype, so the logits stay float32
    inv_tau = c[0]
    logits_t = net_forward(teacher, obs) * inv_tau
    logits_b = net_forward(explore, obs) * inv_tau
    d_logits = np.empty_like(logits_b)
    loss = gde_exploration_loss_discrete_kernel(q_all, logits_b, logits_t, kl_weight, d_logits)
    d_logits *= inv_tau  # chain rule through logits = f / tau
    net_backward(explore, obs, d_logits, True, False)
    net_adam(explore, lr)
    return loss


@kernel
def sample_softmax_kernel(params, layout, obs, hidden, temperature, uniform):
    """Sample an action from softmax(f(obs) / tau) by inverse CDF with one uniform number."""
    logits = mlp_forward_single(params, layout, obs, hidden)
    top = logits.max()
    total = 0.0
    for a in range(logits.shape[0]):
        total += np.exp((logits[a] - top) / temperature)
    cumulative, target = 0.0, uniform * total
    for a in range(logits.shape[0]):
        cumulative += np.exp((logits[a] - top) / temperature)
        if target < cumulative:
            return a
    return logits.shape[0] - 1


class QFinetuner:
    """CQL / DQN fine-tuning of an offline QAgent with epsilon-greedy data collection."""

    def __init__(self, agent: QAgent, epsilon=0.1):
        self.agent, self.epsilon = agent, float(check_range("epsilon", epsilon, 0.0, 1.0))

    def explore_action(self, obs, rng):
        return self.agent.act(obs, rng, self.epsilon)

    def exploit_action(self, obs):
        return self.agent.greedy(obs)

    def update(self, batch, progress):
        return self.agent.update(batch)

    def after_evaluation(self, score, env_step):
        return {}


class SoftmaxQFinetuner(QFinetuner):
    """CQL / DQN fine-tuning of an offline QAgent that collects its data by sampling softmax(Q(s, .) / tau)
    of its own critic; greedy for evaluation. The control for GDE's decoupling on the toy maze (paper
    Section 3.1, Fig. 2; GDE: Section 4.2.3, Algorithm 1).

    What it controls for: DiscreteGDE's exploration policy starts as exactly this distribution (f_mu is a
    copy of the offline critic, the same tau), so GDE's first exploration differs from epsilon-greedy CQL in
    two ways at once: a softmax over Q instead of epsilon-greedy, and a policy decoupled from the critic. This
    learner keeps the first and drops the second: no separate exploration network, no Eq. 5, no teacher and
    no evaluation stages; the sampled distribution is always the *current* critic's softmax, and the critic is
    updated by the backbone's loss alone (``agent.cql_alpha``: CQL alpha = 3 on the maze, as ``cql_alpha3``).
    Against QFinetuner it isolates the exploration distribution; against DiscreteGDE, the decoupling.
    """

    def __init__(self, agent: QAgent, temperature=1.0):
        super().__init__(agent, epsilon=0.0)   # epsilon unused: the softmax replaces epsilon-greedy
        self.temperature = float(check_range("temperature (tau)", temperature, 0.0, low_open=True))
        self._hidden = np.zeros(int(agent.q.layout[:, 1].sum()), np.float32)

    def explore_action(self, obs, rng):
        """One draw from softmax(Q(obs, .) / tau) of the current critic (inverse CDF, one uniform of ``rng``)."""
        if not isinstance(obs, np.ndarray) or obs.shape != (self.agent.obs_dim,) or obs.dtype != np.float32:
            check_array("SoftmaxQFinetuner obs", obs, ndim=1, dtype=np.float32, shape=(self.agent.obs_dim,))
        return int(sample_softmax_kernel(self.agent.q.params, self.agent.q.layout, obs, self._hidden,
                                         self.temperature, rng.random()))


class DiscreteGDE:
    """GDE on a discrete CQL backbone; see the module docstring. ``kl_weight`` is rho's initial value."""

    def __init__(self, critic: QAgent, kl_weight=0.3, exploration_lr=1e-3, temperature=1.0):
        self.critic = critic
        self.kl_weight0 = float(check_range("kl_weight (rho)", kl_weight, 0.0))
        self.temperature = float(check_range("temperature (tau)", temperature, 0.0, low_open=True))
        self.exploration_lr = float(exploration_lr)
        self.explore = critic.q.copy()                       # f_mu <- offline critic
        self.explore_adam = AdamState(self.explore.n_params)
        self.teacher = critic.q.params.copy()                # teacher snapshot
        self.teacher_score = -np.inf
        self.kl_weight = self.kl_weight0
        self.swaps = 0
        self._hidden = np.zeros(int(self.explore.layout[:, 1].sum()), np.float32)
        self._bundles = {}

    def _bundle(self, b):
        if b not in self._bundles:
            self._bundles[b] = (trained_net(self.explore, self.explore_adam, b),
                                frozen_net(self.critic.q.params, self.critic.q, b),
                                frozen_net(self.teacher, self.critic.q, b))
        return self._bundles[b]

    def explore_action(self, obs, rng):
        return int(sample_softmax_kernel(self.explore.params, self.explore.layout, obs, self._hidden, self.temperature,
                                         rng.random()))

    def exploit_action(self, obs):
        return self.critic.greedy(obs)

    def update(self, batch, progress):
        """Critic by CQL, then the exploration policy by Eq. 5 with rho = rho_0 (1 - progress)."""
        stats = self.critic.update(batch)
        self.kl_weight = self.kl_weight0 * (1.0 - progress)
        explore, critic, teacher = self._bundle(batch.obs.shape[0])
        stats["explore_loss"] = categorical_exploration_kernel(explore, critic, teacher, batch.obs, self.kl_weight,
                                                               self.temperature, self.exploration_lr)
        return stats

    def after_evaluation(self, score, env_step):
        """Algorithm 1: the teacher becomes the exploitation policy if that one scores higher. The first
        stage (step 0) scores the offline policy, which the teacher already is: it sets the teacher's
        score and is not counted as a swap."""
        if self.teacher_score == -np.inf:
            self.teacher_score = score
            return {"teacher_score": score, "teacher_swapped": 0, "kl_weight": self.kl_weight}
        swapped = score > self.teacher_score
        if swapped:
            self.teacher[:] = self.critic.q.params
            self.teacher_score = score
            self.swaps += 1
        return {"teacher_score": self.teacher_score, "teacher_swapped": int(swapped), "kl_weight": self.kl_weight}

    def greedy_exploration(self, obs):
        """The exploration policy's most likely action (for inspection)."""
        return int(greedy_action_kernel(self.explore.params, self.explore.layout, obs, self._hidden))
