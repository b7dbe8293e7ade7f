"""A fine-tuning run's state as arrays, for ``RUN/checkpoint.npz``: the learner (its ``state()``: networks,
targets, Adam states, GDE's exploration policy and teacher, RND's networks and statistics), the buffer, the
loop's position, the rng and the MuJoCo envs. Everything is loaded in place, so compiled records stay valid,
and a resumed run ends bit-identical to one that was never interrupted."""
import numpy as np

from gde_ref.checkpoint import load_npz, save_npz
from gde_ref.experiments.pretrain import split_arrays

CHECKPOINT_FORMAT = "gde_ref/finetune-checkpoint-v3"
LOOP_STATE_FIELDS = ("env_step", "stage_steps", "updates", "next_stage", "n_stages", "next_report", "n_reports",
                     "next_checkpoint", "episode_return", "episode_steps", "stats", "rows")


def load_learner(learner, arrays, scalars):
    """Restore ``learner`` from a checkpoint's ``learner/...`` arrays and its scalars."""
    saved = {k[len("learner/"):]: v for k, v in arrays.items() if k.startswith("learner/")}
    learner.load_state({**saved, **scalars}, "checkpoint")


def _time_limit(env):
    import gymnasium as gym
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def env_state(env):
    """(MuJoCo integration state (mj_getState, mjSTATE_INTEGRATION), {np_random state, elapsed steps})."""
    import mujoco
    u, kind = env.unwrapped, mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(u.model, kind))
    mujoco.mj_getState(u.model, u.data, state, kind)
    return state, {"np_random": u.np_random.bit_generator.state, "elapsed_steps": _time_limit(env)._elapsed_steps}


def set_env_state(env, state, info, seed):
    """Put a freshly made env exactly where ``env_state`` saw it (reset first: wrappers require it)."""
    import mujoco
    env.reset(seed=seed)
    u, kind = env.unwrapped, mujoco.mjtState.mjSTATE_INTEGRATION
    if state.shape != (mujoco.mj_stateSize(u.model, kind),):
        raise ValueError(f"checkpoint's env state has {state.shape[0]} numbers, {env.spec.id} needs "
                         f"{mujoco.mj_stateSize(u.model, kind)}: it was saved on another env")
    mujoco.mj_setState(u.model, u.data, state, kind)
    u.np_random.bit_generator.state = info["np_random"]
    _time_limit(env)._elapsed_steps = info["elapsed_steps"]


# ------------------------------------------------------------------------------------------------
# checkpoints
# ------------------------------------------------------------------------------------------------
def save_checkpoint(path, task, state, learner, buffer, rng, env, eval_env, setup):
    """RUN/checkpoint.npz, atomically: the learner (``learner_arrays``, ``learner_scalars``), the buffer
    (``state_dict``), the loop's position and log rows, the rng state, both envs' states, and what is
    needed to rebuild the learner (normaliser, reward scale, backbone and its config)."""
    learner_arrays, learner_scalars = split_arrays(learner.state())   # arrays to the .npz, scalars to its metadata
    arrays = {f"learner/{k}": v for k, v in learner_arrays.items()}
    arrays.update({f"buffer/{k}": v for k, v in buffer.state_dict().items()})
    env_arrays, env_info = {}, {}
    for name, e in (("env", env), ("eval_env", eval_env)):
        env_arrays[f"{name}/mj_state"], env_info[name] = env_state(e)
    arrays.update(env_arrays, **{"loop/obs": np.asarray(state.obs), "setup/obs_mean": setup["normalizer"].mean,
                                 "setup/obs_std": setup["normalizer"].std})
    loop = {k: getattr(state, k) for k in LOOP_STATE_FIELDS}
    meta = {"format": CHECKPOINT_FORMAT, "task": task, "loop": loop, "rng": rng.bit_generator.state,
            "envs": env_info, "learner": learner_scalars, "reward_scale": setup["reward_scale"],
            "backbone": setup["agent"].name, "backbone_config": setup["backbone_config"], "obs_dim": setup["agent"].obs_dim,
            "act_dim": setup["agent"].act_dim, "buffer_n_step": buffer.n_step, "buffer_discount": buffer.discount}
    save_npz(path, arrays, meta)


def read_checkpoint(path, task):
    arrays, meta = load_npz(path, "fine-tuning checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        older = str(meta.get("format", "")).startswith("gde_ref/finetune-checkpoint")
        raise ValueError(f"{path} is a fine-tuning checkpoint of format {meta.get('format')!r}, this version reads "
                         f"{CHECKPOINT_FORMAT!r}: " + ("finish the run with the gde_ref version that started it, or "
                                                       "start it again with --force" if older else "not a checkpoint"))
    if meta["task"] != task:
        raise ValueError(f"{path} was saved on {meta['task']!r}, not {task!r}: resume with the run's own dataset")
    return arrays, meta


