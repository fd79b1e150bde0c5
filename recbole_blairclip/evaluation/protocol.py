"""The shared evaluation protocol: the same candidates and the same metric computation for every model.

Candidates. Every evaluation row (one user and its target) ranks all items minus the padding item 0,
minus the user's *earlier items* when ``mask_history`` is on (the default). Earlier items are computed
here, once, from the split datasets, the same way for general and sequential models:

* validation: the user's training interactions;
* test: the training interactions plus the validation interaction;

(for sequential files also every item of the rows' ``item_id_list``, so a user's first training item,
which is never a ``train_seq`` target, still counts). RecBole itself masks only for general models, and
only what its sampler saw; with the protocol BPR, SASRec and TFIDF rank exactly the same candidates.
A row's own targets are never masked (as in RecBole: history minus positives).

Ranking ties. Top-k metrics (Recall, NDCG, MRR, Hit, ...) read RecBole's ``rec.topk`` structure; RecBole
fills it with ``torch.topk``, whose order among equal scores is unspecified (and differs between CPU and
GPU). :class:`ProtocolCollector` fills it deterministically and pessimistically instead: a target tied
with non-target candidates ranks after them (targets tied with each other: lower item id first). A
constant scorer therefore gets 0, not a lucky tie-break. ``GAUC`` keeps RecBole's average ranks (a tie
counts one half), which is the usual AUC definition; the collector counts scores above / equal to each
target instead of sorting whole rows (same numbers as RecBole's sort, far cheaper on large catalogues).

AUC. RecBole's ``AUC`` is a value metric and cannot run in full-sort mode; its ``GAUC`` over the full
ranking is, with one target per row, ``(candidates below the target + tied / 2) / (candidates - 1)``
averaged over rows: the per-user AUC. It is reported under the name ``auc`` (:func:`report_names`).
"""
from collections import OrderedDict

import numpy as np
import torch
from recbole.evaluator.collector import Collector

from recbole_blairclip.evaluation.ranks import AUC_KEY, metric_name

PHASE_ATTR = "blairclip_phase"  # attribute set on the valid / test dataloaders by attach_protocol


def _as_numpy(interaction, field):
    return interaction[field].cpu().numpy() if field in interaction.columns else None


def _entries(dataset, config, split_index, with_targets):
    """(user, item, split, time, sub) arrays of a split: targets (sub 0) and history-list items (sub < 0)."""
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    list_field, time_field = iid + config["LIST_SUFFIX"], config["TIME_FIELD"]
    inter = dataset.inter_feat
    users = _as_numpy(inter, uid)
    n = len(users)
    times = _as_numpy(inter, time_field)
    times = np.arange(n, dtype=np.float64) if times is None else times.astype(np.float64)
    parts = []
    if with_targets:
        parts.append((users, _as_numpy(inter, iid), times, np.zeros(n)))
    lists = _as_numpy(inter, list_field)
    if lists is not None and lists.size:
        lengths = (lists > 0).sum(axis=1)
        rows, cols = np.nonzero(lists > 0)
        parts.append((users[rows], lists[rows, cols], times[rows], (cols - lengths[rows]).astype(np.float64)))
    if not parts:
        return None
    u, i, t, s = (np.concatenate(x) for x in zip(*parts))
    return u.astype(np.int64), i.astype(np.int64), np.full(len(u), split_index, np.int64), t, s


def _concat(entries):
    entries = [e for e in entries if e is not None and len(e[0])]
    if not entries:
        return tuple(np.zeros(0, dtype=d) for d in (np.int64, np.int64, np.int64, np.float64, np.float64))
    return tuple(np.concatenate(x) for x in zip(*entries))


def _targets(dataset, config):
    inter = dataset.inter_feat
    return _as_numpy(inter, config["USER_ID_FIELD"]), _as_numpy(inter, config["ITEM_ID_FIELD"])


