"""`gru-edge train --strategy multi-worker` on a real cluster: two worker processes on 127.0.0.1
(free ports), the chief's run exported and sampled; a lost worker, then a resume; and the
cluster's bad inputs, each a one-line error."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import UsageError
from gru_edge.trainer.cluster import this_worker

GRU_EDGE = os.path.join(os.path.dirname(sys.executable), "gru-edge")
# A tiny run: a few seconds an epoch per worker on a 2-core machine.
TINY_ARGS = [
    "--units", "16", "--seq-len", "20", "--batch-size", "32", "--steps-per-epoch", "4",
    "--validation-steps", "2", "--seed", "1", "--worker-timeout", "20", "--allow-open-port",
]  # fmt: skip
runner = CliRunner()


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now on 127.0.0.1 (held together, so they differ)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _wait_for_an_epoch(out: Path, survivor: subprocess.Popen, seconds: float = 180) -> None:
    """Until the chief has committed an epoch (state.json), while ``survivor`` still runs."""
    deadline = time.monotonic() + seconds
    while not (out / "state.json").exists():
        assert time.monotonic() < deadline and survivor.poll() is None, "no epoch completed"
        time.sleep(0.2)


def _start_cluster(
    cwd: Path, corpus: Path, out: Path, *extra: str, other: tuple[str, ...] = ()
) -> list[subprocess.Popen]:
    """Two `gru-edge train` workers with the same command (worker 1 with ``other`` added); each
    its own TF_CONFIG. TMPDIR is a folder of the test's, so that it can see the non-chief's
    temporary folder go."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    (cwd / "tmp").mkdir(exist_ok=True)
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(cwd / "tmp")}
        args = [GRU_EDGE, "train", str(corpus), "--out", str(out), "--strategy", "multi-worker"]
        workers.append(
            subprocess.Popen(
                [*args, *TINY_ARGS, *extra, *(other if index else ())],
                env=env,
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return workers


def _finish(workers: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    """Every worker's exit code and stderr; kills them all if one outlives ``timeout``."""
    deadline, results = time.monotonic() + timeout, []
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((worker.returncode, stderr))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    return results


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.train
def test_two_workers_train_and_the_chiefs_run_exports_and_samples(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    # With the per-epoch samples: every worker writes them (only the chief's are kept).
    workers = _start_cluster(tmp_path, tiny_corpus, out, "--epochs", "2")
    results = _finish(workers)
    for code, stderr in results:
        assert code == 0, stderr[-2000:]
    assert [row["epoch"] for row in _history(out)] == ["1", "2"]
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["epoch"] == 2 and state["checkpoint"] == "checkpoint-epoch002.keras"
    info = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert info["config"]["strategy"] == "multi-worker" and info["config"]["seed"] == 1
    assert info["stop_reason"] == "completed all 2 epochs (--epochs 2)"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["checkpoint-epoch002.keras", "config.json", "curves.png", "history.csv", "model.keras"]
        + ["samples.txt", "state.json", "vocab.json"]
    )
    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert samples.count("----- epoch ") == 2 and samples.count("----- temperature ") == 8
    # The non-chief wrote into its own temporary folder and removed it; nothing else is left
    # (but the byte code of TensorFlow's autograph modules, which it writes to TMPDIR and
    # imports, where Python writes byte code: PYTHONDONTWRITEBYTECODE unset).
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name != "__pycache__"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tmp"]

    model = tmp_path / "tiny.onnx"
    exported = subprocess.run(
        [GRU_EDGE, "export", str(out), "--out", str(model)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    sampled = subprocess.run(
        [GRU_EDGE, "sample", str(model), "--prime", "The ", "--length", "30", "--seed", "3"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert sampled.stdout.startswith("The ") and len(sampled.stdout.rstrip("\n")) >= 30


@pytest.mark.train
def test_a_lost_worker_stops_the_other_then_every_worker_resumes(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    chief, other = _start_cluster(tmp_path, tiny_corpus, out, "--epochs", "50", "--no-samples")
    try:
        _wait_for_an_epoch(out, chief)
        other.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = chief.communicate(timeout=90)  # --worker-timeout 20, and the health checks
        waited = time.monotonic() - killed
    finally:
        _finish([chief, other], timeout=5)
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert chief.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert len(lines) == 1 and "multi-worker training stopped" in lines[0], stderr[-2000:]
    assert "--worker-timeout" in lines[0] and waited < 60
    done = json.loads((out / "state.json").read_text(encoding="utf-8"))["epoch"]
    assert 1 <= done < 50 and not (out / "train.lock").exists()

    # A worker killed with SIGKILL cannot remove its temporary folder; the resumed ones do.
    left = set((tmp_path / "tmp").iterdir())
    assert [p.name.startswith("gru-edge-worker-") for p in left].count(True) == 1
    # Every worker restarts with --resume, asking for one more epoch than the run has.
    more = ["--epochs", str(done + 1), "--resume", "--no-samples"]
    for code, stderr in _finish(_start_cluster(tmp_path, tiny_corpus, out, *more)):
        assert code == 0, stderr[-2000:]
    assert [int(row["epoch"]) for row in _history(out)] == list(range(1, done + 2))
    state = json.loads((out / "state.json").read_text(encoding="utf-8"))
    assert state["checkpoint"] == f"checkpoint-epoch{done + 1:03d}.keras"
    assert (out / state["checkpoint"]).is_file()
    assert not (out / f"checkpoint-epoch{done:03d}.keras").exists()
    assert set((tmp_path / "tmp").iterdir()) == left


@pytest.mark.train
def test_a_chief_ended_by_sigterm_stops_the_other_worker(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    chief, other = _start_cluster(tmp_path, tiny_corpus, out, "--epochs", "50", "--no-samples")
    try:
        _wait_for_an_epoch(out, other)
        # SIGTERM, which TensorFlow's preemption notifier would swallow (make_strategy gives
        # it back): the chief ends at once, as any process does.
        chief.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        chief.wait(timeout=30)
        ended = time.monotonic() - sent
        _, stderr = other.communicate(timeout=90)
    finally:
        _finish([chief, other], timeout=5)
    assert chief.returncode == -signal.SIGTERM and ended < 5, ended
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert other.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert len(lines) == 1 and "multi-worker training stopped" in lines[0], stderr[-2000:]
    # The worker removed its temporary folder on the way out.
    assert not [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("gru-edge-worker-")]


@pytest.mark.train
def test_a_worker_with_another_command_stops_and_so_does_the_chief(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    workers = _start_cluster(tmp_path, tiny_corpus, out, "--no-samples", other=("--lr", "0.5"))
    (chief_code, chief_err), (other_code, other_err) = _finish(workers, timeout=120)
    assert other_code == 2 and "Traceback" not in other_err, other_err[-2000:]
    errors = [line for line in other_err.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: worker 1: --lr 0.5 differs from the chief's 0.01; "
        "give every worker the same gru-edge train command"
    ]
    assert chief_code == 1 and "Traceback" not in chief_err, chief_err[-2000:]
    assert "Error: multi-worker training stopped: a worker is gone" in chief_err
    assert not (out / "state.json").exists()


@pytest.mark.train
def test_a_worker_whose_cluster_never_forms_stops(tmp_path, tiny_corpus):
    # Worker 1 of a cluster whose chief never starts: a one-line error after --worker-timeout.
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]},
        "task": {"type": "worker", "index": 1},
    }
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
    args = [GRU_EDGE, "train", str(tiny_corpus), "--out", str(tmp_path / "run")]
    args += ["--strategy", "multi-worker", "--worker-timeout", "3", "--allow-open-port"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "not every worker in TF_CONFIG joined within 3 s" in errors[0]
    assert f"no answer from {tf_config['cluster']['worker'][0]}" in errors[0]
    assert not (tmp_path / "run").exists()  # a non-chief never touches --out


@pytest.mark.parametrize(
    ("tf_config", "task", "chief"),
    [
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}},
         "worker 0", True),
        ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
         "worker 1", False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
         "worker 0", False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
         "chief 0", True),
    ],
)  # fmt: skip
def test_the_chief_is_tensorflows_chief(tf_config, task, chief):
    worker = this_worker({"TF_CONFIG": json.dumps(tf_config)})
    assert worker is not None and (worker.task, worker.chief, worker.workers) == (
        task,
        chief,
        2,
    )
    assert this_worker({}) is None and this_worker({"TF_CONFIG": " "}) is None


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "TF_CONFIG is not JSON: '{not json'"),
        ("[]", "TF_CONFIG must be a JSON object"),
        ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG "task" must be an object'),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG "cluster" must be an object'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
         'TF_CONFIG "task" "index" 1 is not one of the 1 "worker" tasks'),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "ps", "index": 0}}',
         "TF_CONFIG \"cluster\" has a 'ps' job; --strategy multi-worker trains with"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
         "TF_CONFIG \"task\" \"type\" 'ps' is not a job of \"cluster\" (worker)"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
         "TF_CONFIG \"task\" \"index\" must be an integer, got '0'"),
        ('{"cluster": {"worker": "a:1,b:2"}, "task": {"type": "worker", "index": 0}}',
         "TF_CONFIG \"cluster\" \"worker\" must be a list of \"host:port\" strings, "
         "got 'a:1,b:2'"),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}',
         "TF_CONFIG \"cluster\" \"worker\" holds 'b', not a \"host:port\" string"),
        ('{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}',
         "holds 'a:99999', not a \"host:port\" string"),
    ],
)  # fmt: skip
def test_a_garbled_tf_config_names_the_wrong_field(raw, needle):
    with pytest.raises(UsageError) as caught:
        this_worker({"TF_CONFIG": raw})
    message = str(caught.value)
    assert needle in message and '"task": {"type": "worker", "index": 0}' in message
    assert "\n" not in message


