"""A fine-tuning run's state as arrays, for ``RUN/checkpoint.npz``: the learner (networks, targets, Adam
states, GDE's exploration policy and teacher, RND's networks and statistics), the buffer, the loop's position,
the rng and the MuJoCo envs. Everything is loaded in place, so compiled bundles stay valid, and a resumed
run ends bit-identical to one that was never interrupted."""
import dataclasses

import numpy as np

from gde_ref.checkpoint import load_npz, save_npz
from gde_ref.finetune.gde import GDEFinetuner
from gde_ref.finetune.variants import RNDFinetuner

CHECKPOINT_FORMAT = "gde_ref/finetune-checkpoint-v2"
LOOP_STATE_FIELDS = ("env_step", "stage_steps", "updates", "next_stage", "n_stages", "next_report", "n_reports",
                     "next_checkpoint", "stats", "rows")


def _adam_arrays(prefix, adam):
    return {f"{prefix}/m": adam.m, f"{prefix}/v": adam.v, f"{prefix}/t": adam.t}


def learner_arrays(learner):
    """name -> the learner's own arrays: every network, its Adam m, v, t, the targets, GDE's exploration
    policy and teacher, RND's networks. Returned by reference, so loading writes into them in place."""
    agent = learner.learner.backbone if isinstance(learner, GDEFinetuner) else learner.agent
    out = {f"agent/{k}": v for k, v in agent.state_arrays().items()}
    for name, adam in agent.adam.items():
        out.update(_adam_arrays(f"adam/{name}", adam))
    if isinstance(learner, GDEFinetuner):
        g = learner.learner
        out.update({"gde/explore": g.explore.params, "gde/teacher": g.teacher_params,
                    **_adam_arrays("adam/explore", g.explore_adam)})
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        out.update({"rnd/predictor": r.predictor.params, "rnd/target": r.target.params,
                    "rnd/obs_mean": r.obs_mean, "rnd/obs_var": r.obs_var, **_adam_arrays("adam/rnd", r.adam)})
    return out


def learner_scalars(learner):
    """The learner's non-array state: teacher score, swap count, current rho, RND's running statistics."""
    out = {}
    if isinstance(learner, GDEFinetuner):
        out.update(teacher_score=learner.teacher_score, swaps=learner.swaps, kl_weight=learner.kl_weight)
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        out.update(rnd_obs_count=r.obs_count, rnd_bonus_var=r.bonus_var, rnd_bonus_count=r.bonus_count)
    return out


def load_learner(learner, arrays, scalars):
    for name, target in learner_arrays(learner).items():
        saved = arrays.get(f"learner/{name}")
        if saved is None or saved.shape != target.shape:
            raise ValueError(f"checkpoint's learner/{name} is {None if saved is None else saved.shape}, this "
                             f"learner needs {target.shape}: it was saved by another algorithm or network size")
        target[...] = saved
    if isinstance(learner, GDEFinetuner):
        learner.teacher_score, learner.swaps = scalars["teacher_score"], scalars["swaps"]
        learner.kl_weight = scalars["kl_weight"]
    if isinstance(learner, RNDFinetuner):
        r = learner.rnd
        r.obs_count, r.bonus_var, r.bonus_count = (scalars["rnd_obs_count"], scalars["rnd_bonus_var"],
                                                   scalars["rnd_bonus_count"])


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
    needed to rebuild the learner (normaliser, reward scale, IQL config)."""
    arrays = {f"learner/{k}": v for k, v in learner_arrays(learner).items()}
    arrays.update({f"buffer/{k}": v for k, v in buffer.state_dict().items()})
    env_arrays, env_info = {}, {}
    for name, e in (("env", env), ("eval_env", eval_env)):
        env_arrays[f"{name}/mj_state"], env_info[name] = env_state(e)
    arrays.update(env_arrays, **{"loop/obs": np.asarray(state.obs), "setup/obs_mean": setup["normalizer"].mean,
                                 "setup/obs_std": setup["normalizer"].std})
    loop = {k: getattr(state, k) for k in LOOP_STATE_FIELDS}
    meta = {"format": CHECKPOINT_FORMAT, "task": task, "loop": loop, "rng": rng.bit_generator.state,
            "envs": env_info, "learner": learner_scalars(learner), "reward_scale": setup["reward_scale"],
            "iql_config": dataclasses.asdict(setup["agent"].config), "obs_dim": setup["agent"].obs_dim,
            "act_dim": setup["agent"].act_dim, "buffer_n_step": buffer.n_step, "buffer_discount": buffer.discount}
    save_npz(path, arrays, meta)


def read_checkpoint(path, task):
    arrays, meta = load_npz(path, "fine-tuning checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a fine-tuning checkpoint (format {meta.get('format')!r})")
    if meta["task"] != task:
        raise ValueError(f"{path} was saved on {meta['task']!r}, not {task!r}: resume with the run's own dataset")
    return arrays, meta


