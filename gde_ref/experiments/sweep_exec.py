"""Running a sweep's plan (``experiments.sweep``): one job function and three executors.

    run_job(job)    one pretraining or fine-tune, resumed from its checkpoint if it has one; returns
                    {"status": done / interrupted / failed, "score", "seconds", "error"}; never raises
    local           a process pool ('spawn'), one BLAS thread per worker; a fine-tune starts once its agent
                    exists; Ctrl-C: running jobs stop at their next safe point with a checkpoint, none starts
    ray, slurm      optional extras (pip install 'gde_ref[ray]' / 'gde_ref[slurm]'): the agents first, then the
                    fine-tunes, each job submitted as one task (UNTESTED here: the packages are not installed)

OUT/sweep.json (the resolved spec and each job's status) is rewritten atomically as jobs finish.
"""
import datetime
import importlib.util
import multiprocessing
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from gde_ref.checkpoint import write_json
from gde_ref.experiments import sweep as sweep_plan
from gde_ref.experiments.rundir import _Lock, stop_on_interrupt

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_STOP = None   # a worker's stop event (the local executor's initializer sets it)


def run_job(job, stop=None, interrupt_at=None):
    """Run one job of the plan (a dict from ``sweep.plan``) with one BLAS thread. ``stop()``: as the recipes'
    (True: stop at the next safe point with a checkpoint). interrupt_at: tests only (finetune's)."""
    from gde_ref.finetune.loop import RunInterrupted
    from gde_ref.nn.kernels import blas_threads
    stop = stop or ((lambda: _STOP.is_set()) if _STOP is not None else None)
    if stop is not None and stop():
        return {"status": "stopped", "seconds": 0.0}    # stopped before it began: nothing to resume
    t0 = time.perf_counter()
    resume = os.path.isfile(os.path.join(job["dir"], "config.json"))   # rundir restarts a run never checkpointed
    try:
        with blas_threads(1):
            if job["kind"] == "pretrain":
                from gde_ref.experiments.pretrain import pretrain
                summary = pretrain(job["dataset"], job["dir"], job["steps"], seed=job["seed"], backbone=job["backbone"],
                                   eval_every=job["eval_every"], eval_episodes=job["eval_episodes"], resume=resume,
                                   stop=stop, command=job.get("command"))
                score = summary["normalized_score"]
            else:
                from gde_ref.experiments.finetune import finetune
                summary = finetune(job["dataset"], job["algo"], job["dir"], preset=job["preset"], seed=job["seed"],
                                   offline_path=job["offline"], backbone=job["backbone"], resume=resume, stop=stop,
                                   command=job.get("command"), interrupt_at=interrupt_at, **job["overrides"])
                score = summary["final_normalized_score"]
    except RunInterrupted as err:
        return {"status": "interrupted", "step": err.env_step, "seconds": time.perf_counter() - t0}
    except Exception as err:  # noqa: BLE001 (a failed job is reported at the end; the others go on)
        return {"status": "failed", "error": f"{type(err).__name__}: {err}", "seconds": time.perf_counter() - t0}
    return {"status": "done", "score": float(score), "seconds": time.perf_counter() - t0}


def _init_worker(stop):
    """A local worker: one BLAS thread for whatever loads later, Ctrl-C left to the parent (which sets
    ``stop``, so the worker's job stops at its next safe point with a checkpoint)."""
    global _STOP
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ONE_THREAD:
        os.environ[name] = "1"
    _STOP = stop