@pytest.mark.train
@pytest.mark.parametrize(
    ("extra", "tf_config", "needles"),
    [
        (["--worker-timeout", "0"], None, ["--worker-timeout must be between 1 and 86400", "0"]),
        (["--worker-timeout", "nan"], None, ["--worker-timeout must be between"]),
        ([], "{oops", ["TF_CONFIG is not JSON", "{oops"]),
        (
            ["--strategy", "mirrored"],
            {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}},
            ["worker 1 of a cluster", "only --strategy multi-worker", "--strategy mirrored"],
        ),
        (
            [
                "--strategy",
                "multi-worker",
                "--batch-size",
                "512",
                "--seq-len",
                "20",
                "--allow-open-port",
            ],
            {"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 0}},
            ["whole batches only", "fewer than --batch-size 512"],
        ),
        (
            ["--strategy", "multi-worker"],
            {"cluster": {"worker": ["127.0.0.1:7", "h:8"]}, "task": {"type": "worker", "index": 0}},
            [
                "multi-worker port 7 listens on every network interface",
                "not only 127.0.0.1",
                "unauthenticated commands",
                "docs/several-machines.md",
                "--allow-open-port",
            ],
        ),
        (
            [],  # a non-chief joins the cluster whatever its --strategy
            {"cluster": {"worker": ["h:7", "127.0.0.1:8"]}, "task": {"type": "worker", "index": 1}},
            ["multi-worker port 8 listens on every network interface", "--allow-open-port"],
        ),
    ],
)
def test_cluster_bad_input(tmp_path, tiny_corpus, monkeypatch, extra, tf_config, needles):
    if tf_config is not None:
        raw = tf_config if isinstance(tf_config, str) else json.dumps(tf_config)
        monkeypatch.setenv("TF_CONFIG", raw)
    else:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    result = runner.invoke(app, ["train", str(tiny_corpus), "--out", str(tmp_path / "r"), *extra])
    assert_one_line_error(result, *needles)
    assert result.exit_code == 2
    assert not (tmp_path / "r").exists()  # nothing written


