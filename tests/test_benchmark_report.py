"""Benchmark planning (config priority, variants, seeds) and reports, without training anything."""
import csv
import json
import os
import statistics
import textwrap

import pytest
from conftest import table_rows

from recbole_blairclip.benchmark import metric_names, report
from recbole_blairclip.benchmark.config import BenchmarkConfig, seed_list
from recbole_blairclip.benchmark.plan import plan_rows, spec_hash
from recbole_blairclip.benchmark.runner import benchmark
from recbole_blairclip.benchmark.summary import summarize
from recbole_blairclip.cli import main as cli_main
from recbole_blairclip.errors import ConfigError, DatasetError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_seed_list():
    assert seed_list(3) == [2020, 2021, 2022]
    assert seed_list(2, base_seed=7) == [7, 8]
    assert seed_list([5, 9]) == [5, 9]
    assert seed_list("1,4") == [1, 4]
    assert seed_list("2") == [2020, 2021]  # a count given as text (the CLI's --seeds 2)
    assert seed_list(None) == [2020]
    for bad in (0, [1, 1], ["x"], True):
        with pytest.raises(ConfigError):
            seed_list(bad)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_config_priority_and_variants(tmp_path):
    _write(tmp_path / "cfg" / "run.yaml", """
        epochs: 5
        embedding_size: 8
        learning_rate: 0.1
        n_layers: 1
    """)
    _write(tmp_path / "cfg" / "tuned" / "BPR.yaml", """
        embedding_size: 16
        learning_rate: 0.2
    """)
    _write(tmp_path / "cfg" / "tuned" / "SASRec" / "best_config.yaml", "hidden_size: 32\n")  # tune's layout
    _write(tmp_path / "cfg" / "bpr_extra.yaml", "reg_weight: 0.5\n")
    bench_yaml = _write(tmp_path / "cfg" / "bench.yaml", """
        dataset: tiny
        models: [BPR, BPR-wide, SASRec]
        seeds: 2
        config_files: [run.yaml]
        model_config_dir: tuned
        epochs: 3
        model_config:
          BPR: {learning_rate: 0.3, config_files: [bpr_extra.yaml]}
          BPR-wide: {weight_decay: 0.01}
        variants:
          BPR-wide: {model: BPR, embedding_size: 128}
    """)
    bench = BenchmarkConfig([bench_yaml])
    assert bench.get("models") == ["BPR", "BPR-wide", "SASRec"] and bench.get("seeds") == 2
    assert bench.shared == {"epochs": 3, "embedding_size": 8, "learning_rate": 0.1, "n_layers": 1}
    plans = {p.row: p for p in plan_rows(["BPR", "BPR-wide", "SASRec"], bench, {"n_layers": 2})}
    bpr, wide, sasrec = plans["BPR"].config, plans["BPR-wide"].config, plans["SASRec"].config
    # the benchmark yaml's own keys win over the run configs it includes
    assert bpr["epochs"] == 3 and sasrec["epochs"] == 3
    # tuned file < model_config[model]; model files add keys; config_dict (CLI) wins over everything
    assert bpr["embedding_size"] == 16 and bpr["learning_rate"] == 0.3 and bpr["reg_weight"] == 0.5
    assert bpr["n_layers"] == 2 and sasrec["n_layers"] == 2
    assert "weight_decay" not in bpr
    # a variant: its base model, the base's config, then the row's own config and overrides
    assert plans["BPR-wide"].model == "BPR"
    assert wide["embedding_size"] == 128 and wide["learning_rate"] == 0.3 and wide["weight_decay"] == 0.01
    # SASRec has no model_config: the shared values, and its tuned best_config.yaml
    assert sasrec["embedding_size"] == 8 and sasrec["learning_rate"] == 0.1 and sasrec["hidden_size"] == 32
    assert plans["BPR"].sources[0].endswith(os.path.join("tuned", "BPR.yaml"))
    assert not any(k in bpr for k in ("models", "seeds", "variants", "model_config", "config_files"))


def test_variant_of_a_variant_is_rejected(tmp_path):
    bench_yaml = _write(tmp_path / "b.yaml", """
        models: [A]
        variants:
          A: {model: B}
          B: {model: BPR}
    """)
    with pytest.raises(ConfigError, match="itself a variant"):
        plan_rows(["A"], BenchmarkConfig([bench_yaml]))


def test_spec_hash_changes_with_config():
    spec = {"model": "BPR", "dataset": "d", "seed": 1, "config": {"epochs": 2}, "plugin_models": {}}
    same = json.loads(json.dumps(spec))
    assert spec_hash(spec) == spec_hash(same)
    same["config"]["epochs"] = 3
    assert spec_hash(spec) != spec_hash(same)


def test_bad_input_fails_before_any_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset_atomic" / "tiny").mkdir(parents=True)
    with pytest.raises(ConfigError, match="BPRR"):
        benchmark(dataset="tiny", models="BPR,BPRR", out=str(tmp_path / "r"), progress="none")
    with pytest.raises(DatasetError, match="nosuch"):
        benchmark(dataset="nosuch", models="Pop", out=str(tmp_path / "r"), progress="none")
    with pytest.raises(ConfigError, match="no models"):
        benchmark(dataset="tiny", out=str(tmp_path / "r"), progress="none")
    with pytest.raises(ConfigError, match="twice"):
        benchmark(dataset="tiny", models="Pop,Pop", out=str(tmp_path / "r"), progress="none")
    assert not (tmp_path / "r").exists()
    # the CLI prints such errors on one line and exits 2
    assert cli_main(["benchmark", "--dataset", "tiny", "--models", "BPRR", "--out", str(tmp_path / "r")]) == 2


