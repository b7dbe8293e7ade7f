"""Use what you trained: load a policy from a run directory, evaluate it, record it (``gde-ref evaluate``).

    policy = load_policy("runs/gde-hopper")          # the fine-tuned exploitation policy
    action = policy.act(obs)                         # raw observation in, a new action array out
    evaluate(policy, episodes=5, seed=0)             # returns and D4RL normalized score

A run directory is either a fine-tuning run (``RUN/checkpoint.npz``: the exploitation policy pi_e, or
``which="explore"`` / ``"teacher"`` for GDE's pi_b / pi_t) or a pretraining run (``RUN/offline.npz``: the
offline actor); a path to an ``offline.npz`` works too. The policy acts with its mean action tanh(f(s)),
as every evaluation here does, on observations it normalises itself with the statistics it was trained on.
"""
import os

import numpy as np

from gde_ref.agents.actors import PolicyActions
from gde_ref.agents.backbones import backbone_config, make_backbone
from gde_ref.checkpoint import load_npz
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.envs.make import make_env, normalized_score
from gde_ref.finetune.gde import AgentInputs
from gde_ref.finetune.loop import evaluate_episodes, report_seeds

POLICIES = {"exploit": "learner/agent/actor", "explore": "learner/gde/explore", "teacher": "learner/gde/teacher"}


class Policy:
    """A trained actor (of any backbone) that takes raw observations: ``act(obs)`` normalises ``obs`` with the
    training data's mean/std and returns a new (act_dim,) float32 array, the mean action."""

    def __init__(self, params, backbone, obs_mean, obs_std, task, which, source):
        self.task, self.which, self.source = task, which, source
        self.obs_dim, self.act_dim = backbone.obs_dim, backbone.act_dim
        if params.shape != backbone.actor.params.shape:
            raise ValueError(f"{source}: its {which} actor has {params.size} numbers, a {backbone.name} actor for "
                             f"obs {self.obs_dim}, act {self.act_dim} has {backbone.actor.n_params}")
        self.actor = backbone.actor
        self.actor.params[:] = params
        self._inputs = AgentInputs(ObsNormalizer(obs_mean, obs_std), 1.0)
        self._actions = PolicyActions(self.actor, backbone.spec)

    def act(self, obs):
        """The mean action for one raw observation (obs_dim,), as a new array."""
        obs = np.asarray(obs)
        if obs.shape != (self.obs_dim,) or not np.all(np.isfinite(obs)):
            raise ValueError(f"Policy.act needs one finite raw observation of shape ({self.obs_dim},) from "
                             f"{self.task}, got shape {obs.shape}")
        return self._actions.act(self._inputs.obs(obs)).copy()


def _backbone(meta, config_key):
    name = meta.get("backbone", "iql")
    return make_backbone(name, meta["obs_dim"], meta["act_dim"], backbone_config(name, meta[config_key]))


def load_policy(run, which="exploit"):
    """The policy saved in ``run`` (a run directory or an offline.npz): ``which`` is "exploit" (default: pi_e,
    or the offline actor of a pretraining run), "explore" (GDE's pi_b) or "teacher" (GDE's pi_t)."""
    run = os.fspath(run)
    if which not in POLICIES:
        raise ValueError(f"unknown policy {which!r}; choose from {', '.join(POLICIES)}")
    ckpt = os.path.join(run, "checkpoint.npz")
    offline = run if run.endswith(".npz") else os.path.join(run, "offline.npz")
    if os.path.isdir(run) and os.path.isfile(ckpt) and not os.path.isfile(offline):
        arrays, meta = load_npz(ckpt, "fine-tuning checkpoint")
        config_key = "backbone_config" if "backbone_config" in meta else "iql_config"   # v2 runs: IQL's
        if config_key not in meta:
            raise ValueError(f"{ckpt} is not a fine-tuning checkpoint: pass a run written by gde-ref finetune")
        key = POLICIES[which]
        if key not in arrays:
            raise ValueError(f"{run} has no {which} policy (it was fine-tuned with an algorithm without one); "
                             "use --policy exploit")
        return Policy(arrays[key], _backbone(meta, config_key), arrays["setup/obs_mean"], arrays["setup/obs_std"], meta["task"], which, run)
    if os.path.isfile(offline):
        if which != "exploit":
            raise ValueError(f"{run} holds an offline agent: it has one policy, not a {which} policy; drop --policy")
        arrays, meta = load_npz(offline, "offline agent")
        return Policy(arrays["actor"], _backbone(meta, "config"), arrays["obs_mean"], arrays["obs_std"], meta["task"], which, offline)
    raise FileNotFoundError(f"{run} holds no policy (no checkpoint.npz or offline.npz): pass a run directory written "
                            "by gde-ref finetune or gde-ref pretrain")


def default_seeds(run):
    """(first seed, episodes) of a fine-tuning run's last reporting evaluation, so that evaluating with them
    reproduces it; (0, 10) for anything else."""
    import json
    summary, config = os.path.join(run, "summary.json"), os.path.join(run, "config.json")
    if os.path.isdir(run) and os.path.isfile(summary) and os.path.isfile(config):
        with open(summary) as f:
            s = json.load(f)
        if "reports" in s:
            return report_seeds(s["seed"], s["reports"] - 1, s["report_episodes"])[0], s["report_episodes"]
    return 0, 10


def evaluate(policy, episodes, seed, video=None):
    """Returns {"returns", "mean_return", "normalized_score", "episodes", "seed"}: ``episodes`` complete
    episodes on env seeds seed, seed + 1, ...; ``video``: also write them to this .mp4 (imageio)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    seeds = list(range(seed, seed + episodes))
    if video is None:
        returns = evaluate_episodes(make_env(policy.task), policy.act, seeds)
    else:
        returns = _record(policy, seeds, video)
    mean = float(np.mean(returns))
    return {"policy": policy.which, "source": policy.source, "task": policy.task, "episodes": episodes, "seed": seed,
            "returns": [float(r) for r in returns], "mean_return": mean,
            "normalized_score": float(normalized_score(policy.task, mean))}


def _record(policy, seeds, path):
    try:
        import imageio
        env = make_env(policy.task, render_mode="rgb_array")
        env.reset(seed=seeds[0])
        env.render()
    except Exception as err:  # noqa: BLE001 (no GL backend shows up as many different errors)
        raise ValueError(f"cannot render {policy.task} here ({type(err).__name__}: {err}); MuJoCo needs an OpenGL "
                         "backend: set MUJOCO_GL=egl (GPU) or MUJOCO_GL=osmesa (apt install libosmesa6), or "
                         "evaluate without --video") from err
    frames, returns = [], []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
            frames.append(env.render())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    tmp = path + ".tmp.mp4"
    try:
        imageio.mimsave(tmp, frames, fps=int(env.metadata.get("render_fps", 30)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return returns
