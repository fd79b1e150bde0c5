"""Per-user ranks (``ranks_file``): every reported metric is recomputed from the Parquet file.

Expected values: the metrics RecBole's evaluator reports for the same run (overall, cold-start, warm), and
the targets / cold-start flags read from the atomic files with pandas.
"""
import numpy as np
import pandas as pd
import pytest
from conftest import write_tiny_dataset

from recbole_blairclip.evaluation.ranks import COLUMNS, TIES, metrics_from_ranks, read_ranks, user_values
from recbole_blairclip.quick_start import run

METRICS = ("recall@10", "recall@50", "ndcg@10", "ndcg@50", "mrr@10", "mrr@50", "hit@10", "hit@50", "precision@10",
           "precision@50", "auc")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    write_tiny_dataset(str(root / "dataset_atomic"), n_users=40, n_items=60, seed=5)
    return root


def _run(root, model, decimals=10, **extra):
    path = root / f"{model}-{decimals}.parquet"
    config = {
        "data_path": str(root / "dataset_atomic"), "output_dir": str(root / "out"), "epochs": 2,
        "train_batch_size": 64, "eval_batch_size": 600, "show_progress": False, "seed": 3,
        "metric_decimal_place": decimals, "metrics": ["Recall", "NDCG", "MRR", "Hit", "Precision", "GAUC"],
        "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1,
        "ranks_file": str(path), **extra,
    }
    return run(model=model, dataset="tiny", config_dict=config), path


@pytest.mark.parametrize("model", ["BPR", "SASRec", "Pop", "TFIDF"])
def test_metrics_recomputed_from_the_parquet_equal_the_reported_ones(root, model):
    result, path = _run(root, model)
    assert result["ranks_file"] == str(path)
    table, meta = read_ranks(path)
    assert meta["ties"] == TIES and meta["model"] == model and meta["phase"] == "test"
    test = pd.read_csv(root / "dataset_atomic" / "tiny" / "tiny.test.inter", sep="\t")
    seen = set(pd.read_csv(root / "dataset_atomic" / "tiny" / "tiny.train.inter", sep="\t")["item_id:token"])
    # every test user once, with its target and its cold-start flag
    assert sorted(table["user_id"]) == sorted(test["user_id:token"])
    target = dict(zip(test["user_id:token"], test["item_id:token"]))
    assert all(target[u] == i for u, i in zip(table["user_id"], table["item_id"]))
    assert [i not in seen for i in table["item_id"]] == list(table["is_coldstart"])
    assert ((table["rank"] >= 1) & (table["rank"] <= table["n_candidates"])).all()
    assert (table["rank"] >= table["rank_avg"]).all()  # pessimistic ties never rank a target higher
    assert result["n_test_coldstart"] == int(table["is_coldstart"].sum())
    for view, rows in (("", None), ("_coldstart", table["is_coldstart"]), ("_warm", ~table["is_coldstart"])):
        reported = result["test_result" + view]
        recomputed = metrics_from_ranks(table, METRICS, rows=rows)
        assert set(recomputed) == set(reported), view
        for name in METRICS:
            assert recomputed[name] == pytest.approx(reported[name], abs=1e-9), (model, view, name)


def test_rounded_metrics_match_exactly(root):
    result, path = _run(root, "BPR", decimals=4)
    table, _ = read_ranks(path)
    recomputed = metrics_from_ranks(table, METRICS)
    assert {k: round(v, 4) for k, v in recomputed.items()} == result["test_result"]


def test_ties_pop_scores_tie_and_ranks_say_how(root):
    """Pop gives many items the same count: tied targets rank after the tied candidates, auc averages."""
    _, path = _run(root, "Pop")
    table, _ = read_ranks(path)
    tied = table["rank"] > table["rank_avg"]
    assert tied.any()
    n, r, ra = table["n_candidates"], table["rank"], table["rank_avg"]
    # rank_avg = greater + (tied + 1) / 2 and rank = greater + tied: the tie count is 2 (rank - rank_avg) + 1
    n_tied = 2 * (r - ra) + 1
    assert np.allclose(n_tied, np.round(n_tied)) and (n_tied >= 1).all()
    auc = user_values(table, "auc")
    assert np.allclose(auc, (n - ra) / (n - 1))
    assert np.array_equal(user_values(table, "recall@10"), (r <= 10).astype(float))


def test_no_ranks_file_by_default(root, tmp_path):
    result, path = _run(root, "BPR", decimals=6, ranks_file=None)
    assert result["ranks_file"] is None and not path.exists()


def test_read_ranks_names_the_file_when_columns_miss(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"user_id": ["u1"]}), bad)
    with pytest.raises(ValueError, match="bad.parquet.*rank"):
        read_ranks(bad)
    assert COLUMNS[0] == "user_id"
