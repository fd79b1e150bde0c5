"""``blairclip benchmark`` end to end on tiny data: every (model, seed) in its own process.

One module-scoped benchmark (BPR, Pop and a model that fails in ``__init__``, one seed, 2 epochs) is shared
by the checks below; later tests re-run it to check resume, --force and config changes.
"""
import csv
import json
import os
import textwrap

import pytest
from conftest import table_rows, write_tiny_dataset

from recbole_blairclip import registry
from recbole_blairclip.benchmark.metric_names import display_name
from recbole_blairclip.benchmark.runner import benchmark

FAILING_MODULE = '''
from recbole.model.general_recommender import BPR


class FailingModel(BPR):
    """A model whose constructor raises: the benchmark must record it and go on."""

    def __init__(self, config, dataset):
        raise RuntimeError("deliberate failure in __init__")
'''
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    write_tiny_dataset(str(root / "dataset_atomic"), n_users=30, n_items=60)
    (root / "failing_model.py").write_text(textwrap.dedent(FAILING_MODULE))
    bench_yaml = root / "bench.yaml"
    bench_yaml.write_text(textwrap.dedent(f"""
        dataset: tiny
        models: [BPR, Pop, FailingModel]
        seeds: [7]
        data_path: {root / "dataset_atomic"}
        epochs: 2
        train_batch_size: 64
        model_config:
          BPR: {{embedding_size: 16}}
        variants:
          BPR-big: {{model: BPR, embedding_size: 32}}
    """))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.syspath_prepend(str(root))  # the worker processes inherit sys.path
        registry.register_model("FailingModel", "failing_model")
        try:
            result = benchmark(config_files=[str(bench_yaml)], out=str(root / "results"), progress="lines")
            yield {"root": root, "yaml": bench_yaml, "result": result, "mp": mp}
        finally:
            registry.PLUGIN_MODELS.pop("FailingModel", None)


def _records(result):
    return {(r["row"], r["seed"]): r for r in result["records"]}


