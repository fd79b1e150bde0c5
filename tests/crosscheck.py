"""Test oracle: an independent numpy implementation of the protocol's metrics, from captured scores.

It shares no code with RecBole or :mod:`recbole_blairclip.evaluation.protocol`: from a score matrix
(rows x items, ``-inf`` = not a candidate) and the targets of each row it recomputes Recall@k, NDCG@k,
MRR@k, Hit@k, Precision@k and AUC with the protocol's tie rules (top-k: a target tied with non-targets
ranks after them, targets tied together by item id; AUC: a tie counts one half). Agreement with what
the trainer reports (to 1e-6, ``metric_decimal_place`` >= 8) checks the whole chain: candidates, ranks,
RecBole's metric code.

Usage::

    dump = collect_scores(trainer, test_data)            # runs trainer.evaluate, keeps every score
    save_scores("scores.npz", dump); dump = load_scores("scores.npz")
    mismatches = compare(dump["result"], numpy_metrics(dump, topk=[10, 50]))
"""
import numpy as np

from recbole_blairclip.evaluation.trainer import TrainerHooks


class ScoreCapture(TrainerHooks):
    """Keeps every evaluated batch's ``(users, scores, positive_u, positive_i)`` on the CPU."""

    def __init__(self):
        self.batches = []

    def on_eval_batch(self, trainer, users, scores, positive_u, positive_i):
        self.batches.append((users.cpu(), scores.detach().cpu().clone(), positive_u.cpu(), positive_i.cpu()))


def collect_scores(trainer, eval_data):
    """Evaluate with a protocol trainer and keep its masked scores: dict of numpy arrays plus ``result``.

    ``scores`` (rows x items, float64), ``users`` (internal user id per row), ``target_row`` /
    ``target_item`` (one entry per target), ``result`` (the trainer's metrics).
    """
    capture = ScoreCapture()
    trainer.hooks.append(capture)
    try:
        result = trainer.evaluate(eval_data, load_best_model=False)
    finally:
        trainer.hooks.remove(capture)
    batches = capture.batches
    users, scores, rows, items = [], [], [], []
    offset = 0
    for batch_users, batch_scores, positive_u, positive_i in batches:
        users.append(batch_users.numpy())
        scores.append(batch_scores.double().numpy())
        rows.append(positive_u.numpy() + offset)
        items.append(positive_i.numpy())
        offset += batch_scores.shape[0]
    return {
        "users": np.concatenate(users),
        "scores": np.concatenate(scores),
        "target_row": np.concatenate(rows),
        "target_item": np.concatenate(items),
        "result": dict(result),
    }


def save_scores(path, dump):
    """Write a dump to ``path`` (.npz); the metrics go in as two parallel arrays."""
    names = sorted(dump["result"])
    arrays = {k: v for k, v in dump.items() if k != "result"}
    np.savez_compressed(path, result_names=np.array(names), result_values=np.array([dump["result"][n] for n in names]), **arrays)


def load_scores(path):
    with np.load(path, allow_pickle=False) as data:
        dump = {k: data[k] for k in data.files if not k.startswith("result_")}
        dump["result"] = dict(zip(data["result_names"].tolist(), data["result_values"].tolist()))
    return dump


def row_ranks(scores, targets):
    """1-based pessimistic ranks of ``targets`` (item ids) in one row of scores, candidates = finite scores."""
    candidate = np.isfinite(scores)
    ranks = []
    targets = np.sort(np.asarray(targets))
    for item in targets:
        s = scores[item]
        ahead = np.sum(candidate & (scores > s))
        tied_targets_before = sum(1 for t in targets if t < item and scores[t] == s)
        tied_targets = sum(1 for t in targets if t != item and scores[t] == s)
        tied_non_targets = np.sum(candidate & (scores == s)) - 1 - tied_targets
        ranks.append(ahead + tied_non_targets + tied_targets_before + 1)
    return np.array(ranks)


def row_auc(scores, targets):
    """Per-row AUC: over (target, non-target candidate) pairs, 1 when the target scores higher, 1/2 on ties."""
    candidate = np.isfinite(scores)
    negative = candidate.copy()
    negative[np.asarray(targets)] = False
    neg_scores = scores[negative]
    if len(neg_scores) == 0 or len(targets) == 0:
        return None
    total = 0.0
    for item in targets:
        total += np.sum(neg_scores < scores[item]) + 0.5 * np.sum(neg_scores == scores[item])
    return total / (len(targets) * len(neg_scores))


def numpy_metrics(dump, topk=(10, 50)):
    """Every protocol metric from a dump (see :func:`collect_scores`), as ``{'recall@10': ..., 'auc': ...}``."""
    scores = dump["scores"]
    n_rows = scores.shape[0]
    per_row = {row: [] for row in range(n_rows)}
    for row, item in zip(dump["target_row"].tolist(), dump["target_item"].tolist()):
        per_row[row].append(item)
    sums = {}
    auc_num, auc_den = 0.0, 0
    for row in range(n_rows):
        targets = per_row[row]
        ranks = row_ranks(scores[row], targets)
        for k in topk:
            hits = ranks[ranks <= k]
            ideal = sum(1.0 / np.log2(j + 2) for j in range(min(len(targets), k)))
            values = {
                "recall": len(hits) / len(targets),
                "hit": float(len(hits) > 0),
                "precision": len(hits) / k,
                "ndcg": sum(1.0 / np.log2(r + 1) for r in hits) / ideal,
                "mrr": 1.0 / hits.min() if len(hits) else 0.0,
            }
            for name, value in values.items():
                sums[f"{name}@{k}"] = sums.get(f"{name}@{k}", 0.0) + value
        auc = row_auc(scores[row], targets)
        if auc is not None:  # rows without a negative are left out, as RecBole does
            auc_num += auc * len(targets)
            auc_den += len(targets)
    metrics = {name: total / n_rows for name, total in sums.items()}
    metrics["auc"] = auc_num / auc_den if auc_den else float("nan")
    return metrics


def compare(reported, computed, tol=1e-6):
    """Names whose reported value differs from the numpy one by more than ``tol`` (reported names only)."""
    return {
        name: (value, computed[name])
        for name, value in reported.items()
        if name in computed and abs(float(value) - float(computed[name])) > tol
    }


__all__ = ["collect_scores", "compare", "load_scores", "numpy_metrics", "row_auc", "row_ranks", "save_scores"]
