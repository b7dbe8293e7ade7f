"""Run directories a user can trust: one run per directory, a lock, provenance, Ctrl-C that leaves a
resumable run, pretraining that checkpoints and resumes, settings that would do nothing refused, the
data fingerprint, and one-line errors for a full disk or a corrupt dataset."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gde_ref import __version__
from gde_ref.checkpoint import load_npz
from gde_ref.cli import main
from gde_ref.experiments import rundir
from gde_ref.experiments.finetune import finetune
from gde_ref.experiments.pretrain import load_offline, pretrain
from gde_ref.finetune.loop import RunInterrupted
from test_finetune_cli import BUDGET, SMALL, assert_same_checkpoint, offline_file, tiny_dataset


@pytest.fixture(scope="module")
def hopper_agent(tmp_path_factory):
    return offline_file(tmp_path_factory.mktemp("offline"), "hopper", 11, 3)


def cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_directory_records_its_provenance(hopper_agent, tmp_path):
    out = tmp_path / "run"
    finetune("hopper-medium", "oniql", str(out), offline_path=hopper_agent, command="gde-ref finetune ...",
             **dict(BUDGET, steps=200))
    config = json.loads((out / "config.json").read_text())
    prov = config["provenance"]
    assert config["kind"] == "finetune" and config["algo"] == "oniql"
    assert prov["version"] == __version__ and prov["command"] == "gde-ref finetune ..."
    assert prov["blas_threads"] >= 1 and prov["date"][:4].isdigit() and "commit" in prov
    if prov["commit"] is not None:
        assert len(prov["commit"].split("+")[0]) == 40


def test_another_run_or_another_kind_in_the_same_directory_is_refused(hopper_agent, tmp_path, capsys):
    out = str(tmp_path / "run")
    base = ["finetune", "--json", "--dataset", "hopper-medium", "--from", hopper_agent, "--out", out, "--steps", "200",
            "--preset", "quick"]
    assert cli(base + ["--algo", "oniql"], capsys)[0] == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    code, _, err = cli(base + ["--algo", "rnd"], capsys)
    assert code == 2 and "holds another run (algo='oniql', not algo='rnd')" in err and len(err.splitlines()) == 1
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary, "the first run is untouched"
    code, _, err = cli(["pretrain", "--dataset", "hopper-medium", "--out", out, "--preset", "quick"], capsys)
    assert code == 2 and "holds a finetune run, not a pretrain run" in err
    code, _, _ = cli(base + ["--algo", "rnd", "--force"], capsys)
    assert code == 0 and json.loads((tmp_path / "run" / "config.json").read_text())["algo"] == "rnd"


def test_files_of_an_unknown_run_are_not_overwritten(hopper_agent, tmp_path, capsys):
    out = tmp_path / "old-pretraining"
    out.mkdir()
    (out / "offline.npz").write_bytes(b"an agent made before run directories had a config.json")
    code, _, err = cli(["finetune", "--dataset", "hopper-medium", "--from", hopper_agent, "--out", str(out),
                        "--preset", "quick"], capsys)
    assert code == 2 and "holds another run's files (offline.npz)" in err and "--force" in err
    assert (out / "offline.npz").read_bytes().startswith(b"an agent"), "nothing overwritten"


def test_a_second_process_on_the_same_directory_is_refused(tmp_path):
    settings = {"algo": "gde"}
    lock, _ = rundir.claim(str(tmp_path / "run"), "finetune", settings, ("algo",))
    try:
        with pytest.raises(rundir.RunDirError, match="another process is using"):
            rundir.claim(str(tmp_path / "run"), "finetune", settings, ("algo",), resume=True)
    finally:
        lock.release()
    lock, saved = rundir.claim(str(tmp_path / "run"), "finetune", settings, ("algo",), resume=True)
    lock.release()
    assert saved["algo"] == "gde", "free again once the first holder let go"


def test_settings_that_would_do_nothing_and_budgets_that_cannot_train_are_refused(hopper_agent, tmp_path, capsys):
    base = ["finetune", "--dataset", "hopper-medium", "--from", hopper_agent, "--preset", "quick"]
    cases = [(["--algo", "oniql", "--kl-weight", "0.5"], "--kl-weight would do nothing for oniql"),
             (["--algo", "gde-no-teacher", "--kl-weight", "0.5"], "--kl-weight would do nothing"),
             (["--algo", "iql", "--eval-steps", "50"], "no evaluation stages"),
             (["--algo", "offline", "--reset-optimizers"], "would do nothing for offline"),
             (["--algo", "gde", "--steps", "50"], "leaves no exploration step"),
             (["--algo", "gde", "--eval-period", "100", "--eval-steps", "100"], "L < F")]
    for k, (args, message) in enumerate(cases):
        out = tmp_path / f"run{k}"
        code, _, err = cli(base + ["--out", str(out)] + args, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not out.exists(), "nothing written for a refused run"


def test_pretraining_resumes_bit_identically(tmp_path, monkeypatch):
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    kw = dict(steps=60, seed=0, eval_every=30, eval_episodes=1, config=SMALL, checkpoint_every=20)
    pretrain("hopper-medium", str(tmp_path / "a"), **kw)
    updates = []

    def stop():
        return len(updates) >= 45

    class Counter:
        def update(self, n):
            updates.append(n)

        def set_postfix(self, **kw):
            pass

    with pytest.raises(RunInterrupted):
        pretrain("hopper-medium", str(tmp_path / "b"), progress=Counter(), stop=stop, **kw)
    assert load_npz(tmp_path / "b" / "checkpoint.npz")[1]["step"] == 45
    assert not (tmp_path / "b" / "offline.npz").exists()
    with pytest.raises(rundir.RunDirError, match="already holds this run"):
        pretrain("hopper-medium", str(tmp_path / "b"), **kw)
    pretrain("hopper-medium", str(tmp_path / "b"), resume=True, **kw)
    arrays_a, meta_a = load_npz(tmp_path / "a" / "offline.npz")
    arrays_b, meta_b = load_npz(tmp_path / "b" / "offline.npz")
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    assert (tmp_path / "a" / "log.csv").read_text() == (tmp_path / "b" / "log.csv").read_text()


def test_a_remade_dataset_is_not_silently_used_with_an_agent_trained_on_the_old_one(tmp_path, monkeypatch):
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    pretrain("hopper-medium", str(tmp_path / "agent"), steps=20, seed=0, eval_episodes=1, config=SMALL)
    _, _, meta = load_offline(tmp_path / "agent" / "offline.npz", "hopper")
    assert len(meta["data_fingerprint"]) == 16
    kw = dict(BUDGET, steps=200, offline_path=str(tmp_path / "agent" / "offline.npz"))
    finetune("hopper-medium", "oniql", str(tmp_path / "ok"), **kw)   # the same data: accepted
    import shutil
    shutil.rmtree(tmp_path / "datasets")
    tiny_dataset(tmp_path / "datasets", monkeypatch, seed=1)          # remade with other contents
    with pytest.raises(ValueError, match="trained on other data than the hopper-medium stored here now"):
        finetune("hopper-medium", "oniql", str(tmp_path / "refused"), **kw)
    assert not (tmp_path / "refused").exists()


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(hopper_agent, tmp_path, capsys, monkeypatch):
    import gde_ref.experiments.finetune_state as state

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "checkpoint.npz"))
    monkeypatch.setattr(state, "save_npz", full)
    code, _, err = cli(["finetune", "--dataset", "hopper-medium", "--from", hopper_agent, "--out",
                        str(tmp_path / "run"), "--preset", "quick", "--algo", "oniql"], capsys)
    assert code == 1 and "No space left on device" in err and "free some space" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_corrupt_stored_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    tiny_dataset(tmp_path / "datasets", monkeypatch)
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "datasets") for f in fs if f.endswith(".hdf5")]
    with open(files[0], "r+b") as f:     # an interrupted copy: the file cut to a third
        f.truncate(os.path.getsize(files[0]) // 3)
    code, _, err = cli(["pretrain", "--dataset", "hopper-medium", "--out", str(tmp_path / "run"), "--preset",
                        "quick"], capsys)
    assert code == 2 and "delete it and make or copy it again" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_ctrl_c_exits_130_and_resume_finishes_bit_identically(hopper_agent, tmp_path):
    """A real SIGINT to a real `gde-ref finetune` process: it stops at the next step with a checkpoint,
    prints how to resume and exits 130 with no traceback; --resume then ends exactly as a run never stopped."""
    args = ["--dataset", "hopper-medium", "--algo", "gde", "--from", hopper_agent, "--preset", "quick", "--seed", "1",
            "--steps", "3000", "--json"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    run = [sys.executable, "-m", "gde_ref"]
    straight = subprocess.run(run + ["finetune", "--out", str(tmp_path / "a")] + args, env=env, capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(run + ["finetune", "--out", str(tmp_path / "b")] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "b" / "log.csv"
    deadline = time.time() + 240
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    stopped_at = load_npz(tmp_path / "b" / "checkpoint.npz")[1]["loop"]["env_step"]
    assert 0 < stopped_at < 3000
    resumed = subprocess.run(run + ["finetune", "--out", str(tmp_path / "b"), "--resume", "--json"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_checkpoint(tmp_path / "a" / "checkpoint.npz", tmp_path / "b" / "checkpoint.npz")
    assert (tmp_path / "a" / "log.csv").read_text() == (tmp_path / "b" / "log.csv").read_text()


def test_log_and_curve_can_be_watched_while_the_run_goes(hopper_agent, tmp_path):
    """log.csv gains its rows as they are made and curve.png is drawn at each reporting evaluation: a run
    stopped half-way already has both."""
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted):
        finetune("hopper-medium", "gde", str(out), offline_path=hopper_agent, interrupt_at=300, **BUDGET)
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("kind,env_step") and len(rows) - 1 == 5, "header + the 5 rows before step 400"
    assert (out / "curve.png").stat().st_size > 1000 and not (out / "summary.json").exists()


def test_every_command_uses_one_blas_thread_unless_asked():
    from gde_ref.cli import build_parser
    parser = build_parser()
    assert parser.parse_args(["pretrain", "--dataset", "hopper-medium", "--out", "x"]).blas_threads == 1
    assert parser.parse_args(["finetune", "--dataset", "hopper-medium", "--out", "x"]).blas_threads == 1
    assert parser.parse_args(["pretrain", "--dataset", "d", "--out", "x", "--blas-threads", "2"]).blas_threads == 2
