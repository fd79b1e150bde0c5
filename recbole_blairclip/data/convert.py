"""Amazon Reviews raw files -> RecBole atomic dataset with a leave-one-out temporal split.

``convert(reviews, meta, name, out)`` reads the reviews (and optionally meta) file with
:mod:`recbole_blairclip.data.reviews` and :mod:`recbole_blairclip.data.meta`, splits with :mod:`recbole_blairclip.data.split` and writes
``<out>/<name>/<name>.{inter,train.inter,train_seq.inter,valid.inter,test.inter,item,stats.json}`` as
FORMAT.md specifies, through a temporary folder renamed into place when complete. The same inputs and
arguments give byte-identical files (the stats name the input files by base name only and hold no
timings).

Item rules: the ``.item`` file lists every item of the kept interactions (string order), plus every
meta item with ``include_meta_items=True``. Items without a meta record stay with empty text (counted
as ``items_without_meta``) unless ``keep_items_without_meta=False``, which drops their interactions
before the user filter. Meta records of items that never occur in the reviews are skipped (counted as
``unknown_items``), as are those of reviewed items the filters dropped (``not_kept_items``). The meta file
is scanned in a worker thread while the review ids are encoded (Arrow, without the GIL); only the kept
items' records are cleaned, after the split, while the interaction files are written.
"""
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from recbole_blairclip.data import atomic, meta as meta_file, reviews as review_file
from recbole_blairclip.data.atomic import PARTS, atomic_path, prepare_output, staged_folder
from recbole_blairclip.data.line_rules import LineIssues
from recbole_blairclip.data.rows import write_interactions
from recbole_blairclip.data.split import TEST, TRAIN, VALID, split_interactions
from recbole_blairclip.errors import DatasetError
from recbole_blairclip.io import write_json

FORMAT_VERSION = 1
DEFAULT_TEXT_FIELDS = ("title", "description", "features")
DEFAULT_MAX_TEXT_CHARS = 20000  # RecBole's reader (python csv) refuses fields over 131072 characters
_RECBOLE_FIELD_LIMIT = 131072


def _cap(text, limit):
    """``text`` cut to at most ``limit`` characters at a space when there is one; (text, was_cut)."""
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(), True


def _float_str(values):
    """Shortest round-trip decimal strings (``repr``) of a float array, cached per distinct value."""
    cache = {}
    out = []
    append = out.append
    for v in values.tolist():
        s = cache.get(v)
        if s is None:
            s = cache[v] = repr(v)
        append(s)
    return out


def _part_counts(res, mask, user_names, item_names):
    user = res.user[mask]  # the rows are in user order: a user's rows are contiguous
    users = len(user) and 1 + np.count_nonzero(user[1:] != user[:-1])
    items = np.count_nonzero(np.bincount(res.item[mask], minlength=len(item_names)))
    return {"interactions": int(mask.sum()), "users": int(users), "items": int(items)}


def _copy_images(src, dst, item_ids):
    """Copy ``<item_id>.<ext>`` files of ``item_ids`` from ``src`` to ``dst``; return how many (files that
    resolve outside ``src``, through a symlink, are skipped)."""
    by_item = {}
    root = os.path.realpath(src)
    for fname in sorted(os.listdir(src)):
        stem, ext = os.path.splitext(fname)
        real = os.path.realpath(os.path.join(src, fname))
        if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
            continue  # a symlink leading outside the images folder is not followed
        if ext.lower() in (".png", ".jpg", ".jpeg", ".webp") and stem not in by_item:
            by_item[stem] = fname
    os.makedirs(dst)
    n = 0
    for it in item_ids:
        fname = by_item.get(it)
        if fname is not None:
            shutil.copyfile(os.path.join(src, fname), os.path.join(dst, fname))
            n += 1
    return n