def _record(row, seed, overall, cold=None, warm=None, status="ok", **cost):
    metrics = {"overall": overall}
    if cold is not None:
        metrics["coldstart"], metrics["warm"] = cold, warm
    rec = {"row": row, "model": row.split("-")[0], "seed": seed, "status": status, "metrics": metrics,
           "n_params": 100, "best_epoch": 1, "epochs": 3, "train_seconds_per_epoch": 0.5, "eval_seconds": 0.1,
           "peak_memory_mb": 400.0, "device": "cpu", "view_users": {"overall": 10, "coldstart": 3, "warm": 7},
           "worker_log": f"/r/runs/{row}/seed{seed}/worker.log"}
    rec.update(cost)
    if status != "ok":
        rec = {k: rec[k] for k in ("row", "model", "seed", "worker_log")}
        rec.update(status="failed", error="ValueError: boom | pipe")
    return rec


def test_report_mean_std_best_marks_and_files(tmp_path):
    records = [
        _record("TFIDF", 1, {"recall@10": 0.2, "ndcg@10": 0.1, "gauc": 0.7},
                {"recall@10": 0.3, "ndcg@10": 0.2, "gauc": 0.8}, {"recall@10": 0.1, "ndcg@10": 0.05, "gauc": 0.6}),
        _record("TFIDF", 2, {"recall@10": 0.4, "ndcg@10": 0.2, "gauc": 0.7},
                {"recall@10": 0.3, "ndcg@10": 0.2, "gauc": 0.8}, {"recall@10": 0.1, "ndcg@10": 0.05, "gauc": 0.6}),
        _record("BPR", 1, {"recall@10": 0.25, "ndcg@10": 0.05, "gauc": 0.5},
                {"recall@10": 0.0, "ndcg@10": 0.0, "gauc": 0.4}, {"recall@10": 0.3, "ndcg@10": 0.1, "gauc": 0.55},
                train_seconds_per_epoch=0.2),
        _record("BPR", 2, {}, status="failed"),
    ]
    summary = summarize(records)
    tf = summary["TFIDF"]["metrics"]["overall"]["recall@10"]
    assert tf["mean"] == pytest.approx(0.3) and tf["std"] == pytest.approx(statistics.stdev([0.2, 0.4]))
    assert summary["TFIDF"]["metrics"]["overall"]["auc"]["mean"] == pytest.approx(0.7)  # gauc reported as auc
    assert summary["BPR"]["seeds_ok"] == [1] and summary["BPR"]["seeds_failed"] == [2]
    assert summary["BPR"]["metrics"]["overall"]["recall@10"]["std"] is None

    meta = {"dataset": "toy", "run": "r1", "run_dir": "/r", "seeds": [1, 2], "command": "blairclip benchmark"}
    files = report.write_all(str(tmp_path), records, meta)
    text = open(files["report.md"], encoding="utf-8").read()
    overall = table_rows(text, "## Test metrics (all test users)")
    assert overall[0] == ["Model", "Seeds", "Recall@10", "NDCG@10", "AUC"]
    assert ["TFIDF", "1, 2", "**0.3000 ± 0.1414**", "**0.1500 ± 0.0707**", "**0.7000 ± 0.0000**"] in overall
    assert ["BPR", "1", "0.2500", "0.0500", "0.5000"] in overall
    assert "## Test metrics (cold-start test users: 3 of 10)" in text
    warm = table_rows(text, "## Test metrics (warm test users: 7 of 10)")
    assert ["BPR", "1", "**0.3000**", "**0.1000**", "0.5500"] in warm  # warm view: BPR best at recall/ndcg
    failed = table_rows(text, "## Failed runs")[1]
    assert failed == ["BPR", "2", "ValueError: boom \\| pipe", "runs/BPR/seed2/worker.log"]
    assert "**0.200**" in text  # BPR's lower train time per epoch is marked in the cost table
    for name in ("metrics.png", "coldstart.png"):
        with open(files[name], "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
    with open(files["results.csv"], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["seed"], r["status"]) for r in rows] == [
        ("TFIDF", "1", "ok"), ("TFIDF", "2", "ok"), ("BPR", "1", "ok"), ("BPR", "2", "failed")]
    assert float(rows[2]["coldstart_recall@10"]) == 0.0 and float(rows[2]["warm_auc"]) == 0.55
    data = json.load(open(files["results.json"], encoding="utf-8"))
    assert data["summary"]["TFIDF"]["metrics"]["coldstart"]["recall@10"]["mean"] == pytest.approx(0.3)
    assert len(data["runs"]) == 4 and data["dataset"] == "toy"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]  # atomic writes left no temporary file


def test_metric_names_and_order():
    assert metric_names.normalize({"GAUC": 0.5, "Recall@10": 0.1}) == {"auc": 0.5, "recall@10": 0.1}
    assert metric_names.normalize({"auc": 0.6, "gauc": 0.5}) == {"auc": 0.6, "gauc": 0.5}
    assert metric_names.ordered(["auc", "ndcg@10", "recall@50", "mrr@10", "recall@10", "recall@5"]) == [
        "recall@5", "recall@10", "recall@50", "ndcg@10", "mrr@10", "auc"]
    assert metric_names.display_name("ndcg@10") == "NDCG@10" and metric_names.display_name("auc") == "AUC"


def test_cli_registers_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["benchmark", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--dataset", "--models", "--seeds", "--config_files", "--out", "--force"):
        assert flag in out


def test_plain_run_config_is_shared(tmp_path):
    plain = _write(tmp_path / "run.yaml", "dataset: tiny\nepochs: 3\nn_layers: 1\n")
    bench = BenchmarkConfig([plain])
    assert bench.get("dataset") == "tiny" and bench.shared == {"epochs": 3, "n_layers": 1}
    assert bench.benchmark_files == [] and bench.sources == [plain]
