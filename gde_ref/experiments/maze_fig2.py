"""The toy maze of the paper's Fig. 2 (Section 3.1, Appendix B.4): ``gde-ref maze``.

1. the data agent: DQN + RND online (``data_agent_steps``), *commanded to the right goal*: in its own
   training reward, reaching the left goal costs ``other_goal_penalty`` more (the env's rewards are what
   the dataset stores); a checkpoint every ``checkpoint_period`` steps;
2. the dataset: each checkpoint acts epsilon-greedily for ``rollouts_per_checkpoint`` episodes, and the
   episodes that end at the right goal are kept; beside them, episodes of a uniformly random policy
   (epsilon = 1): ``noisy_per_right`` times as many that reach no goal (noisy) and ``optimal_per_right``
   times as many that happen to reach the left goal (optimal). The paper's dataset is "dominated by noisy
   trajectories and sub-optimal trajectories (ending with the right goal) on purpose" and holds "more
   noisy/sub-optimal trajectories than optimal trajectories" (B.4): a few optimal ones, not none. Every
   transition comes from an agent acting in the env. Saved as a Minari dataset;
3. offline CQL (alpha = 3) on it;
4. fine-tuning of that one offline network with CQL alpha = 3, 1, DQN (alpha = 0) and GDE with a CQL
   backbone, each for ``finetune_steps`` online steps through the shared loop, over several seeds; and a
   control for GDE's decoupling, ``cql_alpha3_softmax``: CQL alpha = 3 collecting data by sampling
   softmax(Q / tau) of its own critic (``SoftmaxQFinetuner``), the distribution GDE's exploration policy
   starts from, with no exploration policy of its own and no teacher;
5. figures (2a dataset heatmap, 2b fine-tuning heatmaps, 2c learning curves) and results.json.

Why the data agent is commanded to the right goal (measured, see the maze issue's notes): every learner
here finds the nearer, left goal first, so no checkpoint of a DQN+RND agent trained on the env's own
reward ever goes right; D4RL's AntMaze data is likewise collected by a goal-commanded agent.
"""
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple, Optional

import numpy as np

import gymnasium as gym

from gde_ref import plots
from gde_ref.agents.dqn import QAgent
from gde_ref.agents.rnd import RND
from gde_ref.checkpoint import write_json
from gde_ref.data.buffer import ReplayBuffer
from gde_ref.envs.maze import MAX_EPISODE_STEPS, ToyMaze, goal_returns, visitation_counts
from gde_ref.finetune.discrete import DiscreteGDE, QFinetuner, SoftmaxQFinetuner
from gde_ref.finetune.loop import LoopConfig, final_score, report_rows, run_online
from gde_ref.nn.kernels import blas_threads

ENV_ID = "gde_ref/ToyMaze-v0"
DATASET_ID = "gde-ref/toymaze/fig2-v0"


class Method(NamedTuple):
    """A fine-tuning method: the CQL alpha of its critic (None: the offline alpha, GDE's backbone) and how it
    collects data: "epsilon" (epsilon-greedy), "softmax" (softmax(Q / tau) of its critic) or "gde" (Eq. 5's
    exploration policy, with GDE's evaluation stages)."""
    alpha: Optional[float]
    explore: str


METHODS = {"cql_alpha3": Method(3.0, "epsilon"), "cql_alpha1": Method(1.0, "epsilon"),
           "dqn_alpha0": Method(0.0, "epsilon"), "cql_alpha3_softmax": Method(3.0, "softmax"),
           "gde": Method(None, "gde")}


@dataclass(frozen=True)
class MazeConfig:
    data_agent_steps: int = 80_000      # DQN+RND online steps (B.4: 80K)
    rnd_weight: float = 0.3             # beta: the data agent's reward is r + beta * normalised RND bonus
    other_goal_penalty: float = 100.0   # the data agent's extra cost for the left goal (commanded right)
    data_agent_lr: float = 1e-3
    data_agent_batch: int = 64
    checkpoint_period: int = 10_000
    rollouts_per_checkpoint: int = 25
    rollout_epsilon: float = 0.2        # checkpoints collect epsilon-greedily
    noisy_per_right: float = 2.0        # noisy (random, no-goal) episodes per right-goal episode
    optimal_per_right: float = 0.05     # random episodes that reach the left goal, per right-goal episode
    hidden: tuple = (64, 64)
    lr: float = 1e-4                    # offline CQL: a small step, so that Q is precise to well under one
    batch_size: int = 256               # step's reward (the action gaps here are <= 1)
    finetune_lr: float = 1e-4           # every fine-tuned critic (CQL, DQN, GDE's)
    discount: float = 0.99
    target_period: int = 500            # hard target-network update period (updates)
    offline_alpha: float = 3.0          # CQL alpha of the offline agent (B.4)
    offline_steps: int = 40_000
    finetune_steps: int = 20_000        # online budget, evaluation stages included
    eval_period: int = 2_000            # F
    eval_steps: int = MAX_EPISODE_STEPS  # L: one full episode
    epsilon: float = 0.1                # CQL / DQN fine-tuning exploration
    kl_weight: float = 0.3              # GDE's rho, decayed linearly to 0
    temperature: float = 1.0            # tau of GDE's pi_b and pi_t, and of the softmax control
    learning_starts: int = 500


