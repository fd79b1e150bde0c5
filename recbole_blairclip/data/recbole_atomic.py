"""A RecBole atomic dataset (``.inter`` [+ ``.item``]) -> the same leave-one-out dataset as the Amazon path.

Two input forms, told apart by the header of the interaction file(s):

* **interactions**: one row per (user, item[, rating][, time]) (RecBole's ``ml-1m.inter``, ``yelp.inter``,
  ``amazon-books.inter``, ...). Columns are found by RecBole's default field names ``user_id``,
  ``item_id``, ``rating``, ``timestamp`` or given by name. Without a time column the file order is the
  time (per user). ``min_rating`` keeps rows with ``rating >= min_rating`` (RecBole's leaderboard:
  ``val_interval: {rating: "[3,inf)"}``).
* **sequences**: rows ``user_id, item_id_list, item_id`` (a history and its next item, as UniSRec /
  LLMRank-style papers ship ``<name>.train/valid/test.inter``; give the files in time order). A user's
  sequence is rebuilt row by row: a row whose history ends the sequence so far adds its item; a row whose
  history ends with the whole sequence so far (an earlier row was truncated) replaces it by history + item;
  a row already contained in the sequence adds nothing; any other row is skipped and counted as
  ``inconsistent_sequence``. Histories truncated to the most recent items are fine. Positions are the
  time (``0, 1, 2, ...``): only the order matters.

Then the package's split (:func:`recbole_blairclip.data.split.split_interactions`: dedupe, user minimum
and item k-core iterated as RecBole's ``user_inter_num_interval`` / ``item_inter_num_interval`` do,
leave-one-out) and the atomic writer (:mod:`recbole_blairclip.data.atomic`: temporary folder renamed into
place, byte-identical reruns). ``item_text`` joins the chosen ``.item`` columns (default: every token /
token_seq column but the item id), ``title`` / ``categories`` / ``store`` are filled from columns of those
names when present (``genre`` / ``class`` / ``brand`` as fallbacks).

Bad rows are skipped and counted per reason, with their first line numbers, in ``<name>.stats.json``:
``non_utf8``, ``wrong_columns`` (fewer or more values than the header), ``bad_id`` (empty, or a
character RecBole cannot hold in a token), ``bad_value`` (a rating / time that is not a finite number),
``bad_list`` (a history with a bad token), ``inconsistent_sequence``. A header that lacks a needed
column stops at once with one line naming the file, the fields found and the flag to pass.
"""
import contextlib
import json
import os
import time

import numpy as np

from recbole_blairclip.data.atomic import prepare_output, staged_folder, write_parts
from recbole_blairclip.data.convert import FORMAT_VERSION, _float_str, _part_counts
from recbole_blairclip.data.line_rules import LineIssues, valid_id
from recbole_blairclip.data.meta import ItemMeta
from recbole_blairclip.data.reader import iter_lines
from recbole_blairclip.data.split import TEST, TRAIN, VALID, split_interactions
from recbole_blairclip.data.text import clean_text, to_category_tokens, to_token
from recbole_blairclip.errors import DatasetError
from recbole_blairclip.io import write_json

TYPES = ("token", "token_seq", "float", "float_seq")
DEFAULT_FIELDS = {"user": "user_id", "item": "item_id", "time": "timestamp", "rating": "rating"}
FALLBACKS = {"title": ("title", "movie_title", "name"), "categories": ("categories", "genre", "class"),
             "store": ("store", "brand")}


def read_header(path, line):
    """``[(name, type)]`` of a RecBole header line; DatasetError naming the file when it is not one."""
    try:
        text = line.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        raise DatasetError(f"{path} line 1: the header is not UTF-8; a RecBole atomic file starts with "
                           "tab-separated `name:type` fields") from None
    fields = []
    for k, cell in enumerate(text.split("\t"), 1):
        name, sep, kind = cell.partition(":")
        if not sep or not name or kind not in TYPES:
            raise DatasetError(f"{path} line 1: header field {k} is {cell[:60]!r}, not `name:type` with a type "
                               f"in {', '.join(TYPES)} (is this a RecBole atomic file, tab-separated?)")
        fields.append((name, kind))
    names = [n for n, _ in fields]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{path} line 1: field(s) {dup} appear twice in the header")
    return fields


def _data_rows(f, width, issues, seen):
    """``(line number, values)`` of the data lines of an open atomic file (after its header): undecodable
    lines and lines of another width are counted in ``issues`` and skipped, blank lines skipped;
    ``seen[0]`` counts every line read."""
    for lineno, raw in enumerate(f, 2):
        seen[0] += 1
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            issues.add("non_utf8", lineno)
            continue
        if not line.strip():
            continue
        values = line.split("\t")
        if len(values) != width:
            issues.add("wrong_columns", lineno)
            continue
        yield lineno, values


