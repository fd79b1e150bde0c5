"""Leave-one-out temporal split (DESIGN.md, "The split"), vectorised with numpy.

Rules, in order:

1. Order: within a user, interactions are ordered by timestamp, ties by item id (string order), then by
   line order in the file. Users are ordered by user id (string order).
2. Dedupe: a repeated (user, item) pair keeps its earliest interaction (ties: the first in the file);
   the later ones are dropped (``duplicate_pairs``).
3. Filter: optionally drop the interactions of items in ``drop_items`` (``items_without_meta``); then
   repeatedly drop users with fewer than ``min_user_inter`` interactions and, when ``item_core`` > 0,
   items with fewer than ``item_core`` interactions, until both hold (a k-core on items).
4. Split: the last interaction of a user is ``test``; with ``three_way`` the second-to-last is
   ``valid`` when the user has at least 3; the rest is ``train``. With ``three_way=False`` (the
   two-way variant of the original protocol) there is no valid part.
5. Histories: the history of a row is every earlier interaction of its user (train, then valid), the
   most recent ``max_item_list_length`` of them, oldest first (see :func:`history`).
"""
from dataclasses import dataclass

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2


@dataclass
class SplitResult:
    """Kept interactions in final order (user, time, item, line) with their part and user start."""

    user: np.ndarray  # int codes into user_names
    item: np.ndarray  # int codes into item_names
    rating: np.ndarray
    timestamp: np.ndarray
    part: np.ndarray  # int8: TRAIN / VALID / TEST
    start: np.ndarray  # index of the first row of the row's user
    stats: dict


def _rank(names, codes):
    """Rank (string order) of each name in ``codes`` (unique int codes); returns a dense array over
    all codes where only ``codes`` entries are meaningful. ``names``: a list or a pyarrow StringArray."""
    rank = np.zeros(len(names), dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    if isinstance(names, list):
        strings = [names[c] for c in codes.tolist()]
        order = np.asarray(sorted(range(len(strings)), key=strings.__getitem__), dtype=np.int64)
    else:  # Arrow sorts UTF-8 bytewise, which is code point order: Python's string order
        import pyarrow.compute as pc

        from recbole_blairclip.data.arrays import int64_array, to_numpy

        order = to_numpy(pc.array_sort_indices(names.take(int64_array(codes)))).astype(np.int64)
    rank[codes[order]] = np.arange(len(order), dtype=np.int64)
    return rank


def split_interactions(user, item, rating, timestamp, user_names, item_names, *, min_user_inter=2,
                       item_core=0, three_way=True, drop_items=None):
    """Apply rules 1-4 to parallel arrays (row order = file order) and return a :class:`SplitResult`.

    ``drop_items`` is an optional boolean array over item codes: True drops that item's interactions.
    """
    if min_user_inter < 2:
        raise ValueError("min_user_inter must be >= 2 (a user needs a training item and a test item)")
    n_read = len(user)
    row = np.arange(n_read, dtype=np.int64)
    user = np.asarray(user, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    stats = {"duplicate_pairs": 0, "items_without_meta": 0, "user_below_min_inter": 0,
             "item_below_core": 0}

    if drop_items is not None and len(item):
        keep = ~np.asarray(drop_items, dtype=bool)[item]
        stats["items_without_meta"] = int((~keep).sum())
        row, user, item = row[keep], user[keep], item[keep]

    # users that cannot reach min_user_inter even before dedupe: drop early (most Amazon users)
    counts = np.bincount(user, minlength=len(user_names))
    keep = counts[user] >= min_user_inter
    early_drop = int((~keep).sum())
    row, user, item = row[keep], user[keep], item[keep]
    ts = timestamp[row]

    # dedupe: earliest per (user, item), ties by line order
    if len(row):
        if len(user_names) * max(len(item_names), 1) < 2 ** 62:  # (user, item) as one key: one sort pass less
            order = np.lexsort((row, ts, user * len(item_names) + item))
        else:
            order = np.lexsort((row, ts, item, user))
        u_s, i_s = user[order], item[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = (u_s[1:] != u_s[:-1]) | (i_s[1:] != i_s[:-1])
        stats["duplicate_pairs"] = int((~first).sum())
        sel = np.sort(order[first])
        row, user, item, ts = row[sel], user[sel], item[sel], ts[sel]

    # filter users (and items for a k-core) until stable
    dropped_users = early_drop
    while True:
        changed = False
        if item_core > 0 and len(item):
            ic = np.bincount(item, minlength=len(item_names))
            keep = ic[item] >= item_core
            if not keep.all():
                stats["item_below_core"] += int((~keep).sum())
                row, user, item, ts = row[keep], user[keep], item[keep], ts[keep]
                changed = True
        uc = np.bincount(user, minlength=len(user_names))
        keep = uc[user] >= min_user_inter
        if not keep.all():
            dropped_users += int((~keep).sum())
            row, user, item, ts = row[keep], user[keep], item[keep], ts[keep]
            changed = changed or item_core > 0
        if not changed:
            break
    stats["user_below_min_inter"] = dropped_users

    # final order: user (string), time, item (string), line
    user_rank = _rank(user_names, np.flatnonzero(np.bincount(user, minlength=len(user_names))))  # codes in use
    item_rank = _rank(item_names, np.flatnonzero(np.bincount(item, minlength=len(item_names))))
    order = np.lexsort((row, item_rank[item], ts, user_rank[user]))
    row, user, item, ts = row[order], user[order], item[order], ts[order]

    n = len(row)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = user[1:] != user[:-1]
    starts = np.flatnonzero(new_user)
    sizes = np.diff(np.append(starts, n))
    start = np.repeat(starts, sizes)
    end = np.repeat(starts + sizes, sizes)
    pos_from_end = end - np.arange(n) - 1
    part = np.full(n, TRAIN, dtype=np.int8)
    part[pos_from_end == 0] = TEST
    if three_way:
        part[(pos_from_end == 1) & (np.repeat(sizes, sizes) >= 3)] = VALID
    stats["timestamp_ties"] = int(((~new_user[1:]) & (ts[1:] == ts[:-1])).sum()) if n else 0
    return SplitResult(user=user, item=item, rating=np.asarray(rating)[row], timestamp=ts, part=part,
                       start=start, stats=stats)


def history(result, j, max_item_list_length):
    """Item codes of row ``j``'s history: its user's earlier rows, the most recent
    ``max_item_list_length``, oldest first."""
    lo = max(int(result.start[j]), j - max_item_list_length)
    return result.item[lo:j]
