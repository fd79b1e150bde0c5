"""Schemas of the Amazon Reviews raw files (2023 and 2018 releases) and their automatic detection.

Both ``.jsonl`` and ``.jsonl.gz`` are read (gzip is recognised by its magic bytes, not the suffix).

Review schemas (item id = ``parent_asin`` in 2023, ``asin`` in 2018):

=============  ===========  ==============  ==========  ======================================
schema         user         item            rating      time
=============  ===========  ==============  ==========  ======================================
amazon2023     user_id      parent_asin     rating      timestamp (milliseconds)
amazon2018     reviewerID   asin            overall     unixReviewTime (seconds)
=============  ===========  ==============  ==========  ======================================

Meta schemas: 2023 is keyed by ``parent_asin`` (``title, description, features, categories, store,
images``), 2018 by ``asin`` (``title, description, feature, category, brand, imageURLHighRes / image /
imageURL``). Text field names are given in 2023 spelling; 2018 aliases are applied automatically.

A file fails at once with :class:`~recbole_blairclip.errors.DatasetError` when it is missing, is a
corrupt/truncated gzip, is empty (reviews), or is not JSON Lines at all: none of its first
:data:`DETECT_LINES` non-blank lines is a JSON object, it is one JSON document (its first line opens
an array, or a line holds a lone ``{``), or no object there has the keys of a known schema, or a
meta file holds reviews (``user_id`` / ``reviewerID`` keys).
"""
import os

from recbole_blairclip.data.line_rules import loads
from recbole_blairclip.data.reader import iter_lines
from recbole_blairclip.errors import DatasetError

DETECT_LINES = 100  # non-blank lines inspected to detect the schema / reject a non-JSON-Lines file
_MAX_DETECT_LINE = 64 << 20  # a "line" longer than this while detecting means: not JSON Lines

REVIEW_SCHEMAS = {
    "amazon2023": {"user": "user_id", "item": "parent_asin", "rating": "rating", "time": "timestamp",
                   "time_scale": 1000.0},
    "amazon2018": {"user": "reviewerID", "item": "asin", "rating": "overall", "time": "unixReviewTime",
                   "time_scale": 1.0},
}
META_SCHEMAS = {
    "amazon2023": {"item": "parent_asin", "alias": {}},
    "amazon2018": {"item": "asin",
                   "alias": {"features": "feature", "categories": "category", "store": "brand"}},
}


def detect_schema(path, kind):
    """Return the schema name (``amazon2023``/``amazon2018``) of a ``kind`` (``reviews``/``meta``) file,
    or ``None`` for an empty meta file. Raises DatasetError for files that are not JSON Lines."""
    path = os.fspath(path)
    seen_keys = set()
    n_nonblank = 0
    n_objects = 0
    first_bad = None
    lines = iter_lines(path, cap=_MAX_DETECT_LINE)
    try:
        while n_nonblank < DETECT_LINES:
            line = next(lines, b"")
            if not line:
                break
            if len(line) >= _MAX_DETECT_LINE and not line.endswith(b"\n"):
                raise DatasetError(f"{path}: not a JSON Lines file (line {n_nonblank + 1} is longer "
                                   f"than {_MAX_DETECT_LINE >> 20} MiB); expected one JSON object per line")
            if not line.strip():
                continue
            n_nonblank += 1
            if n_nonblank == 1 and line.lstrip()[:1] == b"[" or line.strip() == b"{":
                raise DatasetError(f"{path}: not a JSON Lines file: it looks like one JSON document "
                                   f"(line {n_nonblank} starts with {line.strip()[:20]!r}); expected one JSON "
                                   "object per line (e.g. `jq -c '.[]' file.json > file.jsonl`)")
            try:
                obj = loads(line)
            except ValueError:
                first_bad = first_bad or line[:60]
                continue
            if not isinstance(obj, dict):
                first_bad = first_bad or line[:60]
                continue
            n_objects += 1
            if kind == "reviews":
                if "user_id" in obj:
                    return "amazon2023"
                if "reviewerID" in obj:
                    return "amazon2018"
            else:
                if "user_id" in obj or "reviewerID" in obj:
                    raise DatasetError(f"{path}: this is a reviews file, not a meta file (line {n_nonblank} has "
                                       f"{'user_id' if 'user_id' in obj else 'reviewerID'}); pass it as the "
                                       "reviews file and the meta_<Category> file as the meta file")
                if "parent_asin" in obj:
                    return "amazon2023"
                if "asin" in obj:
                    return "amazon2018"
            seen_keys.update(obj)
    finally:
        lines.close()  # stops the reader thread
    if n_nonblank == 0:
        if kind == "meta":
            return None
        raise DatasetError(f"{path}: the reviews file is empty (no lines); pass a non-empty "
                           "Amazon reviews .jsonl/.jsonl.gz file")
    if n_objects == 0:
        raise DatasetError(f"{path}: not a JSON Lines file: none of its first {n_nonblank} non-blank lines "
                           f"is a JSON object (starts with {first_bad!r}); expected one JSON object per line")
    if kind == "reviews":
        hint = " (this looks like a meta file: pass it as the meta file)" \
            if "parent_asin" in seen_keys or "asin" in seen_keys else ""
        raise DatasetError(f"{path}: unknown reviews schema{hint}: expected 'user_id' (Amazon 2023) or "
                           f"'reviewerID' (Amazon 2018) in the first {n_objects} objects; keys seen: "
                           f"{sorted(seen_keys)[:20]}")
    raise DatasetError(f"{path}: unknown meta schema: expected 'parent_asin' (Amazon 2023) or 'asin' "
                       f"(Amazon 2018) in the first {n_objects} objects; keys seen: {sorted(seen_keys)[:20]}")