def convert(reviews, meta=None, name="Appliances", out="dataset_atomic", *, min_user_inter=2,
            item_core=0, two_way=False, max_item_list_length=50, text_fields=DEFAULT_TEXT_FIELDS,
            keep_items_without_meta=True, include_meta_items=False, images_dir=None, force=False,
            progress=False, max_text_chars=DEFAULT_MAX_TEXT_CHARS):
    """Convert one reviews file (+ optional meta file) into ``<out>/<name>/`` and return the stats dict
    (the content of ``<name>.stats.json`` plus ``seconds`` and ``path``).

    Args:
        reviews: Amazon reviews ``.jsonl``/``.jsonl.gz`` (2023 or 2018 schema, detected).
        meta: matching meta file or ``None`` (then every item has empty text).
        name: dataset name (folder and file prefix).
        out: parent folder (RecBole's ``data_path``).
        min_user_inter: users with fewer interactions (after dedupe) are dropped (>= 2).
        item_core: when > 0, also drop items with fewer interactions, iterated with the user filter.
        two_way: no validation part (last -> test, rest -> train); ``<name>.valid.inter`` is header-only.
        max_item_list_length: history length kept in ``item_id_list`` (RecBole's MAX_ITEM_LIST_LENGTH).
        text_fields: meta fields joined (in order) into ``item_text`` (2023 names; 2018 aliases applied).
        keep_items_without_meta: False drops interactions with items that have no meta record.
        include_meta_items: True also lists meta items without kept interactions in ``<name>.item``.
        images_dir: optional folder of ``<item_id>.<ext>`` pictures (e.g. from ``synth``); the pictures
            of the listed items are copied into ``<out>/<name>/images/`` (counted in the stats).
        force: replace an existing ``<out>/<name>``.
        progress: show tqdm progress bars while reading.
        max_text_chars: item text, title and categories longer than this are cut (counted as
            ``items.text_truncated``); a store or image url longer than this is left empty.
    """
    t0 = time.perf_counter()
    if not 1 <= max_text_chars <= _RECBOLE_FIELD_LIMIT:
        raise DatasetError(f"max_text_chars must be in [1, {_RECBOLE_FIELD_LIMIT}] (RecBole's field limit), "
                           f"got {max_text_chars}")
    dest = prepare_output(out, name, force, max_item_list_length, min_user_inter)  # before reading the input
    text_fields = list(text_fields)
    if images_dir is not None and not os.path.isdir(images_dir):
        raise DatasetError(f"{images_dir}: images folder not found")
    if meta is not None and not os.path.isfile(meta):
        raise DatasetError(f"{meta}: meta file not found")

    with ThreadPoolExecutor(max_workers=1) as pool:  # the meta file is read beside the reviews' last steps
        scan = []
        rv = review_file.read_reviews(reviews, progress=progress, after_pass=None if meta is None else (
            lambda: scan.append(pool.submit(meta_file.scan_meta, meta, progress))))
        if len(rv.user) == 0:
            raise DatasetError(f"{reviews}: no valid review line ({rv.lines} lines; bad lines: "
                               f"{rv.issues.as_dict()}); nothing to convert")

        drop = None
        if meta is not None and not keep_items_without_meta:  # which items have meta
            present = meta_file.select_meta(scan[0].result(), wanted=rv.item_index).items
            drop = np.array([it not in present for it in rv.item_names], dtype=bool)
        elif meta is None and not keep_items_without_meta:
            raise DatasetError("keep_items_without_meta=False (--drop-items-without-meta) needs a meta file")
        res = split_interactions(rv.user, rv.item, rv.rating, rv.timestamp, rv.user_names, rv.item_names,
                                 min_user_inter=min_user_inter, item_core=item_core, three_way=not two_way,
                                 drop_items=drop)
        if len(res.user) == 0:
            raise DatasetError(f"{reviews}: no user has {min_user_inter} or more distinct items after "
                               "dedupe and filtering; nothing to split (lower min_user_inter or item_core?)")
        kept_codes = np.flatnonzero(np.bincount(res.item, minlength=len(rv.item_names)))
        kept_set = {rv.item_names[i] for i in kept_codes.tolist()}
        stats, inter_rows = _interaction_stats(res, rv, name, reviews, two_way, min_user_inter, item_core,
                                               max_item_list_length, text_fields, keep_items_without_meta,
                                               include_meta_items, max_text_chars)
        # the meta of the kept items is cleaned (the slow part) in the thread while the interactions are written
        items_job = pool.submit(_item_part, meta, scan[0] if scan else None, kept_set, rv.item_index,
                                include_meta_items, text_fields, max_text_chars)
        with staged_folder(out, name, force=force) as tmp:
            write_interactions(tmp, name, res, rv.user_names, rv.item_vocab, max_item_list_length, *inter_rows)
            meta_stats, kept_items, item_lines, item_counts = items_job.result()
            stats["meta"] = meta_stats
            stats["items"] = item_counts
            atomic.write_atomic(atomic_path(tmp, name, "item"), PARTS["item"][1], item_lines)
            if images_dir is not None:
                stats["items"]["images_copied"] = _copy_images(images_dir, os.path.join(tmp, "images"), kept_items)
            write_json(os.path.join(tmp, f"{name}.stats.json"), stats)
    result = dict(stats)
    result["path"] = dest
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def _item_part(meta, scan_job, kept_set, item_index, include_meta_items, text_fields, max_text_chars):
    """The ``meta`` stats, the listed items and the lines of ``<name>.item`` (and their counts): the first
    meta record of each listed item cleaned (the items of the kept interactions, plus every meta item
    with ``include_meta_items``)."""
    metas = {}
    meta_stats = None
    if meta is not None:
        wanted = None if include_meta_items else kept_set
        scan = meta_file.build_meta(scan_job.result(), wanted, text_fields)
        m = meta_file.select_meta(scan, wanted, known=item_index)
        metas = m.items
        unknown = m.unknown_items
        if include_meta_items:  # "unknown" = meta items never reviewed; they are kept in .item
            unknown = LineIssues()
            for it in metas:
                if it not in item_index:
                    unknown.counts["unknown_item"] = unknown.counts.get("unknown_item", 0) + 1
                elif it not in kept_set:
                    unknown.counts["not_kept_item"] = unknown.counts.get("not_kept_item", 0) + 1
        meta_stats = {"file": os.path.basename(os.fspath(meta)), "schema": m.schema, "lines": m.lines,
                      "blank_lines": m.blank_lines, "records": len(metas),
                      "bad_lines": m.issues.as_dict(),
                      "unknown_items": unknown.counts.get("unknown_item", 0),
                      "unknown_items_first_lines": unknown.first.get("unknown_item", []),
                      "not_kept_items": unknown.counts.get("not_kept_item", 0),
                      "duplicate_items": m.duplicates.counts.get("duplicate_item", 0),
                      "duplicate_items_first_lines": m.duplicates.first.get("duplicate_item", [])}

    kept_items = sorted(kept_set)
    if include_meta_items:
        kept_items = sorted(set(kept_items).union(metas))
    empty = meta_file.ItemMeta("", "", "", "", "")
    item_lines = []
    n_no_meta = n_no_text = n_no_image = n_cut = 0
    for it in kept_items:
        mi = metas.get(it)
        if mi is None:
            mi = empty
            n_no_meta += 1
        text, cut1 = _cap(mi.item_text, max_text_chars)
        title, cut2 = _cap(mi.title, max_text_chars)
        categories, cut3 = _cap(mi.categories, max_text_chars)
        store = mi.store if len(mi.store) <= max_text_chars else ""
        url = mi.image_url if len(mi.image_url) <= max_text_chars else ""
        n_cut += cut1 or cut2 or cut3 or store != mi.store or url != mi.image_url
        n_no_text += not text
        n_no_image += not url
        item_lines.append(f"{it}\t{text}\t{title}\t{categories}\t{store}\t{url}\n")
    counts = {"rows": len(kept_items), "without_meta": n_no_meta, "without_text": n_no_text,
              "without_image_url": n_no_image, "text_truncated": n_cut}
    return meta_stats, kept_items, item_lines, counts


