"""Throughput benchmark: ``gde-ref bench [--json]``.

Measures on the current machine, for hopper (obs 11, act 3) and halfcheetah (obs 17, act 6)
dimensions, batch 256 and 2x256 MLPs:

* ``gde_steps_per_s`` / ``iql_steps_per_s``: full update steps (``GDELearner.update``, ``IQLAgent.update``);
* ``td3bc_steps_per_s`` / ``gde_td3bc_steps_per_s``: TD3+BC update steps (``TD3BCAgent.update``) and GDE steps on
  the TD3+BC backbone (``GDELearner(TD3BCAgent).update``), each timed over whole ``policy_freq`` cycles (critic
  steps, one of them followed by the actor step) and counted per update;
* ``cql_steps_per_s``: CQL update steps (``CQLAgent.update``, M = 10 sampled actions per kind, noise drawn
  included); at about 0.1 s a step they are timed with fewer calls than the others (see ``run_bench``);
* ``sac_steps_per_s``: SAC update steps (``SACAgent.update``, noise drawn included);
* ``iql_pretrain_steps_per_s``: IQL pretraining steps as ``gde-ref pretrain`` runs them (a batch drawn
  from the dataset arrays, then ``IQLAgent.update`` with the cosine actor learning rate);
* ``act_latency_us``: one ``IQLAgent.act(obs)`` call (single observation, deterministic mean action);
  ``explore_act_us`` / ``exploit_act_us``: one call of what the fine-tuning loop calls per env step,
  ``GDEFinetuner.explore_action(obs, rng)`` (a sample of pi_b, the state normalised) and ``exploit_action(obs)``;
* ``blas_floor_steps_per_s``: exactly the GDE step's BLAS matrix products (``step_plan``), run one
  after the other through NumPy's BLAS at the same shapes, each on an array standing for the one the
  step uses (every network's own weights, activations, deltas, gradients): what a step would cost if
  everything but the matrix products were free; ``td3bc_blas_floor_steps_per_s`` and
  ``gde_td3bc_blas_floor_steps_per_s`` the same for ``TD3BC_PASSES`` (one cycle, counted per update) and
  ``GDE_TD3BC_PASSES``, ``cql_blas_floor_steps_per_s`` for ``CQL_PASSES`` (the pass lists are in
  ``gde_ref.bench_passes``); ``*_over_floor``: step rate / floor rate (median of per-round ratios);
* ``gde_gflops``: the GDE step's GFLOP/s (``gflop_per_gde_step`` x steps/s); ``machine_gflops``: one large
  2048^3 float32 product's GFLOP/s in the same run (``large_product_gflops``), the machine's practical limit;
  ``gde_over_machine``: their ratio;
* ``compile_s``: time of the first update/act calls in this process (compilation, or loading the
  on-disk cache when ``compile_from_cache``), ``second_process_ready_s``: wall time of a fresh Python
  process that imports gde_ref, builds the agents, runs one GDE step and one action;
* ``threads``: BLAS threads in use.
Rates are medians over interleaved timed rounds (see ``run_bench``).
"""
import os
import subprocess
import sys
import time

import numpy as np

from gde_ref.agents.cql import CQLAgent
from gde_ref.agents.iql import IQLAgent
from gde_ref.agents.td3bc import TD3BCAgent
from gde_ref.bench_passes import (CQL_PASSES, EXPLORE_PASSES, GDE_TD3BC_PASSES, IQL_PASSES, KIND, PARAMS, POLICY_FREQ,
                                  TD3BC_PASSES)
from gde_ref.config import IQLConfig
from gde_ref.data import Batch
from gde_ref.data.prepare import ObsNormalizer
from gde_ref.finetune.gde import GDEFinetuner, GDELearner

TASK_DIMS = {"hopper": (11, 3), "halfcheetah": (17, 6)}

def is_blas_product(product):
    """Whether the kernels send this product to BLAS: all but delta W^T through a one-output layer,
    an outer product that ``kernels.dense_backward_input`` computes with a loop."""
    m, k, n, ta, tb = product
    return not (k == 1 and tb)


