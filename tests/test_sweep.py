"""``gde-ref sweep``: the spec and its errors, the plan, --dry-run, and end-to-end sweeps on a tiny dataset
(20 pretraining steps, 250 env steps per fine-tune, 2 workers): complete, rerun does nothing, stopped and
interrupted mid-way then rerun gives the same summaries and logs as an uninterrupted sweep."""
import importlib.util
import json
import os

import pytest
from test_finetune_cli import tiny_dataset

from gde_ref.cli import main
from gde_ref.experiments.sweep import SECONDS_PER_1K, format_plan, format_seconds, load_spec, parse_seeds, plan
from gde_ref.experiments.sweep_exec import run_sweep

SPEC = """datasets = ["hopper-medium"]
algos = ["offline", "gde"]
seeds = "0-1"
preset = "quick"
pretrain_steps = 20
[overrides]
steps = [250]
eval_period = [100]
eval_steps = [20]
report_period = [100]
report_episodes = [1]
"""
TIMING = ("env_steps_per_second", "seconds")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A tiny hopper-medium (``tiny_dataset``) in a temporary MINARI_DATASETS_PATH, inherited by the sweep's
    worker processes."""
    folder = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as mp:
        tiny_dataset(folder, mp)
        yield folder


def test_seeds_and_spec_from_flags_and_toml(tmp_path):
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("5,0-1") == [0, 1, 5] and parse_seeds([3, 1]) == [1, 3] and parse_seeds(7) == [7]
    spec = load_spec(datasets="hopper-medium,walker2d-medium", algos="gde,oniql", seeds="0-2", out="D")
    assert spec == {"datasets": ["hopper-medium", "walker2d-medium"], "algos": ["gde", "oniql"], "seeds": [0, 1, 2],
                    "backbones": ["iql"], "preset": "laptop", "pretrain_steps": None, "overrides": {}, "out": "D"}
    path = tmp_path / "s.toml"
    path.write_text(SPEC + "kl_weight = [0.3, 0.03]\n")
    spec = load_spec(str(path), seeds="3", preset="laptop")   # flags override the file
    assert spec["seeds"] == [3] and spec["preset"] == "laptop" and spec["pretrain_steps"] == 20
    assert spec["overrides"]["kl_weight"] == [0.3, 0.03] and spec["overrides"]["steps"] == [250]


HEAD = 'datasets = ["hopper-medium"]\nalgos = ["gde"]\nseeds = "0"\n'


@pytest.mark.parametrize("toml, words", [
    (HEAD + 'workers = 2', ["unknown key", "workers", "a spec has"]),
    ('datasets = ["hopper-medium"]\nalgos = ["gdee"]\nseeds = "0"', ["unknown algo 'gdee'", "valid algos"]),
    ('datasets = ["hopper-mediumm"]\nalgos = ["gde"]\nseeds = "0"', ["unknown dataset name", "e.g. hopper-medium"]),
    (HEAD + 'backbones = ["bc"]', ["unknown backbone", "td3bc"]),
    ('datasets = ["hopper-medium"]\nalgos = ["oniql"]\nseeds = "0"\nbackbones = ["td3bc"]', ["'oniql'", "naive"]),
    ('datasets = []\nalgos = ["gde"]\nseeds = "0"', ["datasets", "empty"]),
    ('datasets = ["hopper-medium"]\nalgos = ["gde"]\nseeds = "4-1"', ["seeds", "0-4"]),
    ('datasets = ["hopper-medium"]\nalgos = ["gde"]', ["seeds missing"]),
    (HEAD + '[overrides]\nkl = [1.0]', ["unknown override", "kl_weight"]),
    (HEAD + '[overrides]\nsteps = []', ["overrides.steps", "non-empty"]),
    (HEAD + '[overrides]\nn_step = [1.5]', ["overrides.n_step", "ints"]),
    ('datasets = ["hopper-medium"\n', ["not valid TOML"]),
])
def test_bad_specs_give_one_clear_error(tmp_path, toml, words):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ValueError) as err:
        load_spec(str(path))
    assert all(w in str(err.value) for w in words), str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_plan_shares_agents_names_runs_and_expands_the_grid(tmp_path):
    spec = load_spec(datasets="hopper-medium", algos="gde,oniql", seeds="0,1", preset="quick")
    spec["overrides"] = {"kl_weight": [0.03, 0.3, 1.0], "steps": [300]}
    jobs = plan(spec, str(tmp_path), check_data=False)
    agents = [j for j in jobs if j["kind"] == "pretrain"]
    assert [j["name"] for j in agents] == ["hopper-medium-iql-quick-seed0", "hopper-medium-iql-quick-seed1"]
    assert agents[0]["dir"] == str(tmp_path / "pretrained" / "hopper-medium-iql-quick-seed0")
    assert agents[0]["steps"] == 2000 and all(j["status"] == "todo" for j in jobs)
    names = [j["name"] for j in jobs]   # per seed: its agent, then its fine-tunes; oniql does not read kl_weight
    assert names[:5] == ["hopper-medium-iql-quick-seed0", "hopper-medium/iql/gde__kl_weight=0.03__steps=300/seed0",
                         "hopper-medium/iql/gde__kl_weight=0.3__steps=300/seed0",
                         "hopper-medium/iql/gde__kl_weight=1.0__steps=300/seed0",
                         "hopper-medium/iql/oniql__steps=300/seed0"]
    assert len(jobs) == 10 and names[5] == "hopper-medium-iql-quick-seed1"
    tunes = [j for j in jobs if j["kind"] == "finetune"]
    assert {j["needs"] for j in tunes if j["seed"] == 1} == {"hopper-medium-iql-quick-seed1"}
    assert tunes[1]["overrides"] == {"kl_weight": 0.3, "steps": 300}
    assert tunes[1]["offline"] == os.path.join(agents[0]["dir"], "offline.npz")
    assert tunes[1]["dir"] == str(tmp_path / "runs/hopper-medium/iql/gde__kl_weight=0.3__steps=300/seed0")
    seconds = 2 * 2 * SECONDS_PER_1K[("iql", "pretrain")] + 6 * 0.3 * SECONDS_PER_1K[("iql", "gde")] \
        + 2 * 0.3 * SECONDS_PER_1K[("iql", "naive")]
    assert f"estimated CPU time {seconds:.0f} s" in format_plan(spec, jobs, workers=2)
    # a directory holding another run is refused before anything runs
    os.makedirs(tunes[0]["dir"])
    (tmp_path / "runs/hopper-medium/iql/gde__kl_weight=0.03__steps=300/seed0/config.json").write_text(
        json.dumps({"kind": "finetune", "dataset": "hopper-medium", "steps": 600}))
    with pytest.raises(ValueError, match=r"holds another run \(.*steps=600.*not .*steps=300.*choose another --out"):
        plan(spec, str(tmp_path), check_data=False)


def test_several_backbones_run_each_algo_on_those_it_is_defined_on(tmp_path):
    """oniql is IQL's, naive any backbone's: oniql runs on iql only; an offline agent is planned per backbone
    that some algo runs on, and none for a backbone no algo runs on."""
    spec = load_spec(datasets="hopper-medium", algos="oniql,naive", seeds="0", backbones="iql,td3bc", preset="quick")
    names = [j["name"] for j in plan(spec, str(tmp_path), check_data=False)]
    assert names == ["hopper-medium-iql-quick-seed0", "hopper-medium-td3bc-quick-seed0", "hopper-medium/iql/oniql/seed0",
                     "hopper-medium/iql/naive/seed0", "hopper-medium/td3bc/naive/seed0"]
    only_iql = load_spec(datasets="hopper-medium", algos="oniql", seeds="0", backbones="iql,td3bc", preset="quick")
    assert [j["name"] for j in plan(only_iql, str(tmp_path), check_data=False)] == [
        "hopper-medium-iql-quick-seed0", "hopper-medium/iql/oniql/seed0"]


def test_dry_run_prints_the_plan_and_refuses_missing_datasets(datasets, tmp_path, capsys):
    code = main(["sweep", "--datasets", "hopper-medium", "--algos", "gde,oniql", "--seeds", "0-1", "--preset", "quick",
                 "--out", str(tmp_path / "S"), "--dry-run", "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert "2 offline agents, 4 fine-tunes" in lines[0] and len(lines) == 8
    assert lines[1].split()[:3] == ["todo", "pretrain", "hopper-medium-iql-quick-seed0"]
    assert lines[3].split()[:3] == ["todo", "finetune", "hopper-medium/iql/oniql/seed0"]
    # 2 x 2000 pretraining steps, 2 x 600 gde env steps, 2 x 600 oniql env steps (39 s with today's table)
    seconds = 2 * 2 * SECONDS_PER_1K[("iql", "pretrain")] + 2 * 0.6 * (SECONDS_PER_1K[("iql", "gde")]
                                                                       + SECONDS_PER_1K[("iql", "naive")])
    assert "to do: 6 of 6 jobs" in lines[-1]
    assert f"estimated CPU time {format_seconds(seconds)}, about {format_seconds(seconds / 2)} on 2 worker(s)" \
        in lines[-1]
    assert not (tmp_path / "S").exists(), "a dry run writes nothing"
    code = main(["sweep", "--datasets", "walker2d-medium", "--algos", "gde", "--seeds", "0", "--preset", "quick",
                 "--out", str(tmp_path / "S")])
    err = capsys.readouterr().err
    assert code == 2 and "gde-ref make-dataset walker2d-medium --preset quick" in err and len(err.splitlines()) == 1
    if importlib.util.find_spec("ray") is None:     # without the extra: one line naming it
        code = main(["sweep", "--datasets", "hopper-medium", "--algos", "gde", "--seeds", "0", "--out", str(tmp_path),
                     "--executor", "ray"])
        err = capsys.readouterr().err
        assert code == 2 and "pip install 'gde_ref[ray]'" in err and len(err.splitlines()) == 1


def results(out):
    """{run: (summary without timings, log.csv)} of every run under ``out``."""
    found = {}
    for folder, _, files in os.walk(out):
        if "summary.json" in files:
            with open(os.path.join(folder, "summary.json")) as f:
                summary = {k: v for k, v in json.load(f).items() if k not in TIMING}
            with open(os.path.join(folder, "log.csv")) as f:
                found[os.path.relpath(folder, out)] = (summary, f.read())
    return found


def test_sweep_completes_skips_and_resumes_to_the_same_results(datasets, tmp_path, capsys):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC)
    a, b = tmp_path / "A", tmp_path / "B"
    assert main(["sweep", str(spec_file), "--out", str(a), "--workers", "2"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count("final normalized score") == 4 and out.count(": normalized score") == 2
    first = results(a)
    assert len(first) == 6 and all(s["env_steps"] == 250 for run, (s, _) in first.items() if run.startswith("runs"))
    state = json.loads((a / "sweep.json").read_text())
    assert [j["status"] for j in state["jobs"]] == ["done"] * 6 and state["spec"]["pretrain_steps"] == 20
    stamps = {p: os.stat(a / p / "summary.json").st_mtime_ns for p in first}
    assert main(["sweep", str(spec_file), "--out", str(a), "--workers", "2"]) == 0
    assert "6 of 6 jobs done before, 0 to run" in capsys.readouterr().out
    assert stamps == {p: os.stat(a / p / "summary.json").st_mtime_ns for p in first}, "a finished run is not rerun"

    spec, lines = load_spec(str(spec_file)), []
    # 1. stopped as by Ctrl-C once the first job ends: no fine-tune starts
    result = run_sweep(spec, str(b), workers=2, log=lines.append, stop_after=1)
    assert result["stopped"] and not result["failed"]
    assert all(j["status"] == "todo" for j in result["jobs"] if j["kind"] == "finetune")
    # 2. every fine-tune interrupted after its checkpoint at env step 200; one run's directory holds a stray file,
    #    so it fails, is reported at the end, and the others go on
    tunes = [j for j in result["jobs"] if j["kind"] == "finetune"]
    stray = tunes[2]["dir"]
    os.makedirs(stray)
    with open(os.path.join(stray, "checkpoint.npz"), "w") as f:
        f.write("not a checkpoint")
    result = run_sweep(spec, str(b), workers=2, log=lines.append, interrupt_at=100)
    assert [j["name"] for j in result["failed"]] == [tunes[2]["name"]] and "FAILED" in lines[-2]
    others = [j for j in result["jobs"] if j["kind"] == "finetune" and j["dir"] != stray]
    assert [j["status"] for j in others] == ["interrupted"] * 3 and all(j["step"] == 200 for j in others)
    assert all(os.path.isfile(os.path.join(j["dir"], "checkpoint.npz")) for j in others)
    assert not any(os.path.isfile(os.path.join(j["dir"], "summary.json")) for j in others)
    # 3. rerun: the three resumed and the failed one (its stray file removed) finish as if never stopped
    os.remove(os.path.join(stray, "checkpoint.npz"))
    result = run_sweep(spec, str(b), workers=2, log=lines.append)
    assert not result["failed"] and not result["stopped"] and len(result["ran"]) == 4
    assert results(b) == first


@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_ray_and_submitit_give_the_local_executor_s_results(datasets, tmp_path, executor):
    """The engines (optional extras: skipped where they are not installed) on one seed of SPEC: Ray on a local
    instance of 2 CPUs, submitit through its local executor; the same runs as the local process pool's."""
    pytest.importorskip("ray" if executor == "ray" else "submitit")
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(SPEC.replace('seeds = "0-1"', 'seeds = "0"'))
    spec, lines = load_spec(str(spec_file)), []
    local = run_sweep(spec, str(tmp_path / "local"), workers=1, log=lines.append)
    engine = run_sweep(spec, str(tmp_path / executor), executor=executor, workers=2, slurm={"cluster": "local"},
                       log=lines.append)
    assert not local["failed"] and not engine["failed"], lines
    assert [j["status"] for j in engine["jobs"]] == ["done"] * 3
    assert results(tmp_path / executor) == results(tmp_path / "local") and len(results(tmp_path / "local")) == 3