def _interaction_stats(res, rv, name, reviews, two_way, min_user_inter, item_core, max_item_list_length,
                       text_fields, keep_items_without_meta, include_meta_items, max_text_chars):
    """The stats of the split (``meta`` and ``items`` left empty) and the rows of its four parts."""
    un, inm = rv.user_names, rv.item_names
    part = res.part
    train_idx = np.flatnonzero(part == TRAIN)
    train_seq_idx = train_idx[res.start[train_idx] < train_idx]
    valid_idx = np.flatnonzero(part == VALID)
    test_idx = np.flatnonzero(part == TEST)
    train_mask = part == TRAIN
    in_train = np.bincount(res.item[train_mask], minlength=len(inm)) > 0
    cold_test = int(np.count_nonzero(~in_train[res.item[test_idx]]))
    cold_valid = int(np.count_nonzero(~in_train[res.item[valid_idx]]))
    all_mask = np.ones(len(part), dtype=bool)
    stats = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "params": {"min_user_inter": min_user_inter, "item_core": item_core,
                   "split": "two_way" if two_way else "three_way",
                   "max_item_list_length": max_item_list_length, "text_fields": text_fields,
                   "keep_items_without_meta": keep_items_without_meta,
                   "include_meta_items": include_meta_items, "max_text_chars": max_text_chars,
                   "order": "user id, then timestamp, then item id, then file line"},
        "reviews": {"file": os.path.basename(os.fspath(reviews)), "schema": rv.schema, "lines": rv.lines,
                    "blank_lines": rv.blank_lines, "read": int(len(rv.user)),
                    "bad_lines": rv.issues.as_dict(), "bad_lines_total": rv.issues.total()},
        "meta": None,
        "dropped": {k: res.stats[k] for k in ("duplicate_pairs", "items_without_meta",
                                              "user_below_min_inter", "item_below_core")},
        "kept": _part_counts(res, all_mask, un, inm),
        "parts": {
            "train": _part_counts(res, train_mask, un, inm),
            "train_seq": {"rows": int(len(train_seq_idx))},
            "valid": _part_counts(res, part == VALID, un, inm),
            "test": _part_counts(res, part == TEST, un, inm),
        },
        "cold_start": {"test_targets": cold_test, "valid_targets": cold_valid},
        "items": None,
        "timestamp_ties": res.stats["timestamp_ties"],
    }
    return stats, (train_idx, train_seq_idx, valid_idx, test_idx)
