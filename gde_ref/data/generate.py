"""D4RL-protocol offline datasets for the MuJoCo locomotion tasks (a recipe layer: trains SAC, rolls it out).

    make_dataset("hopper-medium", preset="laptop", seed=0)   # -> "gde-ref/hopper/medium-v0", info dict

How D4RL made its locomotion datasets (Fu et al., 2020; ../shared/reference/facts.md), and what we do:

* behaviour policies are SAC (``gde_ref.agents.sac``); every dataset action is *sampled* from the
  stochastic SAC policy tanh(mu + sigma eps), with no extra noise; episodes are capped at 1000 steps,
  the cap is a truncation (``timeouts``), a fall is a termination (``terminals``), kept separate.
* ``random``: a randomly initialised SAC policy (no training), sampled.
* ``medium``: SAC stopped early when its deterministic evaluation first reaches the medium level
  (MEDIUM_LEVELS, the rule is MEDIUM_RULE below); that checkpoint is rolled out.
* ``medium-replay``: every transition SAC collected until that checkpoint (its replay history,
  including the uniform-random warm-up steps), in whole episodes.
* ``expert``: SAC trained for the preset's whole budget (optional; long at the paper size).
* ``medium-expert``: the ``medium`` episodes followed by the ``expert`` episodes.

Behaviour policies can be shipped as small ``.npz`` checkpoints in ``gde_ref/policies/{task}-{kind}.npz``
(``save_policy`` / ``load_policy``): ``random``, ``medium`` and ``expert`` use them when present instead of
training. ``medium-replay`` always retrains, since it needs SAC's history; ``make_datasets`` makes several
datasets of one task from one SAC run (e.g. ``medium`` and ``medium-replay``, as D4RL did).
"""
import dataclasses
import pathlib
import shlex
import time

import numpy as np

from gde_ref.agents.sac import SACAgent
from gde_ref.config import SACConfig
from gde_ref.data.behaviour import (POLICY_DIR, collect_episodes, load_policy, save_policy, train_behaviour_sac,
                                    with_actor)
from gde_ref.data.datasets import dataset_id, save_dataset
from gde_ref.envs.make import (ANTMAZE_TASKS, MAZE_TASKS, TASKS, make_env, normalized_score, parse_dataset_name,
                               stored_dataset_name)

# The medium level, as a D4RL normalized score (100 = D4RL's expert return R_max, 0 = random R_min).
MEDIUM_RULE = ("medium = the first SAC checkpoint whose deterministic evaluation (mean over the preset's "
               "eval_episodes) reaches the task's medium level, a normalized score of 1/3 of D4RL's expert "
               "(D4RL: 'SAC stopped early at about 1/3 of expert performance'); training stops there. If the "
               "SAC budget ends first, the best evaluated checkpoint is used and the metadata says "
               "medium_level_reached = false with a warning.")
MEDIUM_LEVELS = {task: 100.0 / 3.0 for task in TASKS}  # hopper ~1064, halfcheetah ~3858, walker2d ~1532 return


@dataclasses.dataclass(frozen=True)
class Preset:
    """Budgets of one dataset-generation preset."""
    size: int               # transitions per rolled-out dataset (medium-expert: twice this)
    sac_steps: int          # most SAC environment steps (one update per step after learning_starts)
    eval_every: int         # SAC environment steps between deterministic evaluations
    eval_episodes: int      # episodes per evaluation
    sac: SACConfig          # SAC hyper-parameters


PRESETS = {
    # CI: seconds; small networks, the medium level is (usually) not reached and the metadata says so.
    "quick": Preset(size=2_000, sac_steps=3_000, eval_every=1_000, eval_episodes=2,
                    sac=SACConfig(hidden=(32, 32), batch_size=64, learning_starts=1_000)),
    # a laptop: SAC as in the paper's B.3 but a shorter budget and a 100k-transition dataset.
    "laptop": Preset(size=100_000, sac_steps=200_000, eval_every=5_000, eval_episodes=5,
                     sac=SACConfig(learning_starts=5_000)),
    # D4RL's sizes: 1M transitions, up to 1M SAC steps.
    "paper": Preset(size=1_000_000, sac_steps=1_000_000, eval_every=5_000, eval_episodes=10,
                    sac=SACConfig(learning_starts=5_000)),
}


