"""BpIQL (the paper's Table 1 and Appendix B.6): IQL fine-tuned on online samples only (as OnIQL), collecting
its data from SFP's mixture of a behavioural prior and the IQL policy (Bagatella et al. 2022, "SFP: State-free
Priors for Exploration in Off-Policy Reinforcement Learning").

    acting       pi_mix(a | s, a_prev) = Lambda(s) pi_bar(a | a_prev) + (1 - Lambda(s)) pi(a | s)
                 (with probability Lambda(s) a sample of the prior given the previous action, otherwise a sample
                 of the IQL policy; the first step of an episode conditions the prior on an action drawn from
                 the offline data, as SFP's ``rand_init_cond``)
    prior        pi_bar(a_t | a_{t-1}) = N(tanh(f(a_{t-1})), sigma^2), fitted once, before fine-tuning, by
                 maximum likelihood on the offline data's consecutive action pairs (``fit_prior``)
    Lambda       Lambda(s) = sigmoid(z_omega(s)), trained on each batch by B.6's objective
                 (``losses.priors.mixing_weight_loss``) at the batch's next states s', the prior conditioned on
                 the action that led there: a_bar ~ pi_bar(. | a), a ~ pi(. | s')
    IQL          the backbone's own losses on every batch (Eq. 2-4), unchanged: IQL's critic targets use V(s'),
                 not the acting policy, so B.6's mixture value enters only Lambda's objective
    evaluation   the IQL policy's mean action (SFP evaluates the policy alone)

Where ours differs from the official SFP code (``../shared/reference/baselines.md`` section 9), and why:
* the prior is one conditional Gaussian (a state-independent std), not a 6-block RealNVP flow: it is the
  project's Gaussian actor fed the previous action and fitted by Eq. 4's step with zero advantage (a weight
  of 1 is maximum likelihood), so it needs no new gradient code; it cannot represent a multi-modal p(a_t|a_{t-1});
* Lambda's loss has no 1e-9 gradient scale (SFP's ``epsilon``: under Adam that scale mainly damps the update
  against Adam's eps); its learning rate is SFP's 1e-3, its network SFP's obs -> 128 -> 128 -> 1, its initial
  share SFP's 0.95 (``BpIQLConfig``); no ``prior_schedule`` (SFP's default 0: none);
* SAC's entropy and SFP's prior-action backup are IQL's losses here (B.6: "we use the IQL agent").
"""
from dataclasses import dataclass

import numpy as np

from gde_ref.agents.actors import GAUSSIAN, ActorSpec, PolicyActions, awr_step
from gde_ref.agents.iql import IQLHyper
from gde_ref.data.trajectories import continues
from gde_ref.finetune.variants import NaiveFinetuner
from gde_ref.losses.priors import mixing_weight_loss, sigmoid
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.adam import ADAM_DEFAULTS, adam_kernel
from gde_ref.nn.bundle import trained_net
from gde_ref.nn.checks import check_range


@dataclass(frozen=True)
class BpIQLConfig:
    """The prior's and the mixing weight's settings (SFP's where it has them)."""

    prior_hidden: tuple = (128, 128)
    prior_steps: int = 20_000          # maximum-likelihood steps on the offline action pairs (SFP: 100 epochs)
    prior_batch: int = 256
    prior_lr: float = 3e-4
    lambda_hidden: tuple = (128, 128)
    lambda_init: float = 0.95          # Lambda(s) at the start: SFP's default
    lambda_lr: float = 1e-3


def consecutive_action_pairs(dataset):
    """(a_t, a_{t+1}) pairs of the offline data that lie in one trajectory (``data.trajectories.continues``).
    Returns (previous (N', A), next (N', A))."""
    linked = continues(dataset)
    if not linked.any():
        raise ValueError(f"the offline data ({dataset.source}) has no two consecutive steps of one episode: the "
                         "state-free prior p(a_t | a_t-1) needs trajectories, not shuffled transitions")
    idx = np.flatnonzero(linked)
    return np.asarray(dataset.actions[idx]), np.asarray(dataset.actions[idx + 1])


def fit_prior(prior, adam, spec, previous, following, config, rng):
    """Maximum likelihood of pi_bar(a_{t+1} | a_t) = N(tanh(f(a_t)), sigma^2): ``config.prior_steps`` Adam steps
    of Eq. 4's actor step with every advantage 0 (so every weight exp(0) = 1), on uniform minibatches. Returns
    the last step's loss, -mean log pi_bar."""
    hyper = IQLHyper(0.5, 1.0, 1.0, 0.0, 0.0, 0.0, config.prior_lr, spec)
    n, b = previous.shape[0], config.prior_batch
    zeros = np.zeros(b, prior.dtype)
    net = trained_net(prior, adam, b)
    loss = float("nan")
    for _ in range(config.prior_steps):
        idx = rng.integers(0, n, b)
        loss = awr_step(net, np.ascontiguousarray(previous[idx]), np.ascontiguousarray(following[idx]), zeros, zeros,
                        hyper)
    return float(loss)


def gaussian_samples(actor, spec, x, rng):
    """Samples of a GAUSSIAN actor for a batch of inputs x (B, n_in): clip(tanh(f(x)) + sigma eps, -1, 1)."""
    mean = np.tanh(actor.forward(x))
    std = np.exp(np.clip(actor.views["extra"], spec.log_std_min, spec.log_std_max))
    return np.clip(mean + std * rng.standard_normal(mean.shape).astype(mean.dtype), -1.0, 1.0).astype(mean.dtype)


