"""The leaderboard presets (configs/leaderboard/) and the published-numbers column of the report."""
import os
import re

import pytest
import yaml
from conftest import table_rows, write_tiny_dataset

from recbole_blairclip import registry
from recbole_blairclip.benchmark import report
from recbole_blairclip.benchmark.reference import parse_reference, reference_table
from recbole_blairclip.benchmark.config import BenchmarkConfig
from recbole_blairclip.benchmark.plan import plan_rows
from recbole_blairclip.benchmark.summary import summarize
from recbole_blairclip.cli import main as cli_main
from recbole_blairclip.errors import ConfigError

PRESETS = os.path.join(os.path.dirname(__file__), "..", "configs", "leaderboard")
SOURCE_RE = re.compile(r"RUCAIBox/RecBole(-GNN)? \S+@[0-9a-f]{8}")


@pytest.mark.parametrize("name", ["general.yaml", "sequential.yaml"])
def test_presets_resolve_every_row_and_cite_every_value(name):
    path = os.path.join(PRESETS, name)
    bench = BenchmarkConfig([path])
    rows = bench.get("models")
    assert {"TFIDF", "BLaIRCLIP"} <= set(rows)
    for plan in plan_rows(rows, bench):
        registry.get_model(plan.model)  # every name is a RecBole or plugin model
        assert plan.config["embedding_size"] == 64 and plan.config["topk"] == [10]
    # every per-model value has a cited source on its block's comment line
    text = open(path, encoding="utf-8").read()
    raw = yaml.safe_load(text)
    for model in raw["model_config"]:
        block = text[text.index(f"  {model}:"):]
        comment = block.splitlines()[0]
        assert "#" in comment and ("[" in comment or "plugin row" in comment), comment
    cited = re.findall(r"#\s+\[(\S+?)\]\s+(RUCAIBox/\S+ \S+)", text)
    assert cited and all(SOURCE_RE.fullmatch(src) for _, src in cited)
    for key in re.findall(r"# \[([\w-]+)\]", text):
        assert key in {k for k, _ in cited}, f"{key} used but not defined in the header"
    ref = bench.get("reference")
    assert ref and all(SOURCE_RE.fullmatch(e["source"]) for entries in ref.values() for e in entries)
    sasrec_or_bpr = ref.get("SASRec") or ref.get("BPR")
    assert {e["metric"] for e in sasrec_or_bpr} == {"recall@10", "ndcg@10"}


def test_reference_entries_are_checked():
    assert parse_reference(None, "f.yaml") == {}
    ok = parse_reference({"BPR": {"metric": "NDCG@10", "value": 0.2, "source": "s"}}, "f.yaml")
    assert ok == {"BPR": [{"metric": "ndcg@10", "value": 0.2, "dataset": "", "protocol": "", "source": "s"}]}
    with pytest.raises(ConfigError, match=r"f.yaml: `reference.BPR\[0\]`: missing \['source'\]"):
        parse_reference({"BPR": [{"metric": "ndcg@10", "value": 0.2}]}, "f.yaml")
    with pytest.raises(ConfigError, match="value must be a finite number"):
        parse_reference({"BPR": [{"metric": "ndcg@10", "value": "high", "source": "s"}]}, "f.yaml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['valu'\]"):
        parse_reference({"BPR": [{"metric": "ndcg@10", "valu": 0.2, "value": 1, "source": "s"}]}, "f.yaml")


def test_reference_table_puts_published_beside_reproduced():
    records = [{"row": "BPR", "model": "BPR", "seed": s, "status": "ok",
                "metrics": {"overall": {"ndcg@10": v, "recall@10": 0.1}}} for s, v in ((1, 0.2), (2, 0.3))]
    summary = summarize(records)
    ref = {"BPR": [{"metric": "ndcg@10", "value": 0.2401, "dataset": "ml-1m", "protocol": "8:1:1", "source": "src"}],
           "Absent": [{"metric": "ndcg@10", "value": 0.5, "dataset": "", "protocol": "", "source": "x"}]}
    table = reference_table(summary, ref, dataset="toys")
    assert table_rows(table) == [
        ["Model", "Metric", "Reproduced", "Published", "Difference", "Published on", "Protocol", "Source"],
        ["BPR", "NDCG@10", "0.2500 ± 0.0707", "0.2401", "+0.0099", "ml-1m (another dataset)", "8:1:1", "src"]]
    assert "Absent" not in table
    assert reference_table(summary, {}, "toys") is None
    text = report.markdown(records, {"dataset": "toys", "run": "r", "seeds": [1, 2], "reference": ref})
    assert table_rows(text, "## Published numbers beside the reproduced ones")[1][:2] == ["BPR", "NDCG@10"]
    assert "Published numbers" not in report.markdown(records, {"dataset": "toys", "run": "r", "seeds": [1, 2]})


def test_preset_benchmark_in_one_command(tmp_path, monkeypatch, capsys):
    write_tiny_dataset(str(tmp_path / "data"), name="tiny", n_users=30, n_items=40)
    monkeypatch.chdir(tmp_path)
    status = cli_main(["benchmark", "--config_files", os.path.join(PRESETS, "general.yaml"), "--dataset", "tiny",
                       "--models", "BPR,TFIDF", "--set", "epochs=1", "--set", f"data_path={tmp_path / 'data'}",
                       "--set", "train_batch_size=64", "--progress", "none", "--out", str(tmp_path / "res")])
    assert status == 0, capsys.readouterr()
    text = open(tmp_path / "res" / "tiny" / "general" / "report.md", encoding="utf-8").read()
    published = next(cells for cells in table_rows(text, "## Published numbers beside the reproduced ones")
                     if cells[:2] == ["BPR", "NDCG@10"])
    assert published[3:6:2] == ["0.2401", "ml-1m (another dataset)"]
    assert re.fullmatch(r"\d\.\d{4}", published[2]) and re.fullmatch(r"[+-]\d\.\d{4}", published[4])
    assert ["TFIDF", "2020"] in [cells[:2] for cells in table_rows(text, "## Test metrics (all test users)")]
    assert "Hit@10" in text and "Precision@10" in text  # the leaderboard's metrics
