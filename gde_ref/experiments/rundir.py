"""Run directories: one directory, one run.

``RUN/config.json`` says what the run is (``kind``: "finetune" or "pretrain", its settings) and where it
came from (``provenance``: package version, git commit when there is one, command line, date, BLAS
threads). ``claim`` is the one door into a run directory:

* a second process on the same directory is refused (an exclusive ``flock`` on ``RUN/.lock``, released
  when the process ends, even if it is killed);
* a run with other settings, or of another kind (fine-tuning into a pretraining directory), is refused;
* the same run again is refused unless it is resumed (``--resume``); ``--force`` deletes the run's own
  files (the names in ``RUN_FILES``, nothing else) and starts over.
"""
import datetime
import fcntl
import os
import platform
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

from gde_ref import __version__
from gde_ref.checkpoint import write_json

RUN_FILES = ("config.json", "log.csv", "summary.json", "curve.png", "checkpoint.npz", "offline.npz")


class RunDirError(ValueError):
    """A run directory that cannot be used for this run (the message names the fix)."""


def git_commit():
    """The commit of the git checkout gde_ref runs from (with "+dirty" for uncommitted changes), or None."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5).stdout.strip()
        if not commit:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def blas_thread_count():
    """The BLAS threads this process uses now (threadpoolctl), or None if no BLAS is loaded."""
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that the kernels call)
    from threadpoolctl import threadpool_info
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return max(counts) if counts else None


def provenance(command=None):
    """Where a run came from: package version, git commit, command line, date, BLAS threads, Python, machine."""
    return {"version": __version__, "commit": git_commit(),
            "command": command if command is not None else " ".join(sys.argv),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "blas_threads": blas_thread_count(), "python": platform.python_version(), "machine": platform.node()}


def read_config(out):
    """RUN/config.json as a dict, or None if the directory holds no run."""
    import json
    path = os.path.join(out, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


class _Lock:
    def __init__(self, out):
        self.path = os.path.join(out, ".lock")
        self.fd = None

    def acquire(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise RunDirError(f"another process is using {os.path.dirname(self.path)}: wait for it to end, or "
                              "choose another --out") from None
        return self

    def release(self):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def claim(out, kind, settings, checked, resume=False, force=False, command=None, started=True):
    """Take ``out`` for a ``kind`` run with ``settings``; returns (lock, saved config or None).

    checked: the keys of ``settings`` that must equal the saved run's for it to be "the same run".
    resume: continue the run in ``out`` (it must be the same run); force: start over (its files are deleted).
    started: whether the saved run got far enough to be continued (its first checkpoint): the same run that
    never started is simply started again.
    Writes ``out``/config.json ({"kind", **settings, "provenance"}) for a new run. Call ``lock.release()``
    at the end (or let the process end). Raises ``RunDirError`` with the fix in its message.
    """
    if resume and force:
        raise RunDirError("--resume and --force contradict each other: --resume continues the run, --force "
                          "deletes it")
    if os.path.exists(out) and not os.path.isdir(out):
        raise RunDirError(f"{out} is a file, not a run directory: choose another --out")
    saved = read_config(out)
    if resume and saved is None:
        raise FileNotFoundError(f"no run in {out} to resume (no config.json): start it without --resume")
    os.makedirs(out, exist_ok=True)
    lock = _Lock(out).acquire()
    try:
        saved_kind = None if saved is None else saved.get("kind", "finetune")
        foreign = [name for name in RUN_FILES if os.path.isfile(os.path.join(out, name))]
        if saved is None and foreign and not force:
            raise RunDirError(f"{out} holds another run's files ({', '.join(foreign)}) and no config.json saying "
                              "what it is: choose another --out, or --force to delete them and start over")
        if saved is not None and not force:
            if saved_kind != kind:
                raise RunDirError(f"{out} holds a {saved_kind} run, not a {kind} run: choose another --out")
            changed = [k for k in checked if saved.get(k) != settings.get(k)]
            if changed:
                raise RunDirError(f"{out} holds another run ({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}"
                                  f", not {', '.join(f'{k}={settings.get(k)!r}' for k in changed)}): choose another "
                                  "--out, resume it with its own settings, or --force to delete it and start over")
            if not resume and started:
                raise RunDirError(f"{out} already holds this run: pass --resume to continue it, --force to start "
                                  "over, or choose another --out")
            if resume:
                return lock, saved
        if force:
            for name in RUN_FILES:
                if os.path.isfile(os.path.join(out, name)):
                    os.remove(os.path.join(out, name))
        write_json(os.path.join(out, "config.json"), {"kind": kind, **settings, "provenance": provenance(command)})
        return lock, None
    except BaseException:
        lock.release()
        raise


@contextmanager
def run_directory(out, kind, settings, checked, resume=False, force=False, command=None):
    """``claim`` as a context: yields the saved config when resuming (None for a new run), releases the lock
    at the end, and removes a new run's files if it fails before its first checkpoint (``remove_unstarted``).
    ``resume`` of a run that stopped before its first checkpoint starts the same run again."""
    ckpt = os.path.join(out, "checkpoint.npz")
    if resume and read_config(out) is not None and not os.path.isfile(ckpt):
        resume = False
    lock, saved = claim(out, kind, settings, checked, resume=resume, force=force, command=command,
                        started=os.path.isfile(ckpt))
    try:
        yield saved
    except BaseException:
        if saved is None:
            lock.release()
            remove_unstarted(out)
        raise
    finally:
        lock.release()


def remove_unstarted(out):
    """Undo ``claim`` for a new run that failed before its first checkpoint: delete the run's own files
    (``RUN_FILES``) and its lock, and the directory if that leaves it empty, so nothing half-written stays."""
    if os.path.isfile(os.path.join(out, "checkpoint.npz")):
        return
    for name in RUN_FILES + (".lock",):
        if os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))
    if os.path.isdir(out) and not os.listdir(out):
        os.rmdir(out)


@contextmanager
def stop_on_interrupt():
    """A context yielding ``stop()``: True once Ctrl-C (SIGINT) was pressed, so a long loop can stop at its
    next safe point and write a checkpoint. A second Ctrl-C interrupts at once. Outside the main thread
    (where signals cannot be caught) ``stop()`` is always False."""
    pressed = []

    def handler(signum, frame):
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)
        print("\nstopping at the next safe point (Ctrl-C again to stop now, without a checkpoint)", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)