@contextmanager
def _one_thread_environment():
    """Workers spawned in this context start with one BLAS thread (the variables are read when numpy loads)."""
    saved = {name: os.environ.get(name) for name in ONE_THREAD}
    os.environ.update({name: "1" for name in ONE_THREAD})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_local(jobs, finished, workers, stop_after=None, interrupt_at=None):
    """Run ``jobs`` (those not done) on ``workers`` processes, in plan order as their agents become ready;
    ``finished(job)`` after each. Returns whether the sweep was stopped (Ctrl-C). stop_after: tests only,
    stop as Ctrl-C would after that many jobs."""
    ctx = multiprocessing.get_context("spawn")
    stop_event = ctx.Event()
    ready_agents = {j["name"] for j in jobs if j["kind"] == "pretrain" and j["status"] == "done"}
    pending, running, count = [j for j in jobs if j["status"] != "done"], {}, 0
    with _one_thread_environment(), stop_on_interrupt() as pressed, \
            ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(stop_event,)) as pool:
        try:
            while True:
                if pressed():
                    stop_event.set()
                while not stop_event.is_set() and len(running) < workers:
                    job = next((j for j in pending if j.get("needs") is None or j["needs"] in ready_agents), None)
                    if job is None:
                        break
                    pending.remove(job)
                    running[pool.submit(run_job, job, None, interrupt_at if job["kind"] == "finetune" else None)] = job
                if not running:
                    break
                done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        job.update(future.result())
                    except BrokenProcessPool as err:   # a worker died (killed, out of memory): start no more
                        job.update(status="failed", error=f"its worker process died ({err}); run the sweep again")
                        stop_event.set()
                    if job["status"] == "done" and job["kind"] == "pretrain":
                        ready_agents.add(job["name"])
                    finished(job)
                    count += 1
                    if stop_after is not None and count >= stop_after:
                        stop_event.set()
        except BaseException:   # a second Ctrl-C: the running jobs stop at their next safe point, the pool ends
            stop_event.set()
            raise
    return stop_event.is_set()


def _run_phased(jobs, finished, results):
    """ray / slurm: the offline agents to do, then the fine-tunes whose agents exist; ``results(batch)``
    yields (job, result) as the engine finishes them."""
    ready = {j["name"] for j in jobs if j["kind"] == "pretrain" and j["status"] == "done"}
    for kind in ("pretrain", "finetune"):
        batch = [j for j in jobs if j["kind"] == kind and j["status"] != "done" and j.get("needs", "") in ready | {""}]
        for job, result in results(batch) if batch else ():
            job.update(result)
            if job["status"] == "done" and kind == "pretrain":
                ready.add(job["name"])
            finished(job)
    return False


def _failed(err):
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"}


def _ray_results(address, workers):
    """Ray: each job a task of one CPU on the cluster at ``address``, or on a local Ray instance of ``workers``
    CPUs started here (and shut down when the batch is done) when ``address`` is None."""
    def results(batch):
        import ray
        started = not ray.is_initialized()
        if started:
            ray.init(address=address, **({} if address else {"num_cpus": workers}), include_dashboard=False,
                     log_to_driver=False)
        try:
            task = ray.remote(num_cpus=1)(run_job)
            refs = {task.remote(job): job for job in batch}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                job = refs.pop(ready[0])
                try:
                    yield job, ray.get(ready[0])
                except Exception as err:  # noqa: BLE001 (a task that died)
                    yield job, _failed(err)
        finally:
            if started:
                ray.shutdown()
    return results


def _slurm_results(out, slurm):
    """Slurm through submitit: each job one submission (``slurm``: partition, time_min, cpus_per_task; cluster:
    submitit's, None to detect Slurm, "local" to run the submissions as local processes, as the tests do)."""
    def results(batch):
        import submitit
        executor = submitit.AutoExecutor(folder=os.path.join(out, "slurm", "%j"), cluster=slurm.get("cluster"))
        executor.update_parameters(timeout_min=slurm.get("time_min", 240), cpus_per_task=slurm.get("cpus_per_task", 1),
                                   **({"slurm_partition": slurm["partition"]} if slurm.get("partition") else {}))
        submitted = [(executor.submit(run_job, job), job) for job in batch]
        while submitted:
            for item in [s for s in submitted if s[0].done()]:
                submitted.remove(item)
                try:
                    yield item[1], item[0].result()
                except Exception as err:  # noqa: BLE001 (a job that died or timed out)
                    yield item[1], _failed(err)
            time.sleep(1 if submitted else 0)
    return results


def _line(job, n, total):
    where = f"[{n}/{total}] {job['kind']} {job['name']}"
    seconds = f"{job.get('seconds', 0):.0f} s"
    if job["status"] == "done":
        label = "normalized score" if job["kind"] == "pretrain" else "final normalized score"
        return f"{where}: {label} {job['score']:.1f}, {seconds}"
    if job["status"] == "interrupted":
        return f"{where}: interrupted at step {job.get('step')} (its checkpoint is kept), {seconds}"
    return f"{where}: {job['status'].upper()}: {job.get('error', 'not run')}"