class EvalPhase:
    """What the protocol knows about one evaluation split: earlier items per user, items seen in training.

    ``ptr`` / ``items``: a CSR over internal user ids of every earlier item, oldest first, each once.
    ``train_items``: bool tensor over internal item ids, True when the item occurs in training.
    """

    def __init__(self, name, ptr, items, train_items, n_items, list_field, length_field):
        self.name = name
        self.ptr = ptr
        self.items = items
        self.train_items = train_items
        self.n_items = n_items
        self.list_field = list_field
        self.length_field = length_field

    @classmethod
    def from_entries(cls, name, entries, n_users, n_items, train_items, config):
        users, items, split, time, sub = entries
        order = np.lexsort((sub, time, split, users))
        users, items = users[order], items[order]
        _, first = np.unique(users * np.int64(n_items) + items, return_index=True)
        keep = np.sort(first)  # first occurrence of each (user, item), in time order
        users, items = users[keep], items[keep]
        ptr = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=n_users))]).astype(np.int64)
        iid = config["ITEM_ID_FIELD"]
        return cls(
            name,
            torch.from_numpy(ptr),
            torch.from_numpy(items.astype(np.int64)),
            train_items,
            n_items,
            iid + config["LIST_SUFFIX"],
            config["ITEM_LIST_LENGTH_FIELD"],
        )

    def _segments(self, users):
        """For each earlier item of a batch: its row in the batch and its column in the padded history.

        numpy, not torch.repeat_interleave: on CPU torch takes milliseconds per call even for tiny inputs.
        """
        users = users.cpu().numpy()
        ptr = self.ptr.numpy()
        starts, counts = ptr[users], ptr[users + 1] - ptr[users]
        rows = np.repeat(np.arange(len(users)), counts)
        cols = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return rows, cols, starts[rows] + cols, counts

    def earlier_pairs(self, users):
        """(row, item) pairs of the earlier items of a batch of users (row = position in ``users``)."""
        rows, _, index, _ = self._segments(users)
        return torch.from_numpy(rows), self.items[torch.from_numpy(index)]

    def excluded_pairs(self, users, positive_u, positive_i):
        """Earlier-item pairs of the batch minus the rows' own targets (never masked)."""
        rows, items = self.earlier_pairs(users)
        if len(rows) and len(positive_u):
            code = rows * self.n_items + items
            pos = positive_u.cpu().long() * self.n_items + positive_i.cpu().long()
            keep = ~torch.isin(code, pos)
            rows, items = rows[keep], items[keep]
        return rows, items

    def history(self, users):
        """``{item_id_list, item_length}`` for a batch: every earlier item, oldest first, 0-padded."""
        rows, cols, index, counts = self._segments(users)
        width = max(int(counts.max()) if len(counts) else 0, 1)
        hist = torch.zeros(len(counts), width, dtype=torch.int64)
        hist[torch.from_numpy(rows), torch.from_numpy(cols)] = self.items[torch.from_numpy(index)]
        return {self.list_field: hist, self.length_field: torch.from_numpy(counts.astype(np.int64))}

    def coldstart_rows(self, n_rows, positive_u, positive_i):
        """True for rows none of whose targets occurs in training."""
        seen = self.train_items[positive_i.cpu().long()].long()
        warm = torch.zeros(n_rows, dtype=torch.long).index_add_(0, positive_u.cpu().long(), seen) > 0
        has_target = torch.bincount(positive_u.cpu().long(), minlength=n_rows) > 0
        return has_target & ~warm


def training_items(config, train_ds, valid_ds, test_ds, n_items):
    """Bool tensor over item ids: the item occurs in a training interaction.

    General files: the training targets. Sequential files: training targets, plus every history-list item
    that is not the same user's validation or test target (a user's first training item is only ever in
    a list; the validation item is in the test list).
    """
    entries = [_entries(train_ds, config, 0, True)]
    entries += [_entries(ds, config, k, False) for k, ds in ((1, valid_ds), (2, test_ds)) if ds is not None]
    users, items = _concat(entries)[:2]
    pairs = users * np.int64(n_items) + items
    held_out = [_targets(ds, config) for ds in (valid_ds, test_ds) if ds is not None]
    if held_out:
        held = np.concatenate([u * np.int64(n_items) + i for u, i in held_out])
        pairs = pairs[~np.isin(pairs, held)]
    seen = np.zeros(n_items, dtype=bool)
    seen[np.unique(pairs % n_items)] = True
    seen[0] = False
    return torch.from_numpy(seen)


