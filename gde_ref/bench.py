"""Throughput benchmark: ``gde-ref bench [--json]``.

Measures on the current machine, for hopper (obs 11, act 3) and halfcheetah (obs 17, act 6)
dimensions, batch 256 and 2x256 MLPs:

* ``gde_steps_per_s`` / ``iql_steps_per_s``: full update steps (``GDELearner.update``, ``IQLAgent.update``);
* ``act_latency_us``: one ``IQLAgent.act(obs)`` call (single observation, deterministic mean action);
* ``blas_floor_steps_per_s``: exactly the GDE step's matrix products (``gde_step_products``), run one
  after the other through NumPy's BLAS at the same shapes with preallocated outputs: what a step would
  cost if everything but the matrix products were free;
* ``compile_s``: time of the first update/act calls in this process (compilation, or loading the
  on-disk cache when ``compile_from_cache``), ``second_process_ready_s``: wall time of a fresh Python
  process that imports gde_ref, builds the agents, runs one GDE step and one action;
* ``threads``: BLAS threads in use.
Rates are the median over several timed rounds.
"""
import os
import subprocess
import sys
import time

import numpy as np

from gde_ref.agents.iql import IQLAgent
from gde_ref.config import IQLConfig
from gde_ref.data import Batch
from gde_ref.finetune.gde import GDELearner

TASK_DIMS = {"hopper": (11, 3), "halfcheetah": (17, 6)}

# The passes of one IQL step and of GDE's extra exploration step, in the order the kernels run them:
# (kind, network, param_grads, input_grad); networks: "q" critic, "v" value, "pi" actor.
IQL_PASSES = [
    ("forward", "q"), ("forward", "q"),                                   # target twins Q'(s, a)
    ("forward", "v"), ("backward", "v", True, False),                     # Eq. 2, V
    ("forward", "v"),                                                     # V(s')
    ("forward", "q"), ("forward", "q"),                                   # Eq. 3, Q1, Q2
    ("backward", "q", True, False), ("backward", "q", True, False),
    ("forward", "v"),                                                     # V(s) after its update
    ("forward", "pi"), ("backward", "pi", True, False),                   # Eq. 4, exploitation actor
]
EXPLORE_PASSES = [
    ("forward", "pi"), ("forward", "pi"),                                 # exploration and teacher actors
    ("forward", "q"), ("forward", "q"),                                   # Q1, Q2 at (s, pi_b(s))
    ("backward", "q", False, True), ("backward", "q", False, True),       # dQ/da through both twins
    ("backward", "pi", True, False),                                      # Eq. 5, exploration actor
]


def mlp_products(sizes, batch, kind, param_grads=True, input_grad=False):
    """The matrix products one MLP pass issues, as (m, k, n, transpose_a, transpose_b) with out (m, n).

    Mirrors ``kernels.mlp_forward`` (x W per layer) and ``kernels.mlp_backward`` (x^T delta for the
    weights, delta W^T for the layer below; the first layer's delta W^T only for an input gradient).
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    if kind == "forward":
        return [(batch, n_in, n_out, False, False) for n_in, n_out in layers]
    out = []
    for k in range(len(layers) - 1, -1, -1):
        n_in, n_out = layers[k]
        if param_grads:
            out.append((n_in, batch, n_out, True, False))
        if k > 0 or input_grad:
            out.append((batch, n_out, n_in, False, True))
    return out


def step_products(passes, obs_dim, act_dim, hidden=(256, 256), batch=256):
    """Every matrix product of a list of passes, in order."""
    sizes = {"q": [obs_dim + act_dim, *hidden, 1], "v": [obs_dim, *hidden, 1], "pi": [obs_dim, *hidden, act_dim]}
    out = []
    for kind, net, *flags in passes:
        out += mlp_products(sizes[net], batch, kind, *flags)
    return out


def gde_step_products(obs_dim, act_dim, hidden=(256, 256), batch=256):
    """The matrix products of one GDE update step (IQL step + exploration step)."""
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


def blas_floor(products, seconds, dtype=np.float32, seed=0):
    """Steps/s of running ``products`` through NumPy's matmul with preallocated operands and outputs."""
    rng = np.random.default_rng(seed)
    ops = []
    for m, k, n, ta, tb in products:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        ops.append((a.T if ta else a, b.T if tb else b, np.empty((m, n), dtype)))

    def run():
        for a, b, out in ops:
            np.matmul(a, b, out=out)
    return _median_rate(run, seconds)


