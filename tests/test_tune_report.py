"""The tune report's tables, from trial records (no Ray): csv and markdown agree cell by cell."""
import csv
import io

from conftest import table_rows
from recbole_blairclip.tune.report import trials_csv, trials_markdown

RECORDS = [
    {"trial_id": "a1", "learning_rate": 0.003, "loss": "bpr", "best_valid": 0.123456789, "best_epoch": 4,
     "epochs_run": 9, "validations": 9, "status": "completed", "error": "", "trial_dir": "/x/a1"},
    {"trial_id": "b2", "learning_rate": 0.01, "loss": "ce", "best_valid": None, "best_epoch": None,
     "epochs_run": 0, "validations": 0, "status": "failed", "error": "ValueError: a|b must be > 0",
     "trial_dir": "/x/b2"},
]


def test_trials_markdown_holds_every_record_and_escapes_pipes():
    text = trials_markdown(RECORDS, ["learning_rate", "loss"], "ndcg@10", "BPR on tiny")
    assert text.startswith("# BPR on tiny\n\n")
    rows = table_rows(text)
    assert rows[0] == ["trial", "learning_rate", "loss", "best valid ndcg@10", "best epoch", "epochs run",
                       "status", "error"]
    assert rows[1] == ["a1", "0.003", "bpr", "0.1235", "4", "9", "completed", ""]
    assert rows[2] == ["b2", "0.01", "ce", "", "", "0", "failed", "ValueError: a\\|b must be > 0"]


def test_trials_csv_matches_the_records():
    rows = list(csv.DictReader(io.StringIO(trials_csv(RECORDS, ["learning_rate", "loss"]))))
    assert [r["trial_id"] for r in rows] == ["a1", "b2"]
    assert float(rows[0]["best_valid"]) == RECORDS[0]["best_valid"]
    assert rows[1]["best_valid"] == "" and rows[1]["error"] == RECORDS[1]["error"]