def attach_protocol(config, train_data, valid_data, test_data):
    """Compute each evaluation split's :class:`EvalPhase` and attach it to its dataloader (``PHASE_ATTR``).

    Returns ``{"valid": EvalPhase | None, "test": EvalPhase | None}``.
    """
    train_ds = train_data._dataset
    valid_ds = valid_data._dataset if valid_data is not None else None
    test_ds = test_data._dataset if test_data is not None else None
    n_users, n_items = train_ds.user_num, train_ds.item_num
    seen = training_items(config, train_ds, valid_ds, test_ds, n_items)
    train_entries = _entries(train_ds, config, 0, True)
    phases = {"valid": None, "test": None}
    if valid_ds is not None:
        entries = _concat([train_entries, _entries(valid_ds, config, 1, False)])
        phases["valid"] = EvalPhase.from_entries("valid", entries, n_users, n_items, seen, config)
        setattr(valid_data, PHASE_ATTR, phases["valid"])
    if test_ds is not None:
        entries = [train_entries, _entries(test_ds, config, 2, False)]
        if valid_ds is not None:
            entries.append(_entries(valid_ds, config, 1, True))
        phases["test"] = EvalPhase.from_entries("test", _concat(entries), n_users, n_items, seen, config)
        setattr(test_data, PHASE_ATTR, phases["test"])
    return phases


def target_ranks(scores, positive_u, positive_i):
    """Ranks of every target among its row's candidates (candidates = scores above -inf), without a sort.

    Returns ``(pessimistic, average, n_candidates)``: the 0-based rank of each target when tied
    non-targets go first and tied targets follow item id order; its 1-based average rank over ties (what
    RecBole's ``rec.meanrank`` holds); the number of candidates of each row. A NaN score (a diverged
    model) counts as the lowest possible score of a candidate, never as a hit.
    """
    if scores.is_floating_point() and torch.isnan(scores).any():
        lowest = torch.finfo(scores.dtype).min
        scores = torch.nan_to_num(scores, nan=lowest, posinf=float("inf"), neginf=float("-inf"))
    n_rows, n_items = scores.shape
    device = scores.device
    positive_u, positive_i = positive_u.to(device).long(), positive_i.to(device).long()
    one_each = len(positive_u) == n_rows and bool((positive_u == torch.arange(n_rows, device=device)).all())
    rows = scores if one_each else scores[positive_u]
    target = scores[positive_u, positive_i][:, None]
    greater = (rows > target).sum(dim=1, dtype=torch.int32)
    tied = rows == target
    tied_all = tied.sum(dim=1, dtype=torch.int32)  # the target itself included
    average = greater.double() + (tied_all.double() + 1) / 2
    if one_each:
        pessimistic = greater + tied_all - 1
    else:
        is_pos = torch.zeros(n_rows, n_items, dtype=torch.bool, device=device)
        is_pos[positive_u, positive_i] = True
        tied_pos = tied & is_pos[positive_u]
        before = torch.arange(n_items, device=device)[None, :] < positive_i[:, None]
        tied_neg = tied_all - tied_pos.sum(dim=1, dtype=torch.int32)
        pessimistic = greater + tied_neg + (tied_pos & before).sum(dim=1, dtype=torch.int32)
    n_candidates = (scores > float("-inf")).sum(dim=1, dtype=torch.int32)
    return pessimistic, average, n_candidates


def pessimistic_topk(scores, positive_u, positive_i, k, ranks=None):
    """RecBole's ``rec.topk`` rows (hits at ranks 1..k, then the number of targets) from a ranking in which
    a target tied with non-target candidates ranks after them; targets tied together: lower item id first.
    """
    n_rows = scores.shape[0]
    positive_u = positive_u.to(scores.device).long()
    rank = (ranks or target_ranks(scores, positive_u, positive_i))[0].long()
    hits = torch.zeros(n_rows, k, dtype=torch.int, device=scores.device)
    inside = rank < k
    hits[positive_u[inside], rank[inside]] = 1
    pos_len = torch.bincount(positive_u, minlength=n_rows).to(torch.int)[:, None]
    return torch.cat((hits, pos_len), dim=1)