PRESETS = {"default": MazeConfig(),
           "quick": MazeConfig(data_agent_steps=12_000, checkpoint_period=4_000, rollouts_per_checkpoint=10,
                               offline_steps=1_000, finetune_steps=3_000, eval_period=1_000, batch_size=64)}


def maze_env():
    return gym.make(ENV_ID)


def rollout(env, policy, rng):
    """One episode; returns (episode dict for a dataset, goal: 'left' | 'right' | 'none')."""
    obs, _ = env.reset(seed=int(rng.integers(2 ** 31)))
    o, a, r, te, tr = [obs], [], [], [], []
    goal = "none"
    while True:
        action = policy(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        o.append(obs), a.append(action), r.append(reward), te.append(terminated), tr.append(truncated)
        if terminated or truncated:
            goal = info.get("goal", "none")
            break
    return {"observations": np.array(o), "actions": np.array(a, np.int64), "rewards": np.array(r),
            "terminations": np.array(te), "truncations": np.array(tr)}, goal


def train_data_agent(cfg, seed, progress=None):
    """DQN + RND online, commanded to the right goal (module docstring); returns checkpoints [(step, QAgent)]."""
    env, rng = maze_env(), np.random.default_rng(seed)
    obs_dim = env.observation_space.shape[0]
    agent = QAgent(obs_dim, 4, cfg.hidden, cfg.data_agent_lr, 0.0, cfg.target_period, seed=seed)
    rnd = RND(obs_dim, seed=seed + 1)
    buffer = ReplayBuffer(cfg.data_agent_steps, obs_dim, None, 1, cfg.discount)
    checkpoints, obs = [], env.reset(seed=seed)[0]
    for step in range(1, cfg.data_agent_steps + 1):
        epsilon = max(0.05, 1.0 - step / (0.25 * cfg.data_agent_steps))
        action = agent.act(obs, rng, epsilon)
        next_obs, reward, terminated, truncated, info = env.step(action)
        if info.get("goal") == "left":  # the agent's own objective, not the dataset's reward
            reward -= cfg.other_goal_penalty
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        rnd.observe(next_obs[None])
        obs = env.reset()[0] if terminated or truncated else next_obs
        if len(buffer) >= cfg.learning_starts:
            batch = buffer.sample(cfg.data_agent_batch, rng)
            bonus = rnd.bonus_and_update(batch.next_obs)
            agent.update(batch._replace(rewards=(batch.rewards + cfg.rnd_weight * bonus).astype(np.float32)))
        if step % cfg.checkpoint_period == 0:
            checkpoints.append((step, agent.copy()))
        if progress is not None:
            progress.update(1)
    return checkpoints


def collect_dataset(cfg, checkpoints, seed):
    """Right-goal episodes of the checkpoints plus random noisy and optimal episodes (module docstring);
    returns (episodes, composition)."""
    env, rng = maze_env(), np.random.default_rng(seed)
    by_goal = {"left": [], "right": [], "none": []}
    for _, agent in checkpoints:
        for _ in range(cfg.rollouts_per_checkpoint):
            episode, goal = rollout(env, lambda o: agent.act(o, rng, cfg.rollout_epsilon), rng)
            by_goal[goal].append(episode)
    n_right = max(len(by_goal["right"]), 1)
    wanted = {"none": int(round(cfg.noisy_per_right * n_right)), "left": int(round(cfg.optimal_per_right * n_right))}
    kept_random = {"none": [], "left": []}
    random_goals = {"left": 0, "right": 0, "none": 0}
    while any(len(kept_random[g]) < n for g, n in wanted.items()):
        episode, goal = rollout(env, lambda o: int(rng.integers(4)), rng)
        random_goals[goal] += 1
        if goal in wanted and len(kept_random[goal]) < wanted[goal]:
            kept_random[goal].append(episode)
    episodes = by_goal["right"] + kept_random["none"] + kept_random["left"]
    composition = {"checkpoint_episodes": {k: len(v) for k, v in by_goal.items()},
                   "random_episodes": random_goals,
                   "kept": {"right": len(by_goal["right"]), "noisy": len(kept_random["none"]),
                            "left": len(kept_random["left"])},
                   "transitions": int(sum(len(e["actions"]) for e in episodes))}
    return episodes, composition


def to_buffer(episodes, obs_dim, discount):
    buffer = ReplayBuffer(sum(len(e["actions"]) for e in episodes) + 1, obs_dim, None, 1, discount)
    for e in episodes:
        for t in range(len(e["actions"])):
            buffer.add(e["observations"][t], int(e["actions"][t]), e["rewards"][t], e["observations"][t + 1],
                       bool(e["terminations"][t]), bool(e["truncations"][t]))
    return buffer


def train_offline(cfg, buffer, seed, progress=None):
    """Offline CQL (alpha = ``offline_alpha``) for ``offline_steps`` updates on the dataset's buffer."""
    agent = QAgent(buffer.obs.shape[1], 4, cfg.hidden, cfg.lr, cfg.offline_alpha, cfg.target_period, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(cfg.offline_steps):
        agent.update(buffer.sample(cfg.batch_size, rng))
        if progress is not None:
            progress.update(1)
    return agent


def greedy_goal(policy):
    """(goal reached by the greedy policy, return) in one episode."""
    episode, goal = rollout(maze_env(), policy, np.random.default_rng(0))
    return goal, float(episode["rewards"].sum())


def make_learner(method, offline, cfg):
    """The learner a ``method`` run starts from: a copy of the offline network with the method's alpha (GDE
    keeps the offline alpha), learning rate ``finetune_lr``; QFinetuner (epsilon-greedy) for CQL/DQN,
    SoftmaxQFinetuner for the softmax control, DiscreteGDE for GDE (both with tau = ``temperature``)."""
    spec = METHODS[method]
    critic = offline.copy(cql_alpha=cfg.offline_alpha if spec.alpha is None else spec.alpha)
    critic.lr = float(cfg.finetune_lr)
    if spec.explore == "gde":
        return DiscreteGDE(critic, cfg.kl_weight, temperature=cfg.temperature)
    if spec.explore == "softmax":
        return SoftmaxQFinetuner(critic, cfg.temperature)
    return QFinetuner(critic, cfg.epsilon)


def finetune(method, offline, cfg, seed, on_step=None, learner=None):
    """One fine-tuning run through the shared loop; returns its log rows, exploration visitation counts,
    final goal and return, and the learner. ``on_step(stage, obs, action, reward, next_obs, info)`` is called
    for every transition (for tracing; it must not act on the run); ``learner`` replaces
    ``make_learner(method, offline, cfg)``, e.g. by a wrapper that records it."""
    learner = make_learner(method, offline, cfg) if learner is None else learner
    env, eval_env, report_env = maze_env(), maze_env(), maze_env()
    obs_dim = env.observation_space.shape[0]
    buffer = ReplayBuffer(cfg.finetune_steps + 1, obs_dim, None, 1, cfg.discount)
    visited = np.zeros(obs_dim)

    def count_and_trace(stage, obs, action, reward, next_obs, info):
        if stage == "explore":
            visited[int(np.argmax(obs))] += 1
        if on_step is not None:
            on_step(stage, obs, action, reward, next_obs, info)

    # GDE's evaluation stages for GDE only; every method's greedy policy is reported every F steps (one
    # episode: the maze and a greedy policy are deterministic), and the final return is the last report (B.1)
    loop = LoopConfig(cfg.finetune_steps, cfg.eval_period, cfg.eval_steps, cfg.batch_size, cfg.learning_starts,
                      evaluation_stages=METHODS[method].explore == "gde", report_period=cfg.eval_period,
                      report_episodes=1)
    rows = run_online(env, eval_env, learner, buffer, loop, np.random.default_rng(seed), seed=seed,
                      on_step=count_and_trace, report_env=report_env)
    goal, _ = greedy_goal(learner.exploit_action)
    return {"rows": report_rows(rows), "stage_rows": [r for r in rows if r["kind"] == "stage"], "visited": visited,
            "goal": goal, "final_return": final_score(rows, 1), "learner": learner}


def _finetune_job(job):
    with blas_threads(1):  # 2x64 networks, one run per core: one BLAS thread each
        result = finetune(*job)
    del result["learner"]  # the networks stay in the worker; the results are what run() needs
    return result


def finetune_all(offline, cfg, jobs, workers=1, progress=None):
    """``finetune(method, offline, cfg, seed)`` for each (method, seed) in ``jobs``, in order. With
    ``workers`` > 1 the runs are spread over that many processes; each run is seeded on its own, so the
    results are the same for any number of workers (tests/test_maze_pipeline.py checks it). ``progress``
    advances by one per finished run."""
    args = [(method, offline, cfg, seed) for method, seed in jobs]
    parallel = workers > 1 and len(args) > 1
    results = []
    with (ProcessPoolExecutor(min(workers, len(args)), mp_context=multiprocessing.get_context("spawn"))
          if parallel else nullcontext()) as pool:
        for result in (pool.map if parallel else map)(_finetune_job, args):  # in order
            results.append(result)
            if progress is not None:
                progress.update(1)
    return results


def _no_progress(desc, total):
    return nullcontext()


def run(cfg, seeds, out, progress=_no_progress, log=print, workers=1):
    """The whole pipeline; writes figures and results.json into ``out`` and returns the results.
    ``workers`` processes share the fine-tuning runs (``finetune_all``). ``progress(desc, total)`` makes a
    context-managed bar (``update(n)``) for each stage, e.g. ``functools.partial(tqdm, ...)``."""
    os.makedirs(out, exist_ok=True)
    env = ToyMaze()
    optimal, right = goal_returns()
    log(f"maze: left (optimal) goal return {optimal}, right goal return {right}")
    with progress("DQN+RND data agent", cfg.data_agent_steps) as bar:
        checkpoints = train_data_agent(cfg, seed=0, progress=bar)
    episodes, composition = collect_dataset(cfg, checkpoints, seed=1)
    log(f"dataset: {composition}")
    from gde_ref.data.datasets import datasets_root, save_dataset
    with datasets_root(os.path.join(out, "minari")):  # each maze run keeps its own dataset
        save_dataset(DATASET_ID, episodes, ENV_ID, float(-MAX_EPISODE_STEPS), float(optimal),
                     algorithm_name="DQN+RND checkpoints", metadata={"composition": composition, "config": asdict(cfg)})
    buffer = to_buffer(episodes, env.obs_dim, cfg.discount)
    with progress("offline CQL", cfg.offline_steps) as bar:
        offline = train_offline(cfg, buffer, seed=2, progress=bar)
    offline_goal, offline_return = greedy_goal(offline.greedy)
    log(f"offline CQL (alpha {cfg.offline_alpha}): {offline_goal} goal, return {offline_return}")
    methods, seeds = {}, list(seeds)
    jobs = [(m, seed) for m in METHODS for seed in seeds]
    with progress(f"fine-tuning runs ({workers} worker{'s' * (workers > 1)})", len(jobs)) as bar:
        all_runs = finetune_all(offline, cfg, jobs, workers, progress=bar)
    for i, method in enumerate(METHODS):
        runs = all_runs[i * len(seeds):(i + 1) * len(seeds)]
        methods[method] = {"final_return": [r["final_return"] for r in runs], "goal": [r["goal"] for r in runs],
                           "curve_steps": [row["env_step"] for row in runs[0]["rows"]],
                           "curves": [[row["eval_return"] for row in r["rows"]] for r in runs],
                           "visited": np.sum([r["visited"] for r in runs], axis=0)}
        log(f"{method}: goals {methods[method]['goal']}, final returns {methods[method]['final_return']}")
    _figures(env, buffer, methods, optimal, right, out)
    results = {"optimal_return": optimal, "right_goal_return": right, "seeds": list(seeds),
               "offline": {"goal": offline_goal, "return": offline_return}, "dataset": composition,
               "config": asdict(cfg),
               "methods": {m: {k: v for k, v in d.items() if k != "visited"} for m, d in methods.items()}}
    write_json(os.path.join(out, "results.json"), results)
    return results


def _figures(env, buffer, methods, optimal, right, out):
    data_counts = visitation_counts(env, buffer.obs[:len(buffer)])
    plots.save(plots.visitation_figure(env, [("offline dataset", data_counts)], "Fig. 2a: dataset visitation"),
               os.path.join(out, "fig2a_dataset_heatmap.png"))
    panels = [(name, visitation_counts(env, methods[m]["visited"][None])) for m, name in
              (("cql_alpha3", "CQL alpha = 3"), ("dqn_alpha0", "DQN (alpha = 0)"),
               ("cql_alpha3_softmax", "CQL alpha = 3, softmax(Q)"), ("gde", "GDE (CQL backbone)"))]
    plots.save(plots.visitation_figure(env, panels, "Fig. 2b: states visited while fine-tuning (all seeds)"),
               os.path.join(out, "fig2b_finetune_heatmaps.png"))
    curves = {m: (d["curve_steps"], d["curves"]) for m, d in methods.items()}
    plots.save(plots.learning_curves(curves, title="Fig. 2c: fine-tuning on the toy maze",
                                     hlines=((optimal, "left goal (optimal)"), (right, "right goal"))),
               os.path.join(out, "fig2c_learning_curves.png"))


def preset(name, **overrides):
    if name not in PRESETS:
        raise ValueError(f"unknown maze preset {name!r}; choose from {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