def step_plan(passes, obs_dim, act_dim, hidden=(256, 256), batch=256):
    """Every BLAS product of a list of passes (``gde_ref.bench_passes``), in order, with the arrays it reads
    and writes.

    Returns [(shape, a, b, out)]: shape = (m, k, n, transpose_a, transpose_b), out (m, n) = op(a) op(b),
    and a, b, out are names of arrays with the roles they have in the kernels ("W", net, layer),
    ("act", net, layer), ("delta", net, slot), ("dW", net, layer), ("dx", net), ("d_out", net), or an
    input batch; a record sharing another's parameters (PARAMS) reads that one's "W". This mirrors
    ``kernels.mlp_forward`` (x W per layer) and ``kernels.mlp_backward`` (x^T delta for the weights,
    delta W^T for the layer below; the first layer's only for an input gradient; none through a
    one-output layer, which is a loop), on rows * batch rows (a backward on its forward's rows).
    """
    sizes = {"q": [obs_dim + act_dim, *hidden, 1], "v": [obs_dim, *hidden, 1], "pi": [obs_dim, *hidden, act_dim],
             "sq": [obs_dim, *hidden, 2 * act_dim]}
    inputs, rows, plan = {}, {}, []
    for kind, net, *args in passes:
        layers = list(zip(sizes[KIND[net]][:-1], sizes[KIND[net]][1:]))
        weights = PARAMS.get(net, net)
        if kind == "forward":
            inputs[net], rows[net] = ("input", args[0]), batch * (args[1] if len(args) > 1 else 1)
            for k, (n_in, n_out) in enumerate(layers):
                src = inputs[net] if k == 0 else ("act", net, k - 1)
                plan.append(((rows[net], n_in, n_out, False, False), src, ("W", weights, k), ("act", net, k)))
            continue
        param_grads, input_grad = args
        delta, n = ("d_out", net), rows[net]
        for k in range(len(layers) - 1, -1, -1):
            n_in, n_out = layers[k]
            src = inputs[net] if k == 0 else ("act", net, k - 1)
            if param_grads:
                plan.append(((n_in, n, n_out, True, False), src, delta, ("dW", net, k)))
            if (k > 0 or input_grad) and n_out > 1:
                out = ("delta", net, k % 2) if k > 0 else ("dx", net)
                plan.append(((n, n_out, n_in, False, True), delta, ("W", weights, k), out))
            if k > 0:
                delta = ("delta", net, k % 2)
    return plan


def step_products(passes, obs_dim, act_dim, hidden=(256, 256), batch=256):
    """The shapes (m, k, n, transpose_a, transpose_b) of a step's BLAS products, in order."""
    return [p[0] for p in step_plan(passes, obs_dim, act_dim, hidden, batch)]


def gde_step_products(obs_dim, act_dim, hidden=(256, 256), batch=256):
    """The BLAS products of one GDE update step (IQL step + exploration step)."""
    return step_products(IQL_PASSES + EXPLORE_PASSES, obs_dim, act_dim, hidden, batch)


def flops(products):
    return sum(2 * m * k * n for m, k, n, _, _ in products)


def _median_rate(fn, seconds, rounds=5):
    """Calls per second of fn(): median over ``rounds`` rounds of about seconds/rounds each."""
    fn()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.05 or n < 2:
        fn()
        n += 1
    per_round = max(1, int(n * seconds / rounds / (time.perf_counter() - t0)))
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        rates.append(per_round / (time.perf_counter() - t0))
    return float(np.median(rates))