def _find(fields, wanted, role, flag, path, required=True):
    names = [n for n, _ in fields]
    if wanted in names:
        return names.index(wanted)
    if required:
        raise DatasetError(f"{path} line 1: no {role} field {wanted!r} (fields: {', '.join(names)}); "
                           f"pass {flag} NAME")
    return None


class _Vocab:
    def __init__(self):
        self.index, self.names = {}, []

    def code(self, name):
        c = self.index.get(name)
        if c is None:
            c = self.index[name] = len(self.names)
            self.names.append(name)
        return c


def _number(text):
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def read_interactions(paths, user_field=None, item_field=None, time_field=None, rating_field=None,
                      min_rating=None):
    """Read one or more RecBole interaction files (both forms, see the module doc).

    Returns a dict: ``user``, ``item`` (int codes), ``rating``, ``timestamp`` (float arrays, row order = file
    order), ``user_names``, ``item_names``, ``item_index``, ``files`` (per file: form, lines, read, bad lines)
    and ``dropped`` counts (``rating_below_min``, ``inconsistent_sequence``).
    """
    fields_wanted = {"user": user_field or DEFAULT_FIELDS["user"], "item": item_field or DEFAULT_FIELDS["item"],
                     "time": time_field or DEFAULT_FIELDS["time"], "rating": rating_field or DEFAULT_FIELDS["rating"]}
    users, items = _Vocab(), _Vocab()
    u_col, i_col, r_col, t_col = [], [], [], []
    windows = {}  # sequence form: user code -> the user's sequence so far (item codes)
    sequence_issues = LineIssues()  # inconsistent sequence rows; the "reason" is the file's name
    files, dropped = [], {"rating_below_min": 0, "inconsistent_sequence": 0}
    forms = set()
    for f_index, path in enumerate(paths):
        path = os.fspath(path)
        issues = LineIssues()
        with contextlib.closing(iter_lines(path)) as f:  # plain or gzip
            header_line = next(f, b"")
            if not header_line.strip():
                raise DatasetError(f"{path}: empty file (no header line); expected RecBole's "
                                   "`user_id:token<TAB>item_id:token...` header")
            fields = read_header(path, header_line)
            width = len(fields)
            ui = _find(fields, fields_wanted["user"], "user", "--user-field", path)
            ii = _find(fields, fields_wanted["item"], "item", "--item-field", path)
            li = _find(fields, fields_wanted["item"] + "_list", "history", "", path, required=False)
            ti = _find(fields, fields_wanted["time"], "time", "--time-field", path,
                       required=time_field is not None)
            ri = _find(fields, fields_wanted["rating"], "rating", "--rating-field", path,
                       required=rating_field is not None or min_rating is not None)
            form = "sequences" if li is not None else "interactions"
            forms.add(form)
            if len(forms) > 1:
                raise DatasetError(f"{path}: mixes interaction files and sequence files (item_id_list); "
                                   "give files of one form")
            read, seen = 0, [0]
            for lineno, values in _data_rows(f, width, issues, seen):
                u, it = values[ui].strip(), values[ii].strip()
                if not valid_id(u) or not valid_id(it):
                    issues.add("bad_id", lineno)
                    continue
                rating = 1.0
                if ri is not None:
                    rating = _number(values[ri])
                    if rating is None:
                        issues.add("bad_value", lineno)
                        continue
                ts = None
                if ti is not None and form == "interactions":
                    ts = _number(values[ti])
                    if ts is None:
                        issues.add("bad_value", lineno)
                        continue
                if form == "sequences":
                    hist = values[li].split()
                    if not all(valid_id(h) for h in hist):
                        issues.add("bad_list", lineno)
                        continue
                read += 1
                if min_rating is not None and rating < min_rating:
                    dropped["rating_below_min"] += 1
                    continue
                uc = users.code(u)
                if form == "interactions":
                    u_col.append(uc)
                    i_col.append(items.code(it))
                    r_col.append(rating)
                    t_col.append(ts if ts is not None else float(len(t_col)))
                else:
                    window = [items.code(x) for x in hist] + [items.code(it)]
                    merged = _merge(windows.get(uc, []), window)
                    if merged is None:
                        dropped["inconsistent_sequence"] += 1
                        sequence_issues.add(os.path.basename(path), lineno)
                    else:
                        windows[uc] = merged
        files.append({"file": os.path.basename(path), "form": form, "lines": seen[0], "read": read,
                      "bad_lines": issues.as_dict(), "bad_lines_total": issues.total()})
    form = forms.pop() if forms else "interactions"
    if form == "sequences":
        for uc in sorted(windows, key=lambda c: users.names[c]):
            for pos, ic in enumerate(windows[uc]):
                u_col.append(uc)
                i_col.append(ic)
                r_col.append(1.0)
                t_col.append(float(pos))
    return {
        "form": form,
        "user": np.asarray(u_col, dtype=np.int64), "item": np.asarray(i_col, dtype=np.int64),
        "rating": np.asarray(r_col, dtype=np.float64), "timestamp": np.asarray(t_col, dtype=np.float64),
        "user_names": users.names, "item_names": items.names, "item_index": items.index,
        "files": files, "dropped": dropped,
        "inconsistent_sequence_first_lines": dict(sequence_issues.first),
    }