def random_batch(rng, obs_dim, act_dim, batch, discount=0.99):
    f32 = np.float32
    return Batch(rng.standard_normal((batch, obs_dim), dtype=f32),
                 np.tanh(rng.standard_normal((batch, act_dim), dtype=f32)),
                 rng.standard_normal(batch, dtype=f32), np.full(batch, discount, f32),
                 rng.standard_normal((batch, obs_dim), dtype=f32))


def _make(obs_dim, act_dim, seed=0):
    agent = IQLAgent(obs_dim, act_dim, IQLConfig(), seed=seed)
    return agent, GDELearner(agent)


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
    from gde_ref.agents import iql
    from gde_ref.finetune import gde
    obs_dim, act_dim = TASK_DIMS["hopper"]
    agent, learner = _make(obs_dim, act_dim)
    batch = random_batch(np.random.default_rng(0), obs_dim, act_dim, 256)
    t0 = time.perf_counter()
    agent.update(batch)
    learner.update(batch, 0.3)
    agent.act(batch.obs[0])
    seconds = time.perf_counter() - t0
    dispatchers = (iql.iql_update_kernel, gde.gde_update_kernel, iql.mean_action_kernel)
    from_cache = all(d.stats.cache_hits and not d.stats.cache_misses for d in dispatchers)
    return seconds, bool(from_cache)


def run_bench(seconds=2.0, tasks=("hopper", "halfcheetah"), batch=256, progress=None):
    """Run every measurement; returns the result dict (see the module docstring)."""
    compile_s, cached = compile_time()
    result = {k: {} for k in ("gde_steps_per_s", "iql_steps_per_s", "act_latency_us", "blas_floor_steps_per_s",
                              "gde_over_floor", "gflop_per_gde_step")}
    for task in tasks:
        obs_dim, act_dim = TASK_DIMS[task]
        rng = np.random.default_rng(1)
        batches = [random_batch(rng, obs_dim, act_dim, batch) for _ in range(4)]
        agent, learner = _make(obs_dim, act_dim)
        it = iter(range(1 << 62))
        result["iql_steps_per_s"][task] = _median_rate(lambda: agent.update(batches[next(it) % 4]), seconds)
        result["gde_steps_per_s"][task] = _median_rate(lambda: learner.update(batches[next(it) % 4], 0.3), seconds)
        obs = batches[0].obs[0].copy()
        n_calls = 2000
        calls = _median_rate(lambda: [agent.act(obs) for _ in range(n_calls)], seconds / 2)
        result["act_latency_us"][task] = 1e6 / (calls * n_calls)
        products = gde_step_products(obs_dim, act_dim, batch=batch)
        result["blas_floor_steps_per_s"][task] = blas_floor(products, seconds)
        result["gde_over_floor"][task] = result["gde_steps_per_s"][task] / result["blas_floor_steps_per_s"][task]
        result["gflop_per_gde_step"][task] = flops(products) / 1e9
        if progress:
            progress(task)
    threads, libs = blas_threads()
    result.update(compile_s=compile_s, compile_from_cache=cached,
                  second_process_ready_s=second_process_ready_s(*TASK_DIMS[tasks[0]]),
                  threads=threads if threads is not None else os.cpu_count(), blas=libs,
                  machine={"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                           "numpy": np.__version__, "numba": __import__("numba").__version__},
                  batch=batch, hidden=[256, 256], seconds_per_measurement=seconds)
    return result


def format_table(r):
    """The benchmark as a small text table."""
    rows = [("GDE update steps/s", "gde_steps_per_s", "{:.0f}"), ("IQL update steps/s", "iql_steps_per_s", "{:.0f}"),
            ("BLAS floor steps/s", "blas_floor_steps_per_s", "{:.0f}"), ("GDE / floor", "gde_over_floor", "{:.2f}"),
            ("act latency (us)", "act_latency_us", "{:.2f}"), ("GFLOP per GDE step", "gflop_per_gde_step", "{:.3f}")]
    tasks = list(r["gde_steps_per_s"])
    lines = [f"{'':24s}" + "".join(f"{t:>14s}" for t in tasks)]
    for label, key, fmt in rows:
        lines.append(f"{label:24s}" + "".join(f"{fmt.format(r[key][t]):>14s}" for t in tasks))
    lines.append(f"first-call compile: {r['compile_s']:.1f} s ({'from cache' if r['compile_from_cache'] else 'compiled'}); "
                 f"second process ready to train: {r['second_process_ready_s']:.2f} s; BLAS threads: {r['threads']}")
    return "\n".join(lines)