def _settle(jobs):
    """Jobs left unstarted or unfinished are todo or resume again (a checkpoint); those whose agent failed say so."""
    failed_agents = {j["name"] for j in jobs if j["kind"] == "pretrain" and j["status"] == "failed"}
    for job in jobs:
        if job["status"] in ("todo", "resume", "stopped"):
            job["status"] = "resume" if os.path.isfile(os.path.join(job["dir"], "checkpoint.npz")) else "todo"
            if job.get("needs") in failed_agents:
                job["error"] = f"not run: its offline agent {job['needs']} failed"


def write_state(out, spec, jobs, command=None):
    """OUT/sweep.json, atomically: the resolved spec and each job's status, score and directory."""
    keep = ("kind", "name", "status", "score", "seconds", "error", "needs", "algo", "dataset", "backbone", "seed",
            "overrides", "steps")
    write_json(os.path.join(out, "sweep.json"), {
        "spec": {**spec, "out": out}, "command": command,
        "updated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "jobs": [{**{k: j[k] for k in keep if k in j}, "dir": os.path.relpath(j["dir"], out)} for j in jobs]})


def run_sweep(spec, out=None, executor="local", workers=None, address=None, slurm=None, log=print, command=None,
              stop_after=None, interrupt_at=None):
    """Run what ``spec``'s plan has left to do (``sweep.plan``); returns {"jobs", "ran", "failed", "stopped"}.

    executor: local (``workers`` processes, default the cores), ray (``address``: a running cluster, None
    starts a local one) or slurm (``slurm``: partition, time_min, cpus_per_task). log: one line per finished
    job and the totals. stop_after, interrupt_at: tests only (stop as Ctrl-C would after that many jobs;
    every fine-tune raises ``RunInterrupted`` after its checkpoint at or after that env step)."""
    if executor not in ("local", "ray", "slurm"):
        raise ValueError(f"unknown executor {executor!r}; choose local, ray or slurm")
    package = {"ray": "ray", "slurm": "submitit"}.get(executor)
    if package and importlib.util.find_spec(package) is None:
        raise ValueError(f"--executor {executor} needs {package}: pip install 'gde_ref[{executor}]'")
    workers = workers or sweep_plan.default_workers()
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    jobs = sweep_plan.plan(spec, out)   # refuses a missing --out, a missing dataset, a directory of another run
    out = os.path.abspath(out or spec["out"])
    os.makedirs(out, exist_ok=True)
    lock = _Lock(out).acquire()    # one sweep per directory at a time
    try:
        for job in jobs:
            job["command"] = f"{command or 'gde-ref sweep'} (job {job['name']})"
        write_state(out, spec, jobs, command)
        todo = [j for j in jobs if j["status"] != "done"]
        log(f"sweep {out}: {len(jobs) - len(todo)} of {len(jobs)} jobs done before, {len(todo)} to run"
            + (f" on {workers} worker(s)" if todo and executor == "local" else f" ({executor})" if todo else ""))
        counter = iter(range(1, len(todo) + 1))

        def finished(job):
            if job["status"] != "stopped":
                log(_line(job, next(counter), len(todo)))
            write_state(out, spec, jobs, command)

        stopped = False
        try:
            if todo and executor == "local":
                stopped = _run_local(jobs, finished, min(workers, len(todo)), stop_after, interrupt_at)
            elif todo:
                results = _ray_results(address, workers) if executor == "ray" else _slurm_results(out, slurm or {})
                stopped = _run_phased(jobs, finished, results)
        finally:   # also after a second Ctrl-C: sweep.json says what is left
            _settle(jobs)
            write_state(out, spec, jobs, command)
    finally:
        lock.release()
    ran = [j for j in todo if j["status"] in ("done", "failed", "interrupted")]
    failed = [j for j in jobs if j["status"] == "failed"]
    left = [j for j in jobs if j["status"] != "done"]
    for job in failed:
        waiting = sum(j.get("needs") == job["name"] for j in jobs)
        log(f"FAILED {job['kind']} {job['name']} ({job['dir']}): {job['error']}"
            + (f" (its {waiting} fine-tune(s) were not run)" if waiting else ""))
    log(f"sweep {out}: {len(jobs) - len(left)} of {len(jobs)} jobs done, {len(failed)} failed"
        + (f"; {len(left) - len(failed)} left: run the same command again to continue" if left else "")
        + "; sweep.json written")
    return {"jobs": jobs, "ran": ran, "failed": failed, "stopped": stopped}