def _merge(sequence, window):
    """``sequence`` extended by one row's ``window`` (history + item), or None when they disagree."""
    if _contiguous(window, sequence):
        return sequence
    hist = window[:-1]
    if len(hist) <= len(sequence) and sequence[len(sequence) - len(hist):] == hist:
        return sequence + window[-1:]
    if len(hist) > len(sequence) and hist[len(hist) - len(sequence):] == sequence:
        return window
    return None


def _contiguous(window, full):
    """True when ``window`` occurs as a contiguous run inside ``full``."""
    n = len(window)
    if n > len(full):
        return False
    first = window[0]
    for start in range(len(full) - n + 1):
        if full[start] == first and full[start:start + n] == window:
            return True
    return False


def read_items(path, wanted, text_fields=None, item_field=None):
    """Read a RecBole ``.item`` file: ``(ItemMeta per wanted item, stats)``; ``text_fields`` default to
    every token / token_seq column but the item id, in file order."""
    item_field = item_field or DEFAULT_FIELDS["item"]
    issues, metas, duplicates = LineIssues(), {}, 0
    with contextlib.closing(iter_lines(path)) as f:  # plain or gzip
        fields = read_header(path, next(f, b""))
        names = [n for n, _ in fields]
        ii = _find(fields, item_field, "item", "--item-field", path)
        text_cols = [n for n, k in fields if n != item_field and k in ("token", "token_seq")]
        chosen = list(text_fields) if text_fields else text_cols
        missing = [c for c in chosen if c not in names]
        if missing:
            raise DatasetError(f"{path} line 1: text field(s) {missing} not in the header (fields: "
                               f"{', '.join(names)}); fix --text-fields")
        idx = [names.index(c) for c in chosen]
        extra = {key: next((names.index(c) for c in cands if c in names), None) for key, cands in FALLBACKS.items()}
        width, seen = len(fields), [0]
        for lineno, values in _data_rows(f, width, issues, seen):
            it = values[ii].strip()
            if not valid_id(it):
                issues.add("bad_id", lineno)
                continue
            if it not in wanted:
                continue
            if it in metas:
                duplicates += 1
                continue
            text = " ".join(t for t in (clean_text(values[k]) for k in idx) if t)
            get = lambda key: values[extra[key]] if extra[key] is not None else ""  # noqa: E731
            metas[it] = ItemMeta(item_text=text, title=clean_text(get("title")),
                                 categories=to_category_tokens(get("categories").split()),
                                 store=to_token(get("store")), image_url="")
    stats = {"file": os.path.basename(os.fspath(path)), "lines": seen[0], "records": len(metas),
             "text_fields": chosen, "bad_lines": issues.as_dict(), "duplicate_items": duplicates}
    return metas, stats