def _lone(tmp_path: Path, corpus: Path, index: int, ports: list[int], *extra: str):
    """Worker ``index`` of a two-worker cluster on 127.0.0.1 ``ports``, started alone."""
    tf_config = {
        "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
        "task": {"type": "worker", "index": index},
    }
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp_path / "tmp")}
    args = [GRU_EDGE, "train", str(corpus), "--out", str(tmp_path / "run")]
    args += ["--strategy", "multi-worker", "--allow-open-port", "--batch-size", "32", *extra]
    return subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _until_waiting(worker: subprocess.Popen) -> float:
    """Read the worker's stdout up to its 'waiting up to N s for ...' line; when it came."""
    for line in worker.stdout:
        if ": waiting up to " in line:
            return time.monotonic()
    raise AssertionError(f"no waiting line; stderr: {worker.stderr.read()[-2000:]}")


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr[-2000:]
    return [line for line in stderr.splitlines() if line.startswith("Error: ")]


@pytest.mark.train
def test_a_lone_chief_stops_within_the_timeout_and_writes_nothing(tmp_path, tiny_corpus):
    # Worker 0 of two whose peer never starts (it once ran 12+ minutes with --worker-timeout 40).
    ports = _free_ports(2)
    chief = _lone(tmp_path, tiny_corpus, 0, ports, "--worker-timeout", "3")
    try:
        waiting = _until_waiting(chief)
        _, stderr = chief.communicate(timeout=60)
        waited = time.monotonic() - waiting
    finally:
        _finish([chief], timeout=5)
    assert chief.returncode == 1 and waited < 3 + 5, (waited, stderr[-2000:])
    assert _errors(stderr) == [
        "Error: not every worker in TF_CONFIG joined within 3 s (no answer from "
        f"127.0.0.1:{ports[1]}); start the same gru-edge train on every machine of the "
        "cluster, or raise --worker-timeout"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.train
@pytest.mark.parametrize(
    ("index", "signum", "code", "name"),
    [(0, signal.SIGTERM, 143, "SIGTERM"), (1, signal.SIGINT, 130, "Ctrl-C")],
)
def test_a_signal_ends_a_waiting_worker_within_seconds(
    tmp_path, tiny_corpus, index, signum, code, name
):
    worker = _lone(tmp_path, tiny_corpus, index, _free_ports(2), "--worker-timeout", "300")
    try:
        _until_waiting(worker)
        worker.send_signal(signum)
        sent = time.monotonic()
        _, stderr = worker.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        _finish([worker], timeout=5)
    assert worker.returncode == code and took < 5, (took, stderr[-2000:])
    assert _errors(stderr) == [
        f"Error: stopped by {name} while waiting for the other workers to join; nothing was trained"
    ]
    assert not (tmp_path / "run").exists()
    assert list((tmp_path / "tmp").iterdir()) == []  # the non-chief's folder is gone too


@pytest.mark.train
@pytest.mark.parametrize("index", [0, 1])
def test_a_port_in_use_is_one_line(tmp_path, tiny_corpus, index):
    ports = _free_ports(2)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[index]))
        holder.listen()
        worker = _lone(tmp_path, tiny_corpus, index, ports, "--worker-timeout", "30")
        _, stderr = worker.communicate(timeout=120)
    assert worker.returncode == 1
    assert _errors(stderr) == [
        f"Error: worker {index}: port {ports[index]} (TF_CONFIG's 127.0.0.1:{ports[index]}) "
        "is in use by another program; stop what holds it or give this task another port "
        "in TF_CONFIG on every worker"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.train
def test_allow_open_port_goes_on_and_says_so_in_one_line(tmp_path, tiny_corpus, monkeypatch):
    tf_config = {"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    # A batch larger than the corpus stops it right after the warning, before the cluster.
    args = ["train", str(tiny_corpus), "--out", str(tmp_path / "r"), "--strategy", "multi-worker"]
    args += ["--batch-size", "512", "--allow-open-port"]
    result = runner.invoke(app, args)
    assert_one_line_error(result, "whole batches only")
    assert result.stdout.splitlines()[0] == (
        "warning: TensorFlow's multi-worker port 1 listens on every network interface (not only "
        "h) and runs unauthenticated commands from anyone who can reach it; keep it private "
        "(docs/several-machines.md)"
    )
    quiet = runner.invoke(app, [*args, "--quiet"])
    assert_one_line_error(quiet, "whole batches only")
    assert quiet.stdout == ""


@pytest.mark.train
def test_resuming_a_multi_worker_run_needs_allow_open_port_too(
    tmp_path, trained_run, tiny_corpus, monkeypatch
):
    # No --strategy on the command line: the run's own config.json says multi-worker.
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    info = json.loads((run / "config.json").read_text(encoding="utf-8"))
    info["config"]["strategy"] = "multi-worker"
    (run / "config.json").write_text(json.dumps(info), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    tf_config = {"cluster": {"worker": ["h:5", "h:6"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    args = ["train", str(tiny_corpus), "--out", str(run), "--resume", "--epochs", "5"]
    result = runner.invoke(app, args)
    assert_one_line_error(result, "multi-worker port 5 listens on every", "--allow-open-port")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
