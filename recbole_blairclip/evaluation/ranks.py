"""Per-user ranks of an evaluation, the Parquet file that keeps them, and every metric recomputed from them.

One row per evaluation row (a test user and its target; leave-one-out gives one target per user):

=============== ========= =============================================================================
column          type      meaning
=============== ========= =============================================================================
``user_id``     string    the user's token (as in the atomic files)
``item_id``     string    the target item's token
``rank``        int64     1-based rank of the target among the row's candidates; a target tied with
                          non-target candidates ranks **after** them (pessimistic), targets tied with
                          each other: lower internal item id first. Recall, NDCG, MRR, Hit and
                          Precision read this rank, exactly as the protocol builds RecBole's ``rec.topk``.
``rank_avg``    float64   1-based rank averaged over the ties (a tie counts one half), what RecBole's
                          ``rec.meanrank`` holds and ``GAUC`` (reported as ``auc``) reads.
``n_candidates`` int64    candidates of the row (items minus padding, minus the masked earlier items)
``is_coldstart`` bool     the target never occurs in training
=============== ========= =============================================================================

Without ties ``rank == rank_avg``. The metric formulas below are RecBole 1.2.1's with one target per row:
``recall@k = hit@k = [rank <= k]``, ``precision@k = [rank <= k] / k``, ``ndcg@k = [rank <= k] / log2(rank + 1)``,
``mrr@k = [rank <= k] / rank``, ``auc = (n_candidates - rank_avg) / (n_candidates - 1)`` (rows with a single
candidate are left out of ``auc``, as RecBole's GAUC does). Means over rows equal RecBole's numbers before
its rounding to ``metric_decimal_place``.
"""
import os

import numpy as np

from recbole_blairclip.io import replacing

COLUMNS = ("user_id", "item_id", "rank", "rank_avg", "n_candidates", "is_coldstart")
TIES = "pessimistic rank for top-k metrics (tied non-targets first); average rank over ties for auc"
RECOMPUTABLE = ("recall", "hit", "precision", "ndcg", "mrr", "auc")
AUC_KEY = "auc"


def metric_name(name):
    """The protocol's name of a metric: lower case, RecBole's ``gauc`` (its full-ranking per-user AUC, which
    with one target per user is the AUC) as ``auc``. The one place that rename lives."""
    name = str(name).lower()
    return AUC_KEY if name == "gauc" else name


def ranks_table(users, items, rank, rank_avg, n_candidates, is_coldstart):
    """A dict of numpy columns in :data:`COLUMNS` order (tokens as str, ranks 1-based)."""
    table = {
        "user_id": np.asarray(users).astype(str),
        "item_id": np.asarray(items).astype(str),
        "rank": np.asarray(rank, dtype=np.int64),
        "rank_avg": np.asarray(rank_avg, dtype=np.float64),
        "n_candidates": np.asarray(n_candidates, dtype=np.int64),
        "is_coldstart": np.asarray(is_coldstart, dtype=bool),
    }
    lengths = {len(v) for v in table.values()}
    if len(lengths) > 1:
        raise ValueError(f"rank columns differ in length: { {k: len(v) for k, v in table.items()} }")
    return table


def write_ranks(path, table, metadata=None):
    """Write a :func:`ranks_table` to ``path`` (Parquet, under a temporary name then renamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = {"ties": TIES, **{str(k): str(v) for k, v in (metadata or {}).items()}}
    arrow = pa.table({name: table[name] for name in COLUMNS}).replace_schema_metadata(meta)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replacing(path) as tmp:
        pq.write_table(arrow, str(tmp))
    return path


def read_ranks(path):
    """(dict of numpy columns, metadata dict) of a ranks file; fails naming the file when a column is missing."""
    import pyarrow.parquet as pq

    arrow = pq.read_table(path)
    missing = [c for c in COLUMNS if c not in arrow.column_names]
    if missing:
        raise ValueError(f"{path}: not a ranks file, missing column(s) {', '.join(missing)}")
    meta = {k.decode(): v.decode() for k, v in (arrow.schema.metadata or {}).items()}
    return {c: arrow.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}, meta


def user_values(table, metric):
    """Per-row values of ``metric`` (``recall@10``, ``ndcg@50``, ``mrr@10``, ``hit@10``, ``precision@10``,
    ``auc``) as a float64 array; ``auc`` is NaN for rows with one candidate. ``None`` for other metrics."""
    base, _, k = metric_name(metric).partition("@")
    rank = np.asarray(table["rank"], dtype=np.float64)
    if base == AUC_KEY:
        n = np.asarray(table["n_candidates"], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 1, (n - np.asarray(table["rank_avg"], dtype=np.float64)) / (n - 1), np.nan)
    if base not in RECOMPUTABLE or not k.isdigit():
        return None
    k = int(k)
    hit = rank <= k
    if base in ("recall", "hit"):
        return hit.astype(np.float64)
    if base == "precision":
        return hit / k
    if base == "ndcg":
        return np.where(hit, 1.0 / np.log2(rank + 1), 0.0)
    return np.where(hit, 1.0 / rank, 0.0)  # mrr


def metrics_from_ranks(table, metrics, rows=None):
    """{metric: mean over rows} recomputed from a ranks table (``rows``: a bool mask for a view)."""
    users = np.asarray(table["user_id"])
    if len(np.unique(users)) != len(users):
        raise ValueError("ranks with several targets per user: the per-row formulas assume one (leave-one-out)")
    out = {}
    for metric in metrics:
        values = user_values(table, metric)
        if values is None:
            continue
        if rows is not None:
            values = values[np.asarray(rows, dtype=bool)]
        values = values[~np.isnan(values)]
        out[metric] = float(values.mean()) if len(values) else None
    return out


__all__ = ["COLUMNS", "TIES", "metrics_from_ranks", "ranks_table", "read_ranks", "user_values", "write_ranks"]
