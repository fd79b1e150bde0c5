"""Cold-start view: the protocol's metrics on the rows whose target never occurs in training, and on the rest.

A row is *cold-start* when none of its targets occurs in a training interaction (the converter's
``stats.json`` ``cold_start.test_targets`` counts the same test targets). The views re-run RecBole's
evaluator on the subset of the rows the trainer collected, so the numbers are computed exactly as the
overall ones.
"""
import torch
from recbole.evaluator.collector import DataStruct

from recbole_blairclip.evaluation.protocol import report_names

ROW_KEYS = ("rec.items", "rec.topk", "rec.meanrank", "rec.score")  # one row per evaluation row


def subset_struct(struct, rows):
    """A copy of RecBole's evaluation DataStruct keeping only ``rows`` (bool or index tensor)."""
    subset = DataStruct()
    for key, value in struct._data_dict.items():
        subset[key] = value[rows] if key in ROW_KEYS and isinstance(value, torch.Tensor) else value
    return subset


def coldstart_views(evaluator, struct, cold):
    """Metrics on the cold-start rows and on the warm rows (None for an empty group), and the counts."""
    cold = torch.as_tensor(cold, dtype=torch.bool)
    views = {"n_users": int(len(cold)), "n_coldstart": int(cold.sum()), "n_warm": int((~cold).sum())}
    for name, rows in (("coldstart", cold), ("warm", ~cold)):
        views[name] = report_names(evaluator.evaluate(subset_struct(struct, rows))) if bool(rows.any()) else None
    return views


def coldstart_count(phase, dataloader):
    """Number of rows of ``dataloader`` (a full-sort eval loader) whose target never occurs in training."""
    n = 0
    for interaction, _, positive_u, positive_i in dataloader:
        n += int(phase.coldstart_rows(len(interaction), positive_u, positive_i).sum())
    return n


__all__ = ["ROW_KEYS", "coldstart_count", "coldstart_views", "subset_struct"]
