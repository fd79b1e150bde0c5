"""`blairclip tune --address` on a real Ray cluster: a head started with `ray start` on 127.0.0.1 in a
subprocess (its own process group, its own temp dir), a 2-trial search through the CLI in another process,
then the head is stopped by its process-group id."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT, write_tiny_dataset

ray = pytest.importorskip("ray")
if tuple(int(p) for p in ray.__version__.split(".")[:2]) < (2, 40):
    pytest.skip("blairclip tune needs Ray >= 2.40 (the uv install)", allow_module_level=True)

HEAD_START_TIMEOUT = 180  # s: a loaded 2-core machine starts a head in 10-60 s
SEARCH_TIMEOUT = 600


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1; yields its address; stops the whole process group at the end."""
    ray_bin = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if ray_bin is None:
        pytest.skip("the `ray` command is not installed next to this Python")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths have a length limit
    # loopback only: Ray replaces 127.0.0.1 by the machine's address unless it runs as a single-host cluster
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + HEAD_START_TIMEOUT
        while not _answers(port):
            if head.poll() is not None:
                pytest.fail(f"ray start exited with {head.returncode}")
            if time.monotonic() > deadline:
                pytest.fail(f"the Ray head did not answer on 127.0.0.1:{port} within {HEAD_START_TIMEOUT} s")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", env
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(head.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
    deadline = time.monotonic() + 30
    while _answers(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _answers(port), "the Ray head still answers after its process group was stopped"


def test_search_joins_an_existing_cluster(ray_head, tmp_path):
    address, env = ray_head
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate:\n  grid: [0.05, 0.01]\n", encoding="utf-8")
    out = tmp_path / "search"
    command = [sys.executable, "-m", "recbole_blairclip.cli", "tune", "--model", "BPR", "--dataset", "tiny",
               "--space", str(space), "--samples", "1", "--scheduler", "fifo", "--address", address,
               "--out", str(out), "--json"]
    (tmp_path / "run.yaml").write_text(
        f"data_path: {tmp_path / 'dataset_atomic'}\nepochs: 2\nstopping_step: 100\ntrain_batch_size: 16\nseed: 7\n",
        encoding="utf-8")
    command += ["--config_files", str(tmp_path / "run.yaml")]
    env = dict(env, PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SEARCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["cluster"]["gcs_address"] == address  # it joined the head, not a Ray of its own
    assert summary["cluster"]["nodes"] == 1 and summary["cluster"]["cpus"] == 2
    assert sorted(t["learning_rate"] for t in summary["trials"]) == [0.01, 0.05]
    assert {t["status"] for t in summary["trials"]} == {"completed"}
    assert all(t["epochs_run"] == 2 for t in summary["trials"])
    assert summary["test"] is not None and "ndcg@10" in summary["test"]["test_result"]
    assert (out / "best_config.yaml").is_file() and (out / "trials.csv").is_file()


def test_unreachable_address_is_one_line(tmp_path):
    """Nothing listens on the port: one line naming the address, exit 2, before any trial."""
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    from recbole_blairclip.tune.search import tune
    from recbole_blairclip.errors import ConfigError

    port = _free_port()
    with pytest.raises(ConfigError, match=f"cannot reach the Ray cluster at '127.0.0.1:{port}'"):
        tune("BPR", "tiny", {"learning_rate": {"grid": [0.01]}}, samples=1, address=f"127.0.0.1:{port}",
             config_dict={"data_path": str(tmp_path / "dataset_atomic")}, out=str(tmp_path / "s"))
