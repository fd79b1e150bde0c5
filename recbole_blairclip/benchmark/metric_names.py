"""Metric names in benchmark outputs: the protocol's key (:func:`normalize`, through
:func:`recbole_blairclip.evaluation.ranks.metric_name`), the table order (:func:`ordered`) and the
display name (:func:`display_name`); the evaluation views and their titles."""
from recbole_blairclip.evaluation.ranks import metric_name

VIEW_ORDER = ("overall", "warm", "coldstart")
VIEW_TITLES = {"overall": "all", "coldstart": "cold-start", "warm": "warm"}
FAMILIES = ("recall", "hit", "precision", "ndcg", "mrr", "map", "auc")  # table order of the metric families
_DISPLAY = {"recall": "Recall", "ndcg": "NDCG", "mrr": "MRR", "hit": "Hit", "precision": "Precision",
            "auc": "AUC", "map": "MAP"}


def normalize(metrics):
    """{protocol name: float} of a metrics dict (None values left out); a ``gauc`` stays ``gauc`` when an
    ``auc`` is already there."""
    out = {str(key).lower(): float(value) for key, value in (metrics or {}).items() if value is not None}
    if "auc" in out:
        return out
    return {metric_name(key): value for key, value in out.items()}


def ordered(names):
    """Metric names in table order: by family (Recall, Hit, Precision, NDCG, MRR, MAP, AUC), then cut-off."""

    def key(name):
        base, _, k = name.partition("@")
        rank = FAMILIES.index(base) if base in FAMILIES else len(FAMILIES)
        return (rank, base, int(k) if k.isdigit() else 0, name)

    return sorted(names, key=key)


def display_name(metric):
    """``ndcg@10`` -> ``NDCG@10``; ``auc`` (or RecBole's ``gauc``) -> ``AUC``."""
    base, at, k = metric.partition("@")
    base = metric_name(base)
    return _DISPLAY.get(base, base) + at + k