def mean_ranks(scores, positive_u, positive_i, ranks=None):
    """RecBole's ``rec.meanrank`` rows (sum of the targets' average ranks, candidates, targets) for GAUC,
    equal to RecBole's sort-based computation, with counting instead of a full sort."""
    n_rows = scores.shape[0]
    positive_u = positive_u.to(scores.device).long()
    _, average, n_candidates = ranks or target_ranks(scores, positive_u, positive_i)
    rank_sum = torch.zeros(n_rows, dtype=torch.float64, device=scores.device).index_add_(0, positive_u, average)
    pos_len = torch.bincount(positive_u, minlength=n_rows).double()
    return torch.stack((rank_sum, n_candidates.double(), pos_len), dim=1)


class ProtocolCollector(Collector):
    """RecBole's Collector with deterministic, pessimistic top-k ranks and sort-free mean ranks (same
    GAUC as RecBole's, average ranks over ties); keeps the last data struct for the cold-start views.

    With ``keep_ranks = True`` it also keeps, per target, the user, the item, the pessimistic 1-based rank,
    the average rank and the row's candidate count (on the CPU, in ``rank_batches``; see
    :mod:`recbole_blairclip.evaluation.ranks`)."""

    def __init__(self, config):
        super().__init__(config)
        self.last_struct = None
        self.keep_ranks = False
        self.rank_batches = []
        self._rows_seen = 0

    def reset_ranks(self):
        """Forget the kept ranks (called before each evaluation)."""
        self.rank_batches, self._rows_seen = [], 0

    def _keep_ranks(self, scores, interaction, positive_u, positive_i, ranks):
        pessimistic, average, n_candidates = ranks
        positive_u = positive_u.to(scores.device).long()
        users = interaction[self.config["USER_ID_FIELD"]].to(scores.device)[positive_u]
        self.rank_batches.append({
            "user": users.cpu().numpy(),
            "item": positive_i.cpu().numpy(),
            "row": (positive_u + self._rows_seen).cpu().numpy(),
            "rank": (pessimistic.long() + 1).cpu().numpy(),
            "rank_avg": average.cpu().numpy(),
            "n_candidates": n_candidates[positive_u].cpu().numpy(),
        })
        self._rows_seen += scores.shape[0]

    def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
        if self.register.need("rec.items"):
            _, topk_idx = torch.topk(scores_tensor, max(self.topk), dim=-1)
            self.data_struct.update_tensor("rec.items", topk_idx)
        ranks = None
        if self.register.need("rec.topk") or self.register.need("rec.meanrank") or self.keep_ranks:
            ranks = target_ranks(scores_tensor, positive_u, positive_i)
        if self.keep_ranks:
            self._keep_ranks(scores_tensor, interaction, positive_u, positive_i, ranks)
        if self.register.need("rec.topk"):
            result = pessimistic_topk(scores_tensor, positive_u, positive_i, max(self.topk), ranks)
            self.data_struct.update_tensor("rec.topk", result)
        if self.register.need("rec.meanrank"):
            self.data_struct.update_tensor("rec.meanrank", mean_ranks(scores_tensor, positive_u, positive_i, ranks))
        if self.register.need("rec.score"):
            self.data_struct.update_tensor("rec.score", scores_tensor)
        if self.register.need("data.label"):
            self.label_field = self.config["LABEL_FIELD"]
            self.data_struct.update_tensor("data.label", interaction[self.label_field].to(self.device))

    def get_data_struct(self):
        self.last_struct = super().get_data_struct()
        return self.last_struct


def report_names(result):
    """A RecBole result dict under the protocol's metric names (:func:`metric_name`), keeping the order."""
    if result is None:
        return None
    return OrderedDict((metric_name(key), value) for key, value in result.items())


__all__ = [
    "AUC_KEY",
    "PHASE_ATTR",
    "EvalPhase",
    "ProtocolCollector",
    "attach_protocol",
    "mean_ranks",
    "pessimistic_topk",
    "report_names",
    "target_ranks",
    "training_items",
]
