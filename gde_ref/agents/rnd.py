"""Random Network Distillation (Burda et al., 2018): an exploration bonus from prediction error.

A frozen, randomly initialised target network f maps observations to features; a predictor f_hat is
trained to match it on visited observations. The intrinsic reward of an observation is the error
||f_hat(s) - f(s)||^2: large where the agent has rarely been. Observations are normalised by a running
mean/std and clipped to [-5, 5] before both networks; the intrinsic rewards are divided by a running
root-mean-square of themselves so their scale stays near 1 while the predictor learns.

Deviation: Burda et al. normalise by a running std of the discounted intrinsic *return* of the
on-policy rollouts; with an off-policy replay buffer the bonus is computed on each sampled batch, so
the running RMS of the batch bonuses is used instead.
"""
import numpy as np

from gde_ref.losses.baselines import rnd_loss_kernel
from gde_ref.nn import MLP, AdamState
from gde_ref.nn.bundle import frozen_net, net_adam, net_backward, net_forward, trained_net
from gde_ref.nn.checks import check_array, restore_arrays
from gde_ref.nn.kernels import kernel

OBS_CLIP = 5.0


@kernel
def rnd_step_kernel(predictor, target, obs, mean, inv_std, normed, errors, lr):
    """Normalise obs, compute per-sample errors (the raw bonus), one Adam step of the predictor."""
    for i in range(obs.shape[0]):
        for j in range(obs.shape[1]):
            normed[i, j] = min(max((obs[i, j] - mean[j]) * inv_std[j], -OBS_CLIP), OBS_CLIP)
    f_target = net_forward(target, normed)
    f_pred = net_forward(predictor, normed)
    d_pred = np.empty_like(f_pred)
    loss = rnd_loss_kernel(f_pred, f_target, errors, d_pred)
    net_backward(predictor, normed, d_pred, True, False)
    net_adam(predictor, lr)
    return loss


class RND:
    """RND bonus for observations of size ``obs_dim``."""

    def __init__(self, obs_dim, hidden=(64, 64), features=16, lr=1e-3, seed=0):
        rng = np.random.default_rng(seed)
        self.predictor = MLP([obs_dim, *hidden, features], rng)
        self.target = MLP([obs_dim, *hidden, features], rng)
        self.adam = AdamState(self.predictor.n_params)
        self.lr = float(lr)
        self.obs_count, self.obs_mean, self.obs_var = 0, np.zeros(obs_dim), np.ones(obs_dim)
        self.bonus_var, self.bonus_count = 1.0, 0
        self._bundles = {}

    def observe(self, obs):
        """Update the running observation mean/variance with a batch (N, obs_dim) (Chan et al. merge)."""
        obs = np.asarray(obs, np.float64).reshape(-1, self.obs_mean.size)
        n, m, v = obs.shape[0], obs.mean(0), obs.var(0)
        total = self.obs_count + n
        delta = m - self.obs_mean
        self.obs_mean = self.obs_mean + delta * n / total
        self.obs_var = (self.obs_var * self.obs_count + v * n + delta ** 2 * self.obs_count * n / total) / total
        self.obs_count = total

    def bonus_and_update(self, obs):
        """Normalised intrinsic rewards (B,) of ``obs`` (B, obs_dim) float32, then one predictor step."""
        obs = check_array("RND observations", obs, ndim=2, dtype=np.float32, shape=(None, self.obs_mean.size))
        b = obs.shape[0]
        if b not in self._bundles:
            self._bundles[b] = (trained_net(self.predictor, self.adam, b), frozen_net(self.target.params, self.target, b),
                                np.zeros_like(obs), np.zeros(b, np.float32))
        pred, targ, normed, errors = self._bundles[b]
        inv_std = (1.0 / np.sqrt(self.obs_var + 1e-8)).astype(np.float32)
        rnd_step_kernel(pred, targ, obs, self.obs_mean.astype(np.float32), inv_std, normed, errors, self.lr)
        self.bonus_count += 1
        self.bonus_var += (float(errors.var() + errors.mean() ** 2) - self.bonus_var) / min(self.bonus_count, 1000)
        return errors / np.float32(np.sqrt(self.bonus_var) + 1e-8)

    def state(self):
        """The networks, the predictor's Adam state and the running statistics (arrays by reference)."""
        return {"predictor": self.predictor.params, "target": self.target.params, "obs_mean": self.obs_mean,
                "obs_var": self.obs_var, "adam/m": self.adam.m, "adam/v": self.adam.v, "adam/t": self.adam.t,
                "obs_count": self.obs_count, "bonus_var": self.bonus_var, "bonus_count": self.bonus_count}

    def load_state(self, saved, what="checkpoint"):
        """Restore a ``state()``: arrays in place, then the counters."""
        restore_arrays(what, {k: v for k, v in self.state().items() if isinstance(v, np.ndarray)}, saved)
        self.obs_count, self.bonus_var, self.bonus_count = saved["obs_count"], saved["bonus_var"], saved["bonus_count"]