def convert_recbole(inter, item=None, name="dataset", out="dataset_atomic", *, user_field=None, item_field=None,
                    time_field=None, rating_field=None, min_rating=None, min_user_inter=2, item_core=0,
                    two_way=False, max_item_list_length=50, text_fields=None, force=False):
    """Convert RecBole atomic file(s) into ``<out>/<name>/`` (the Amazon path's files) and return the stats.

    Args:
        inter: one path or a list of paths (e.g. ``ds.train.inter ds.valid.inter ds.test.inter``).
        item: optional ``.item`` file; items without a row get empty text.
        min_rating: keep interactions with ``rating >= min_rating``.
        min_user_inter / item_core: user minimum and item k-core (iterated, after dedupe): RecBole's
            ``user_inter_num_interval: "[K,inf)"`` / ``item_inter_num_interval: "[K,inf)"``.
        text_fields: ``.item`` columns joined into ``item_text`` (default: every token / token_seq column).
        Others as :func:`recbole_blairclip.data.convert.convert`.
    """
    t0 = time.perf_counter()
    dest = prepare_output(out, name, force, max_item_list_length, min_user_inter)
    paths = [inter] if isinstance(inter, (str, os.PathLike)) else list(inter)
    if item is not None and not os.path.isfile(item):
        raise DatasetError(f"{item}: item file not found")
    rv = read_interactions(paths, user_field, item_field, time_field, rating_field, min_rating)
    if len(rv["user"]) == 0:
        raise DatasetError(f"{', '.join(map(str, paths))}: no valid interaction row "
                           f"({json.dumps(rv['files'])}); nothing to convert")
    res = split_interactions(rv["user"], rv["item"], rv["rating"], rv["timestamp"], rv["user_names"],
                             rv["item_names"], min_user_inter=min_user_inter, item_core=item_core,
                             three_way=not two_way)
    if len(res.user) == 0:
        raise DatasetError(f"{paths[0]}: no user has {min_user_inter} or more distinct items after dedupe and "
                           "filtering; nothing to split (lower --min-user-inter or --item-core?)")
    un, inm = rv["user_names"], rv["item_names"]
    kept_items = sorted({inm[i] for i in np.unique(res.item).tolist()})
    metas, item_stats = ({}, None) if item is None else read_items(item, set(kept_items), text_fields, item_field)

    users_col = [un[u] for u in res.user.tolist()]
    items_col = [inm[i] for i in res.item.tolist()]
    base = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in
            zip(users_col, items_col, _float_str(res.rating), _float_str(res.timestamp))]
    part, start, L = res.part, res.start.tolist(), max_item_list_length

    def seq_lines(indices):
        return [f"{base[j]}\t{' '.join(items_col[max(start[j], j - L):j])}\n" for j in indices]

    train_idx = np.flatnonzero(part == TRAIN)
    train_seq_idx = train_idx[res.start[train_idx] < train_idx]
    valid_idx, test_idx = np.flatnonzero(part == VALID), np.flatnonzero(part == TEST)
    empty = ItemMeta("", "", "", "", "")
    item_lines, n_no_meta, n_no_text = [], 0, 0
    for it in kept_items:
        mi = metas.get(it)
        if mi is None:
            mi, n_no_meta = empty, n_no_meta + 1
        n_no_text += not mi.item_text
        item_lines.append(f"{it}\t{mi.item_text}\t{mi.title}\t{mi.categories}\t{mi.store}\t{mi.image_url}\n")
    train_mask = part == TRAIN
    train_items = set(res.item[train_mask].tolist())
    stats = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "params": {"source": "recbole_atomic", "form": rv["form"], "min_rating": min_rating,
                   "min_user_inter": min_user_inter, "item_core": item_core,
                   "split": "two_way" if two_way else "three_way", "max_item_list_length": max_item_list_length,
                   "text_fields": item_stats["text_fields"] if item_stats else [],
                   "fields": {"user": user_field or DEFAULT_FIELDS["user"], "item": item_field or DEFAULT_FIELDS["item"],
                              "time": time_field or DEFAULT_FIELDS["time"],
                              "rating": rating_field or DEFAULT_FIELDS["rating"]},
                   "order": ("user id, then position in the sequence" if rv["form"] == "sequences" else
                             "user id, then timestamp (file order without one), then item id, then file line")},
        "inter_files": rv["files"],
        "bad_lines_total": sum(f["bad_lines_total"] for f in rv["files"]),
        "item_file": item_stats,
        "dropped": dict(rv["dropped"], **{k: res.stats[k] for k in ("duplicate_pairs", "user_below_min_inter",
                                                                     "item_below_core")}),
        "inconsistent_sequence_first_lines": rv["inconsistent_sequence_first_lines"],
        "kept": _part_counts(res, np.ones(len(part), dtype=bool), un, inm),
        "parts": {"train": _part_counts(res, train_mask, un, inm), "train_seq": {"rows": int(len(train_seq_idx))},
                  "valid": _part_counts(res, part == VALID, un, inm), "test": _part_counts(res, part == TEST, un, inm)},
        "cold_start": {"test_targets": int(sum(i not in train_items for i in res.item[test_idx].tolist())),
                       "valid_targets": int(sum(i not in train_items for i in res.item[valid_idx].tolist()))},
        "items": {"rows": len(kept_items), "without_meta": n_no_meta, "without_text": n_no_text,
                  "without_image_url": len(kept_items)},
        "timestamp_ties": res.stats["timestamp_ties"],
    }
    with staged_folder(out, name, force=force) as tmp:
        write_parts(tmp, name, base, seq_lines, item_lines, train_idx, train_seq_idx, valid_idx, test_idx)
        write_json(os.path.join(tmp, f"{name}.stats.json"), stats)
    return dict(stats, path=dest, seconds=round(time.perf_counter() - t0, 3))