class BpIQLFinetuner(NaiveFinetuner):
    """IQL fine-tuning (online samples) whose data comes from SFP's prior/policy mixture (module docstring)."""

    def __init__(self, agent, normalizer, reward_scale, offline, config=None, seed=0):
        if getattr(agent, "name", None) != "iql":
            raise ValueError(f"BpIQL is defined on the IQL backbone, not {getattr(agent, 'name', agent)!r}")
        super().__init__(agent, normalizer, reward_scale)
        self.bp = c = config or BpIQLConfig()
        check_range("lambda_init", c.lambda_init, 0.0, 1.0, low_open=True, high_open=True)
        rng = np.random.default_rng([seed, 7])          # the prior's and Lambda's own streams, from the run's seed
        dtype, n_act = agent.dtype, agent.act_dim
        self.prior_spec = ActorSpec(GAUSSIAN, agent.config.log_std_min, agent.config.log_std_max, 0.0)
        self.prior = MLP([n_act, *c.prior_hidden, n_act], rng, dtype, extra=n_act)
        self.prior_adam = AdamState(self.prior.n_params, dtype)
        self.prior_loss = fit_prior(self.prior, self.prior_adam, self.prior_spec, *consecutive_action_pairs(offline),
                                    c, rng)
        self.start_actions = np.ascontiguousarray(offline.actions, dtype)
        self.mixing = MLP([agent.obs_dim, *c.lambda_hidden, 1], rng, dtype)
        self.mixing.views[f"{len(c.lambda_hidden)}.bias"][:] = np.log(c.lambda_init / (1.0 - c.lambda_init))
        self.mixing_adam = AdamState(self.mixing.n_params, dtype)
        self.rng = rng
        self.prior_policy = PolicyActions(self.prior, self.prior_spec)
        self.previous = np.zeros(n_act, dtype)
        self.episode_start = True
        self.prior_actions = self.actions = 0

    def mixing_weight(self, obs):
        """Lambda(s) for one normalised observation."""
        return float(sigmoid(self.mixing.act(obs)[0]))

    def explore_action(self, obs, rng):
        """A sample of pi_mix: the prior's given the previous action with probability Lambda(s), else pi's."""
        x = self.inputs.obs(obs)
        if self.episode_start:
            self.previous[:] = self.start_actions[rng.integers(0, self.start_actions.shape[0])]
            self.episode_start = False
        self.actions += 1
        if rng.random() < self.mixing_weight(x):
            self.prior_actions += 1
            action = self.prior_policy.act(self.previous, rng)
        else:
            action = self.policy.act(x, rng)
        self.previous[:] = action
        return action

    def end_episode(self, episode_return, episode_steps):
        self.episode_start = True

    def update(self, batch, progress):
        """IQL's step on the batch, then one Adam step of Lambda on B.6's objective at the next states."""
        batch = self.inputs.batch(batch)
        stats = self.agent.update(batch)
        states = batch.next_obs
        prior_actions = gaussian_samples(self.prior, self.prior_spec, batch.actions, self.rng)
        policy_actions = gaussian_samples(self.agent.actor, self.agent.spec, states, self.rng)
        q_prior, q_policy = self.agent.q_values(states, prior_actions), self.agent.q_values(states, policy_actions)
        logits = self.mixing.forward(states)[:, 0]
        loss, d_logits = mixing_weight_loss(logits, q_prior, q_policy)
        grads, _ = self.mixing.backward(d_logits[:, None])
        a = self.mixing_adam
        adam_kernel(self.mixing.params, grads, a.m, a.v, a.t, self.bp.lambda_lr, ADAM_DEFAULTS)
        stats.update(mixing_loss=loss, lambda_mean=float(sigmoid(logits).mean()),
                     prior_action_share=self.prior_actions / max(self.actions, 1))
        return stats

    def state(self):
        out = {**super().state(), "prior": self.prior.params, "mixing": self.mixing.params,
               "previous_action": self.previous, "episode_start": self.episode_start,
               "prior_actions": self.prior_actions, "actions": self.actions, "rng": self.rng.bit_generator.state}
        for name, adam in (("prior", self.prior_adam), ("mixing", self.mixing_adam)):
            out.update({f"adam/{name}/m": adam.m, f"adam/{name}/v": adam.v, f"adam/{name}/t": adam.t})
        return out

    def load_state(self, saved, what="checkpoint"):
        missing = [k for k in ("prior", "mixing", "previous_action", "episode_start", "rng") if k not in saved]
        if missing:
            raise ValueError(f"{what} has no BpIQL prior or mixing weight ({', '.join(missing)}): it was saved by "
                             "another algorithm")
        super().load_state(saved, what)
        for name, target in (("prior", self.prior.params), ("mixing", self.mixing.params),
                             ("previous_action", self.previous)):
            if np.shape(saved[name]) != target.shape:
                raise ValueError(f"{what}: {name} has shape {np.shape(saved[name])}, this learner {target.shape}")
            target[:] = saved[name]
        for name, adam in (("prior", self.prior_adam), ("mixing", self.mixing_adam)):
            adam.m[:], adam.v[:], adam.t[:] = (saved[f"adam/{name}/{k}"] for k in ("m", "v", "t"))
        self.episode_start = bool(saved["episode_start"])
        self.prior_actions, self.actions = int(saved["prior_actions"]), int(saved["actions"])
        self.rng.bit_generator.state = saved["rng"]