def test_writes_every_file_in_the_run_folder(bench):
    run_dir = bench["result"]["run_dir"]
    assert run_dir == str(bench["root"] / "results" / "tiny" / "bench")
    for name in ("results.csv", "results.json", "report.md", "metrics.png", "coldstart.png"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    for row in ("BPR", "Pop", "FailingModel"):
        folder = os.path.join(run_dir, "runs", row, "seed7")
        for name in ("spec.json", "result.json", "worker.log"):
            assert os.path.isfile(os.path.join(folder, name)), (row, name)
    # RecBole's own logs go to the run folder, not the current directory; checkpoints are removed
    assert os.path.isdir(os.path.join(run_dir, "runs", "BPR", "seed7", "log"))
    assert not os.path.exists(bench["root"] / "log")
    saved = os.path.join(run_dir, "runs", "BPR", "seed7", "saved")
    assert not os.path.isdir(saved) or not os.listdir(saved)


def test_plots_are_valid_pngs(bench):
    from PIL import Image

    for name in ("metrics.png", "coldstart.png"):
        path = os.path.join(bench["result"]["run_dir"], name)
        with open(path, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.size[0] > 300 and image.size[1] > 200


def test_failing_model_is_recorded_and_others_finish(bench):
    result = bench["result"]
    records = _records(result)
    assert result["ran"] == 3 and result["failed"] == 1 and result["skipped"] == 0
    failed = records[("FailingModel", 7)]
    assert failed["status"] == "failed"
    assert failed["error"] == "RuntimeError: deliberate failure in __init__"
    with open(failed["worker_log"], encoding="utf-8") as f:
        assert "deliberate failure in __init__" in f.read()  # the traceback is in the run's log
    for row in ("BPR", "Pop"):
        assert records[(row, 7)]["status"] == "ok"
    text = open(os.path.join(result["run_dir"], "report.md"), encoding="utf-8").read()
    assert "## Failed runs" in text and "deliberate failure" in text


def test_result_records_hold_metrics_cost_and_config(bench):
    bpr = _records(bench["result"])[("BPR", 7)]
    overall = bpr["metrics"]["overall"]
    assert {"recall@10", "recall@50", "ndcg@10", "mrr@10"} <= set(overall)
    assert "auc" in overall and "gauc" not in overall  # RecBole's gauc is recorded under the protocol's name
    assert all(0.0 <= v <= 1.0 for v in overall.values())
    assert bpr["config"]["seed"] == 7 and bpr["config"]["embedding_size"] == 16  # model_config applied
    assert bpr["config"]["epochs"] == 2 and bpr["config"]["model"] == "BPR"
    assert bpr["epochs"] == 2 and len(bpr["epoch_train_seconds"]) == 2 and len(bpr["epoch_valid_seconds"]) == 2
    assert bpr["train_seconds_per_epoch"] == pytest.approx(sum(bpr["epoch_train_seconds"]) / 2)
    assert bpr["best_epoch"] in (0, 1) and bpr["eval_seconds"] > 0
    assert bpr["n_params"] == (30 + 1 + 60 + 1) * 16  # user + item embeddings (with padding), 16 wide
    assert bpr["peak_memory_mb"] > 10 and bpr["device"] == "cpu"
    assert bpr["versions"]["recbole"] == "1.2.1" and bpr["versions"]["torch"]
    spec = json.load(open(os.path.join(bpr["run_dir"], "spec.json"), encoding="utf-8"))
    assert spec["config"]["output_dir"] == bpr["run_dir"] and spec["spec_hash"] == bpr["spec_hash"]


def _markdown_table(text, heading):
    """{row: {column: cell}} of the markdown table after ``heading``."""
    header, *rows = table_rows(text, heading)
    return {cells[0]: dict(zip(header, (c.strip("*") for c in cells))) for cells in rows}


def test_table_csv_and_json_agree(bench):
    run_dir = bench["result"]["run_dir"]
    data = json.load(open(os.path.join(run_dir, "results.json"), encoding="utf-8"))
    runs = {(r["row"], r["seed"]): r for r in data["runs"]}
    assert set(runs) == {("BPR", 7), ("Pop", 7), ("FailingModel", 7)}
    text = open(os.path.join(run_dir, "report.md"), encoding="utf-8").read()
    table = _markdown_table(text, "## Test metrics (all test users)")
    assert set(table) == {"BPR", "Pop"}
    with open(os.path.join(run_dir, "results.csv"), encoding="utf-8") as f:
        rows = {(r["model"], int(r["seed"])): r for r in csv.DictReader(f)}
    assert rows[("FailingModel", 7)]["status"] == "failed"
    for row in ("BPR", "Pop"):
        metrics = runs[(row, 7)]["metrics"]["overall"]
        expected = {k.lower(): v for k, v in metrics.items()}
        assert "auc" in expected and "gauc" not in expected
        for name, value in expected.items():
            cell = data["summary"][row]["metrics"]["overall"][name]  # recomputed from ranks.parquet
            assert cell["mean"] == pytest.approx(value, abs=5e-5)  # RecBole rounds to 4 decimals
            interval = f"[{cell['ci_low']:.4f}, {cell['ci_high']:.4f}]"
            assert table[row][display_name(name)].startswith(f"{value:.4f} {interval}"), (row, name)
            assert cell["ci_low"] <= cell["mean"] <= cell["ci_high"]
            assert float(rows[(row, 7)][name]) == pytest.approx(value, abs=1e-12)
            assert os.path.isfile(os.path.join(runs[(row, 7)]["run_dir"], "ranks.parquet"))
        assert set(data["statistics"]["overall"]["metrics"]) == set(expected)
        assert table[row]["Seeds"] == "7"
    # best per column is marked: a cell is bold exactly when it holds its column's maximum
    raw = table_rows(text, "## Test metrics (all test users)")[1:]
    assert len(raw) == 2
    for col in range(2, len(raw[0])):
        values = [float(row[col].strip("*").split()[0]) for row in raw]
        for row, value in zip(raw, values):
            assert row[col].startswith("**") == (value == max(values)), (row[0], col)


def test_rerun_skips_finished_runs_and_retries_failed(bench):
    root = bench["root"]
    result = benchmark(config_files=[str(bench["yaml"])], models="BPR,Pop", out=str(root / "results"),
                       progress="none")
    assert result["skipped"] == 2 and result["ran"] == 0
    before = _records(bench["result"])
    after = _records(result)
    for key in (("BPR", 7), ("Pop", 7)):
        assert after[key]["finished"] == before[key]["finished"]  # read back, not re-run
        assert after[key]["metrics"] == before[key]["metrics"]


def test_force_reruns_finished_runs(bench):
    root = bench["root"]
    forced = benchmark(config_files=[str(bench["yaml"])], models="Pop", out=str(root / "results"),
                       progress="none", force=True)
    assert forced["ran"] == 1 and forced["skipped"] == 0 and forced["failed"] == 0
    # Pop is deterministic: the forced run reproduces the first one's metrics
    assert forced["records"][0]["metrics"] == _records(bench["result"])[("Pop", 7)]["metrics"]
    assert forced["records"][0]["spec_hash"] == _records(bench["result"])[("Pop", 7)]["spec_hash"]


def test_timeout_is_recorded_as_failed(bench):
    root = bench["root"]
    result = benchmark(config_files=[str(bench["yaml"])], models="Pop", out=str(root / "results"),
                       run_name="timeout", progress="none", timeout=0.5)
    record = result["records"][0]
    assert result["failed"] == 1 and record["status"] == "failed"
    assert record["error"] == "timed out after 0.5s"
    saved = json.load(open(os.path.join(record["run_dir"], "result.json"), encoding="utf-8"))
    assert saved["status"] == "failed"  # on disk too: a re-run tries it again


def test_report_keeps_rows_skipped_after_a_run(bench):
    """A row that runs again, followed by rows skipped as finished: the table still has every row."""
    root = bench["root"]
    pop_result = os.path.join(_records(bench["result"])[("Pop", 7)]["run_dir"], "result.json")
    os.remove(pop_result)  # Pop must run again; BPR after it is skipped
    result = benchmark(config_files=[str(bench["yaml"])], models="Pop,BPR", out=str(root / "results"),
                       progress="none")
    assert result["ran"] == 1 and result["skipped"] == 1
    with open(os.path.join(result["run_dir"], "results.csv"), encoding="utf-8") as f:
        rows = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    report_md = open(os.path.join(result["run_dir"], "report.md"), encoding="utf-8").read()
    assert set(_markdown_table(report_md, "## Test metrics (all test users)")) == {"Pop", "BPR"}
    assert len(rows) == 2