# -- datasets ------------------------------------------------------------------------------------------
def get_preset(preset):
    """The Preset called ``preset`` (quick, laptop, paper), or a ValueError listing them."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[preset]


def shipped_policy(policy_dir, task, kind, preset, seed, level):
    """The shipped checkpoint for this request, or None: it must have been made with the same preset,
    seed and (for medium) medium level; anything else is a different behaviour policy and is trained."""
    path = pathlib.Path(policy_dir) / f"{task}-{kind}.npz"
    if kind == "medium-replay" or not path.exists():
        return None
    _, saved = load_policy(path)
    same = saved.get("policy_preset") == preset and saved.get("policy_seed") == seed
    if kind == "medium":
        same = same and abs(float(saved.get("medium_level", -1.0)) - level) < 1e-9
    return path if same else None


def planned_steps(name, size=None, preset="laptop", policy_dir=POLICY_DIR, seed=0, medium_level=None,
                  sac_counted=None):
    """Upper bound of the environment steps ``make_dataset`` takes (for a progress bar's total).

    sac_counted : a set shared across several names made by one ``make_datasets`` call; a SAC run already
    in it is not counted again (they share it).
    """
    task, kind = parse_dataset_name(name)
    p = get_preset(preset)
    if task in MAZE_TASKS:   # no SAC: the waypoint controller rolls out ``size`` transitions
        from gde_ref.data.pointmaze_data import PRESETS as MAZE_SIZES
        return MAZE_SIZES[preset] if size is None else int(size)
    if task in ANTMAZE_TASKS:   # whole 1000-step rollouts of the waypoints + ant controller
        from gde_ref.data.antmaze_data import EPISODE_STEPS, PRESETS as ANT_SIZES
        return -(-(ANT_SIZES[preset] if size is None else int(size)) // EPISODE_STEPS) * EPISODE_STEPS
    size = p.size if size is None else int(size)
    level = MEDIUM_LEVELS[task] if medium_level is None else float(medium_level)
    sac_counted = set() if sac_counted is None else sac_counted
    total = 0
    for part in (("medium", "expert") if kind == "medium-expert" else (kind,)):
        shipped = shipped_policy(policy_dir, task, part, preset, seed, level) is not None
        if part == "medium-replay" or (part != "random" and not shipped):
            key = _sac_key(preset, task, part, seed, level)
            if key not in sac_counted:
                sac_counted.add(key)
                total += p.sac_steps
        if part != "medium-replay":
            total += size
    return total


def _sac_key(preset, task, kind, seed, level):
    """Which SAC run a dataset part needs: medium and medium-replay share one (stopped at the medium level);
    the last item is the level SAC stops at (None: the whole budget)."""
    return (preset, task, seed, None if kind == "expert" else level)


def _behaviour(task, kind, preset, seed, level, progress, policy_dir, policy_out, log, sac_runs):
    """(agent to roll out, or None for medium-replay; episodes for medium-replay or None; info dict).

    sac_runs : dict of SAC runs already made in this process (``_sac_key`` -> BehaviourRun), reused and filled.
    """
    p = get_preset(preset)
    shipped = shipped_policy(policy_dir, task, kind, preset, seed, level)
    if shipped is not None:
        agent, saved = load_policy(shipped)
        return agent, None, {**saved, "behaviour_policy": f"shipped checkpoint {shipped} (not retrained)"}
    if kind == "random":
        env = make_env(task)
        agent = SACAgent(env.observation_space.shape[0], env.action_space.shape[0], p.sac, seed=seed)
        env.close()
        info = {"sac_steps": 0, "behaviour_policy": f"randomly initialised SAC actor (seed {seed})"}
    else:
        key = _sac_key(preset, task, kind, seed, level)
        reused = key in sac_runs
        if not reused:
            sac_runs[key] = train_behaviour_sac(task, p.sac_steps, seed, p.eval_every, key[-1], progress,
                                                config=p.sac, eval_episodes=p.eval_episodes, log=log)
        run = sac_runs[key]
        point = run.checkpoints["final" if kind == "expert" else "medium"]
        agent = with_actor(run.agent, point["actor_params"])
        info = {"sac_steps": point["step"], "sac_steps_run": run.steps, "sac_budget": p.sac_steps,
                "policy_eval_return": point["return"], "policy_eval_score": point["score"],
                "evaluations": [list(e) for e in run.evaluations],
                "behaviour_policy": f"SAC trained here in {run.seconds:.0f} s ({run.steps} steps)"
                                    + ("; the same run as the dataset made before this one" if reused else "")}
        if kind != "expert":
            info.update(medium_level=level, medium_rule=MEDIUM_RULE, medium_level_reached=run.medium_level_reached)
            if not run.medium_level_reached:
                info["warning"] = (f"MEDIUM LEVEL NOT REACHED: SAC's best evaluation was {point['score']:.1f} < "
                                   f"{level:.1f} within {p.sac_steps} steps; this is a weaker 'medium'")
        if kind == "medium-replay":
            episodes = [{k: v for k, v in ep.items() if k != "end_step"} for ep in run.history
                        if ep["end_step"] <= point["step"]]
            info["replay_rule"] = ("every whole episode SAC completed up to the medium checkpoint, including the "
                                   f"{p.sac.learning_starts} uniform-random warm-up steps; the unfinished one dropped")
            return None, episodes, info
    if policy_out is not None:
        _save_trained(pathlib.Path(policy_out) / f"{task}-{kind}.npz", agent, info, seed, preset)
    return agent, None, info


def _save_trained(path, agent, info, seed, preset):
    """Save a behaviour policy made here with how it was made (``policy_seed``, ``policy_preset``)."""
    made = f"{info['behaviour_policy']}; seed {seed}, preset {preset}"
    save_policy(path, agent, **{k: v for k, v in info.items() if k != "behaviour_policy"}, policy_seed=seed,
                policy_preset=preset, policy_origin=made)


def make_dataset(name, size=None, seed=0, preset="laptop", *, medium_level=None, progress=None,
                 policy_dir=POLICY_DIR, policy_out=None, command=None, log=None, sac_runs=None, controller=None):
    """Make and save the D4RL-protocol dataset ``name`` (e.g. ``hopper-medium``); returns (Minari id, info).
    A PointMaze name (``pointmaze-umaze``, ...) goes to ``data.pointmaze_data.make_pointmaze_dataset``, an AntMaze
    one (``antmaze-umaze``, ...) to ``data.antmaze_data.make_antmaze_dataset`` (``controller``: its policy file).

    size : transitions rolled out per policy (default: the preset's); whole episodes, so slightly more.
           ``medium-replay`` ignores it (its size is SAC's history), ``medium-expert`` has two parts of it.
    seed : seeds SAC (initialisation, warm-up, updates) and, separately, the rollouts.
    preset : quick, laptop or paper (``PRESETS``); medium_level overrides ``MEDIUM_LEVELS[task]``.
    policy_dir : where shipped behaviour policies are looked for; policy_out : a directory to save the
                 behaviour policies trained here into (how ``gde_ref/policies`` is produced).
    progress(k), log(text) : called with each k environment steps and each SAC evaluation's line.
    sac_runs : a dict shared by several calls so that they reuse one SAC run (``make_datasets`` does this).
    The dataset's Minari metadata (key ``gde_ref``) records the command, seed, preset, SAC steps, the
    behaviour policy's evaluation score, the medium rule and level and whether it was reached.
    """
    task, kind = parse_dataset_name(name)
    if controller is not None and task not in ANTMAZE_TASKS:
        raise ValueError(f"--controller is for the antmaze-* datasets, not {name}")
    if task in ANTMAZE_TASKS:   # AntMaze: BFS waypoints and the trained ant controller (data.antmaze_data)
        from gde_ref.data.antmaze_data import make_antmaze_dataset
        if policy_out is not None or medium_level is not None:
            raise ValueError(f"{name} is made by waypoints and an ant controller (gde-ref train-ant-controller): "
                             "drop --save-policy (and medium_level)")
        return make_antmaze_dataset(name, size, seed, preset, progress=progress, command=command, controller=controller)
    if task in MAZE_TASKS:   # PointMaze: the waypoint controller's protocol (data.pointmaze_data)
        from gde_ref.data.pointmaze_data import make_pointmaze_dataset
        if policy_out is not None or medium_level is not None:
            raise ValueError(f"{name} is made by a waypoint controller, not a trained policy: drop --save-policy "
                             "(and medium_level)")
        return make_pointmaze_dataset(name, size, seed, preset, progress=progress, command=command)
    p = get_preset(preset)
    size = p.size if size is None else int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1 transition, got {size}")
    level = MEDIUM_LEVELS[task] if medium_level is None else float(medium_level)
    check_absent(stored_dataset_name(name, preset))
    sac_runs = {} if sac_runs is None else sac_runs
    start = time.perf_counter()
    parts, episodes = {}, []
    for part in (("medium", "expert") if kind == "medium-expert" else (kind,)):
        agent, eps, info = _behaviour(task, part, preset, seed, level, progress, policy_dir, policy_out, log, sac_runs)
        if eps is None:
            env = make_env(task)
            eps = collect_episodes(env, agent, size, np.random.default_rng([seed, 1]), progress)
            env.close()
        parts[part] = info
        episodes += eps
    returns = np.array([float(np.sum(ep["rewards"])) for ep in episodes])
    metadata = {"command": command or f"gde-ref make-dataset {shlex.quote(name)} --size {size} --preset {preset} "
                                      f"--seed {seed}",
                "seed": seed, "preset": preset, "kind": kind, "size_requested": size,
                "sac_config": dataclasses.asdict(p.sac), "collection": "actions sampled from the stochastic SAC "
                "policy, no extra noise; episodes capped at 1000 steps (timeouts), whole episodes kept",
                "sac_steps": sum(int(i.get("sac_steps", 0)) for i in parts.values()),
                "behaviour_score": normalized_score(task, float(returns.mean())), "seconds": 0.0}
    if len(parts) == 1:
        metadata.update(next(iter(parts.values())))
    else:
        metadata["parts"] = parts
        warnings_ = [f"{k}: {i['warning']}" for k, i in parts.items() if "warning" in i]
        if warnings_:
            metadata["warning"] = "; ".join(warnings_)
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    stored = stored_dataset_name(name, preset)   # NAME-quick at the quick preset
    did = save_dataset(stored, episodes, metadata=metadata)
    info = {"dataset_id": did, "name": stored, "transitions": int(sum(len(ep["rewards"]) for ep in episodes)),
            "episodes": len(episodes), **metadata}
    return did, info


def check_absent(name):
    """FileExistsError if dataset ``name`` is already saved locally (checked first, not after hours of SAC)."""
    from minari.storage.datasets_root_dir import get_dataset_path
    if (get_dataset_path() / dataset_id(name)).exists():
        raise FileExistsError(f"dataset {dataset_id(name)} already exists under {get_dataset_path()}; delete it "
                              f"first (`minari delete {dataset_id(name)}`) to make it again")


def make_datasets(names, size=None, seed=0, preset="laptop", **kwargs):
    """``make_dataset`` for each of ``names`` in order, sharing SAC runs; returns [(Minari id, info), ...].

    ``hopper-medium`` and ``hopper-medium-replay`` together train SAC once (the run is deterministic
    given the seed, so the datasets equal those made one at a time). Every name is checked before
    anything runs.
    """
    for name in names:
        parse_dataset_name(name)
        check_absent(stored_dataset_name(name, preset))
    sac_runs = {}
    return [make_dataset(name, size, seed, preset, sac_runs=sac_runs, **kwargs) for name in names]
