"""SIGTERM during a benchmark (issue 13, item 7): the worker's process group is stopped, the run is
recorded as interrupted, its checkpoint removed, and running the same command again resumes."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import write_tiny_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pids_with(text):
    """Pids of live processes whose command line mentions ``text`` (a path unique to this test)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(pid))
    return found


def _wait_for(predicate, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_sighup_and_sigterm_raise_benchmark_interrupted_once():
    from recbole_blairclip.benchmark.supervise import BenchmarkInterrupted, stop_signals

    before = signal.getsignal(signal.SIGHUP)
    for sig in (signal.SIGHUP, signal.SIGTERM):
        with pytest.raises(BenchmarkInterrupted, match=signal.Signals(sig).name):
            with stop_signals():
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGHUP) is before


def test_sigterm_stops_the_worker_group_records_interrupted_and_rerun_resumes(tmp_path):
    sig = signal.SIGTERM
    write_tiny_dataset(str(tmp_path / "dataset_atomic"), n_users=30, n_items=60)
    bench_yaml = tmp_path / "bench.yaml"

    def write_yaml(bpr_epochs):
        bench_yaml.write_text(textwrap.dedent(f"""
            dataset: tiny
            models: [Pop, BPR]
            seeds: [7]
            data_path: {tmp_path / "dataset_atomic"}
            epochs: 2
            stopping_step: 100000
            train_batch_size: 64
            model_config:
              BPR: {{epochs: {bpr_epochs}, embedding_size: 8}}
        """))

    write_yaml(100000)  # BPR trains until it is stopped
    cmd = [sys.executable, "-c", "import sys; from recbole_blairclip.cli import main; sys.exit(main())", "benchmark", "--config_files", str(bench_yaml),
           "--out", str(tmp_path / "results"), "--progress", "lines"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    run_dir = tmp_path / "results" / "tiny" / "bench"
    bpr = run_dir / "runs" / "BPR" / "seed7"
    parent = subprocess.Popen(cmd, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        # BPR is training once it has saved its first best checkpoint
        _wait_for(lambda: (bpr / "saved").is_dir() and os.listdir(bpr / "saved"), 300, "a BPR checkpoint")
        workers = _wait_for(lambda: _pids_with(str(bpr / "spec.json")), 30, "the BPR worker")
        parent.send_signal(sig)
        out, err = parent.communicate(timeout=60)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert parent.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    _wait_for(lambda: not _pids_with(str(bpr / "spec.json")), 15, "the worker to be gone")  # not orphaned
    assert not [pid for pid in _pids_with(str(tmp_path)) if pid in workers]
    record = json.loads((bpr / "result.json").read_text())
    assert record["status"] == "interrupted" and signal.Signals(sig).name in record["error"]
    assert not (bpr / "saved").exists() or os.listdir(bpr / "saved") == []
    pop = json.loads((run_dir / "runs" / "Pop" / "seed7" / "result.json").read_text())
    assert pop["status"] == "ok"

    write_yaml(2)  # the rerun: Pop finished earlier and is skipped, BPR runs again
    done = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Pop seed 7: finished earlier, skipped" in done.stderr
    assert json.loads((bpr / "result.json").read_text())["status"] == "ok"