def _budget_rate(fn, seconds):
    """Calls per second of fn() over about ``seconds`` (at least one call, no warm-up): for slow steps."""
    t0, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def large_product_gflops(seconds, n=2048, dtype=np.float32):
    """GFLOP/s of one large n x n x n product (NumPy's BLAS, this process's threads): the machine's practical
    limit for a step made of products, against which ``gde_over_machine`` puts the GDE step's GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    return _median_rate(lambda: np.matmul(a, b, out=out), seconds) * 2 * n ** 3 / 1e9


def blas_floor_step(plan, dtype=np.float32, seed=0):
    """A function running the plan's products through NumPy's matmul, each on its own named array.

    Arrays are allocated once, one per name, with the shapes and roles they have in the real step
    (each network's weights, activations, deltas and gradients), so the floor touches the same amount
    of memory as the step does; only the elementwise work is missing.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    largest = max(m * n for (m, k, n, _, _), *_ in plan)

    def array(name, shape):
        if name[0] == "delta":  # the two ping-pong halves are flat buffers reshaped per layer
            flat = arrays.setdefault(name, rng.standard_normal(largest).astype(dtype))
            return flat[:shape[0] * shape[1]].reshape(shape)
        if name not in arrays:
            arrays[name] = rng.standard_normal(shape).astype(dtype)
        return arrays[name]

    ops = []
    for (m, k, n, ta, tb), a_name, b_name, out_name in plan:
        a = array(a_name, (k, m) if ta else (m, k))
        b = array(b_name, (n, k) if tb else (k, n))
        ops.append((a.T if ta else a, b.T if tb else b, array(out_name, (m, n))))

    def run():
        for a, b, out in ops:
            np.matmul(a, b, out=out)
    return run


def blas_floor(plan, seconds, dtype=np.float32):
    """Steps/s of ``blas_floor_step(plan)``."""
    return _median_rate(blas_floor_step(plan, dtype), seconds)


def random_batch(rng, obs_dim, act_dim, batch, discount=0.99):
    f32 = np.float32
    return Batch(rng.standard_normal((batch, obs_dim), dtype=f32),
                 np.tanh(rng.standard_normal((batch, act_dim), dtype=f32)),
                 rng.standard_normal(batch, dtype=f32), np.full(batch, discount, f32),
                 rng.standard_normal((batch, obs_dim), dtype=f32))


def _make(obs_dim, act_dim, seed=0):
    agent = IQLAgent(obs_dim, act_dim, IQLConfig(), seed=seed)
    return agent, GDELearner(agent)


def _sac_rate(obs_dim, act_dim, batches, seconds):
    """SAC update steps per second (2x256, the same batches)."""
    from gde_ref.agents.sac import SACAgent
    agent, rng = SACAgent(obs_dim, act_dim, seed=0), np.random.default_rng(0)
    it = iter(range(1 << 62))
    return _median_rate(lambda: agent.update(batches[next(it) % len(batches)], rng), seconds)


def _pretrain_rate(obs_dim, act_dim, batch, seconds, n=100_000):
    """IQL pretraining steps per second: sampling from 100k stored transitions plus the update."""
    from gde_ref.data.prepare import ObsNormalizer, TrainingArrays
    from gde_ref.agents.iql import cosine_lr
    rng = np.random.default_rng(2)
    f32 = np.float32
    arrays = TrainingArrays(rng.standard_normal((n, obs_dim), dtype=f32), np.tanh(rng.standard_normal((n, act_dim), dtype=f32)),
                            rng.standard_normal(n, dtype=f32), np.full(n, 0.99, f32), rng.standard_normal((n, obs_dim), dtype=f32),
                            ObsNormalizer.identity(obs_dim), 1.0)
    agent = IQLAgent(obs_dim, act_dim, IQLConfig(), seed=0)
    step = iter(range(1 << 62))
    return _median_rate(lambda: agent.update(arrays.batch(rng, batch), actor_lr=cosine_lr(3e-4, next(step), 10**6)),
                        seconds)


def blas_threads():
    """BLAS threads (threadpoolctl's view of the loaded BLAS libraries), and the libraries."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None, []
    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return (max(i["num_threads"] for i in libs) if libs else None), [
        {k: i.get(k) for k in ("internal_api", "num_threads", "version", "filepath")} for i in libs]


_PROBE = """
import time, numpy as np
from gde_ref.bench import _make, random_batch
agent, gde = _make({o}, {a})
gde.update(random_batch(np.random.default_rng(0), {o}, {a}, 256), 0.3)
agent.act(np.zeros({o}, np.float32))
"""


def second_process_ready_s(obs_dim, act_dim):
    """Wall time of a new interpreter importing gde_ref and doing one GDE step and one action."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _PROBE.format(o=obs_dim, a=act_dim)], check=True)
    return time.perf_counter() - t0


def compile_time():
    """(seconds for the first update and act calls, whether every kernel came from the disk cache)."""
    from gde_ref.agents import actors, iql
    obs_dim, act_dim = TASK_DIMS["hopper"]
    agent, learner = _make(obs_dim, act_dim)
    batch = random_batch(np.random.default_rng(0), obs_dim, act_dim, 256)
    t0 = time.perf_counter()
    agent.update(batch)
    learner.update(batch, 0.3)
    agent.act(batch.obs[0])
    seconds = time.perf_counter() - t0
    dispatchers = (iql.iql_update, actors.exploration_step, actors.policy_action)
    from_cache = all(d.stats.cache_hits and not d.stats.cache_misses for d in dispatchers)
    return seconds, bool(from_cache)


def run_bench(seconds=2.0, tasks=("hopper", "halfcheetah"), batch=256, rounds=7, progress=None):
    """Run every measurement; returns the result dict (see the module docstring).

    GDE steps, IQL steps, TD3+BC steps, GDE steps on TD3+BC and their BLAS floors are timed in interleaved
    rounds, so that a slow spell of the machine (a shared host drifts by tens of percent) affects all alike;
    each is the median over rounds, and each ``*_over_floor`` is the median of the per-round ratios. The
    TD3+BC functions run one whole cycle (POLICY_FREQ updates) per call, their rates are counted per update.
    CQL and its floor (about 0.1 s a step) are called once before the rounds (compilation) and timed in each
    round over a quarter of the others' budget, at least one call (``_budget_rate``).
    """
    compile_s, cached = compile_time()
    timed = ("gde", "iql", "blas_floor", "td3bc", "td3bc_blas_floor", "gde_td3bc", "gde_td3bc_blas_floor", "cql",
             "cql_blas_floor")
    keys = ("gde_steps_per_s", "iql_steps_per_s", "act_latency_us", "blas_floor_steps_per_s", "gde_over_floor",
            "td3bc_steps_per_s", "td3bc_blas_floor_steps_per_s", "td3bc_over_floor", "gde_td3bc_steps_per_s",
            "gde_td3bc_blas_floor_steps_per_s", "gde_td3bc_over_floor", "cql_steps_per_s",
            "cql_blas_floor_steps_per_s", "cql_over_floor", "gflop_per_gde_step", "gde_gflops", "gde_over_machine",
            "sac_steps_per_s", "iql_pretrain_steps_per_s", "explore_act_us", "exploit_act_us")
    result = {k: {} for k in keys}
    for task in tasks:
        obs_dim, act_dim = TASK_DIMS[task]
        rng = np.random.default_rng(1)
        batches = [random_batch(rng, obs_dim, act_dim, batch) for _ in range(4)]
        agent, learner = _make(obs_dim, act_dim)
        it = iter(range(1 << 62))
        iql = lambda: agent.update(batches[next(it) % 4])  # noqa: E731
        gde = lambda: learner.update(batches[next(it) % 4], 0.3)  # noqa: E731
        plan = step_plan(IQL_PASSES + EXPLORE_PASSES, obs_dim, act_dim, batch=batch)
        floor = blas_floor_step(plan)
        td3, gde_td3 = TD3BCAgent(obs_dim, act_dim, seed=0), GDELearner(TD3BCAgent(obs_dim, act_dim, seed=0))
        td3bc = lambda: [td3.update(batches[next(it) % 4]) for _ in range(POLICY_FREQ)]  # noqa: E731
        gde_td3bc = lambda: [gde_td3.update(batches[next(it) % 4], 0.3) for _ in range(POLICY_FREQ)]  # noqa: E731
        fns = (gde, iql, floor, td3bc, blas_floor_step(step_plan(TD3BC_PASSES, obs_dim, act_dim, batch=batch)),
               gde_td3bc, blas_floor_step(step_plan(GDE_TD3BC_PASSES, obs_dim, act_dim, batch=batch)))
        cql_agent = CQLAgent(obs_dim, act_dim, seed=0)
        slow = (lambda: cql_agent.update(batches[next(it) % 4]),  # noqa: E731
                blas_floor_step(step_plan(CQL_PASSES, obs_dim, act_dim, batch=batch)))
        for f in slow:
            f()
        updates_per_call = np.array([1, 1, 1] + [POLICY_FREQ] * 4 + [1, 1])
        per = seconds / rounds
        rates = np.array([[_median_rate(f, per, rounds=1) for f in fns] + [_budget_rate(f, per / 4) for f in slow]
                          for _ in range(rounds)]) * updates_per_call
        rates = dict(zip(timed, rates.T))
        for name in timed:
            result[f"{name}_steps_per_s"][task] = float(np.median(rates[name]))
        for name in ("gde", "td3bc", "gde_td3bc", "cql"):
            floor_name = "blas_floor" if name == "gde" else f"{name}_blas_floor"
            result[f"{name}_over_floor"][task] = float(np.median(rates[name] / rates[floor_name]))
        result["gflop_per_gde_step"][task] = flops([p[0] for p in plan]) / 1e9
        result["gde_gflops"][task] = result["gflop_per_gde_step"][task] * result["gde_steps_per_s"][task]
        result["sac_steps_per_s"][task] = _sac_rate(obs_dim, act_dim, batches, seconds / 2)
        result["iql_pretrain_steps_per_s"][task] = _pretrain_rate(obs_dim, act_dim, batch, seconds / 2)
        obs = batches[0].obs[0].copy()
        n_calls = 2000
        calls = _median_rate(lambda: [agent.act(obs) for _ in range(n_calls)], seconds / 2)
        result["act_latency_us"][task] = 1e6 / (calls * n_calls)
        finetuner, act_rng = GDEFinetuner(learner, ObsNormalizer.identity(obs_dim), 1.0), np.random.default_rng(0)
        calls = _median_rate(lambda: [finetuner.explore_action(obs, act_rng) for _ in range(n_calls)], seconds / 2)
        result["explore_act_us"][task] = 1e6 / (calls * n_calls)
        calls = _median_rate(lambda: [finetuner.exploit_action(obs) for _ in range(n_calls)], seconds / 2)
        result["exploit_act_us"][task] = 1e6 / (calls * n_calls)
        if progress:
            progress(task)
    machine_gflops = large_product_gflops(seconds / 2)
    for task in tasks:
        result["gde_over_machine"][task] = result["gde_gflops"][task] / machine_gflops
    threads, libs = blas_threads()
    result.update(machine_gflops=machine_gflops, compile_s=compile_s, compile_from_cache=cached,
                  second_process_ready_s=second_process_ready_s(*TASK_DIMS[tasks[0]]),
                  threads=threads if threads is not None else os.cpu_count(), blas=libs,
                  machine={"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                           "numpy": np.__version__, "numba": __import__("numba").__version__},
                  batch=batch, hidden=[256, 256], seconds_per_measurement=seconds, rounds=rounds)
    return result


def format_table(r):
    """The benchmark as a small text table."""
    rows = [("GDE update steps/s", "gde_steps_per_s", "{:.0f}"), ("IQL update steps/s", "iql_steps_per_s", "{:.0f}"),
            ("BLAS floor steps/s", "blas_floor_steps_per_s", "{:.0f}"), ("GDE / floor", "gde_over_floor", "{:.2f}"),
            ("TD3+BC update steps/s", "td3bc_steps_per_s", "{:.0f}"),
            ("TD3+BC floor steps/s", "td3bc_blas_floor_steps_per_s", "{:.0f}"),
            ("TD3+BC / floor", "td3bc_over_floor", "{:.2f}"), ("GDE-TD3+BC steps/s", "gde_td3bc_steps_per_s", "{:.0f}"),
            ("GDE-TD3+BC floor steps/s", "gde_td3bc_blas_floor_steps_per_s", "{:.0f}"),
            ("GDE-TD3+BC / floor", "gde_td3bc_over_floor", "{:.2f}"),
            ("CQL update steps/s", "cql_steps_per_s", "{:.1f}"),
            ("CQL floor steps/s", "cql_blas_floor_steps_per_s", "{:.1f}"), ("CQL / floor", "cql_over_floor", "{:.2f}"),
            ("SAC update steps/s", "sac_steps_per_s", "{:.0f}"),
            ("IQL pretrain steps/s", "iql_pretrain_steps_per_s", "{:.0f}"),
            ("act latency (us)", "act_latency_us", "{:.2f}"), ("GDE explore action (us)", "explore_act_us", "{:.2f}"),
            ("GDE exploit action (us)", "exploit_act_us", "{:.2f}"), ("GFLOP per GDE step", "gflop_per_gde_step", "{:.3f}"),
            ("GDE step GFLOP/s", "gde_gflops", "{:.0f}"), ("GDE / machine limit", "gde_over_machine", "{:.2f}")]
    tasks = list(r["gde_steps_per_s"])
    lines = [f"{'':24s}" + "".join(f"{t:>14s}" for t in tasks)]
    for label, key, fmt in rows:
        lines.append(f"{label:24s}" + "".join(f"{fmt.format(r[key][t]):>14s}" for t in tasks))
    lines.append(f"machine limit (one 2048^3 float32 product): {r['machine_gflops']:.0f} GFLOP/s")
    lines.append(f"first-call compile: {r['compile_s']:.1f} s ({'from cache' if r['compile_from_cache'] else 'compiled'}); "
                 f"second process ready to train: {r['second_process_ready_s']:.2f} s; BLAS threads: {r['threads']}")
    return "\n".join(lines)
