"""The prepared GPU benchmark scripts (benchmarks/gpu_features.py, gpu_blairclip.py), smoke-run on CPU with
their small settings, as real subprocesses: they must run end to end and write the report a GPU run would."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_gpu_blairclip_script_smoke_runs_on_cpu(tmp_path):
    out = tmp_path / "report.json"
    _run(["benchmarks/gpu_blairclip.py", "--device", "cpu", "--small", "--hidden", "16", "--layers", "1",
          "--root", str(tmp_path / "data"), "--json", str(out)], tmp_path)
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["gpu"] is None and report["data"]["users"] == 2000
    for model in ("BLaIRCLIP", "SASRec"):
        r = report[model]
        assert r["epoch_seconds"] > 0 and r["eval_users_per_s"] > 0 and r["train_batches"] > 0
        assert 0.0 <= r["recall@10"] <= 1.0 and r["peak_gpu_mib"] is None
    # BLaIRCLIP trains one row per user, SASRec one per prefix
    assert report["BLaIRCLIP"]["train_rows"] < report["SASRec"]["train_rows"]
    assert report["ratios"]["epoch_vs_sasrec"] == pytest.approx(
        report["BLaIRCLIP"]["epoch_seconds"] / report["SASRec"]["epoch_seconds"])


def test_gpu_features_script_smoke_runs_on_cpu(tmp_path):
    out = tmp_path / "features.json"
    _run(["benchmarks/gpu_features.py", "--device", "cpu", "--quick", "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["size"] == "tiny" and report["fp16"] is False
    for key, count in (("text_L512", "texts"), ("text_L128", "texts"), ("image_processor_and_model", "images")):
        assert report[key][count] > 0 and report[key]["seconds"] > 0
    assert report["text_L128"]["mean_tokens"] <= min(128, report["text_L512"]["mean_tokens"])  # truncation applied
    assert report["extract_end_to_end"]["items"] == 32 and report["extract_end_to_end"]["items_per_s"] > 0
