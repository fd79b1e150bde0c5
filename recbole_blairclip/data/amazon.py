"""Streaming readers for Amazon Reviews raw files (2023 and 2018 releases), schema detected automatically.

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

Line rules (every skipped line is counted per reason with its first line numbers, see
:class:`LineIssues`):

- blank lines are ignored (counted as ``blank_lines``, not as bad);
- ``non_utf8``: the line is not valid UTF-8; ``malformed_json``: not parseable JSON;
  ``not_an_object``: JSON but not an object;
- ``missing_field``: a required field (user, item, rating, time) is absent or null;
- ``wrong_type``: ids not strings, rating/time not numbers (a bool or a numeric string is wrong);
- ``bad_value``: time negative, non-finite or after :data:`MAX_TIME` (year 2100), rating non-finite;
- ``bad_id``: an id that is empty, longer than :data:`MAX_ID_CHARS`, RecBole's padding token ``[PAD]``,
  or contains whitespace, a double quote or a control character (it could not be written as a RecBole
  token, or would collide with padding).

A file fails at once with :class:`~recbole_blairclip.errors.DatasetError` when it is missing, is a
corrupt/truncated gzip, is empty (reviews), or is not JSON Lines at all: none of its first
:data:`DETECT_LINES` non-blank lines is a JSON object, it is one JSON document (its first line opens
an array, or a line holds a lone ``{``), or no object there has the keys of a known schema, or a
meta file holds reviews (``user_id`` / ``reviewerID`` keys).
"""
import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from recbole_blairclip.errors import DatasetError
from recbole_blairclip.data.text import build_item_text, clean_text, flatten_text, to_category_tokens, to_token

try:  # orjson parses 3-5x faster than json; the stdlib is the fallback
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    _loads = json.loads

DETECT_LINES = 100  # non-blank lines inspected to detect the schema / reject a non-JSON-Lines file
FIRST_LINES = 5  # line numbers kept per bad-line reason
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
MAX_ID_CHARS = 256  # longer user/item ids are bad_id (RecBole's reader limits a field to 131072 chars)
PAD_TOKEN = "[PAD]"  # RecBole's padding token: an id equal to it would share the padding row
MAX_TIME = 4102444800.0  # 2100-01-01 in seconds: later timestamps are bad_value
_ID_RE = re.compile(r'[^\s"\x00-\x1f\x7f-\x9f]+')


class LineIssues:
    """Counts of skipped lines per reason plus the first :data:`FIRST_LINES` line numbers (1-based)."""

    def __init__(self):
        self.counts = {}
        self.first = {}

    def add(self, reason, lineno):
        n = self.counts.get(reason, 0)
        self.counts[reason] = n + 1
        if n < FIRST_LINES:
            self.first.setdefault(reason, []).append(lineno)

    def total(self):
        return sum(self.counts.values())

    def as_dict(self):
        return {r: {"count": self.counts[r], "first_lines": self.first[r]} for r in sorted(self.counts)}


def valid_id(value):
    """True when ``value`` can be a RecBole token: non-empty, at most :data:`MAX_ID_CHARS`, not
    ``[PAD]``, no whitespace/quote/control char."""
    return len(value) <= MAX_ID_CHARS and value != PAD_TOKEN and _ID_RE.fullmatch(value) is not None


_BLOCK = 1 << 20  # compressed (or plain) bytes read per block by the reader thread


def _read_blocks(path, out_queue, stop):
    """Reader thread: put decompressed byte blocks (or an exception, then None) on ``out_queue``.
    zlib and file reads release the GIL, so decompression overlaps JSON parsing on another core."""
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            d = zlib.decompressobj(31) if gz else None
            started = False  # the current gzip member has received input
            while not stop.is_set():
                chunk = raw.read(_BLOCK)
                if not chunk:
                    break
                if d is None:
                    out_queue.put(chunk)
                    continue
                while chunk:
                    started = True
                    data = d.decompress(chunk)
                    if data:
                        out_queue.put(data)
                    chunk = b""
                    if d.eof:  # a multi-member gzip: the next member starts in unused_data
                        chunk = d.unused_data
                        d = zlib.decompressobj(31)
                        started = False
            if d is not None and started and not stop.is_set():
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
    except BaseException as exc:  # handed to the consumer
        out_queue.put(exc)
    out_queue.put(None)


def iter_byte_blocks(path, max_line=None):
    """Yield byte blocks of complete lines (each ends with ``\\n`` except possibly the file's last) of
    a .jsonl or .jsonl.gz file, decompressing in a background thread. Corrupt or truncated gzip raises
    DatasetError. With ``max_line``, an unfinished line longer than that is yielded as it is (a block
    without ``\\n``) instead of growing without bound. The one reader of every input file."""
    import queue
    import threading

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found")
    q = queue.Queue(maxsize=4)
    stop = threading.Event()
    thread = threading.Thread(target=_read_blocks, args=(path, q, stop), daemon=True)
    thread.start()
    rest = b""
    try:
        while True:
            data = q.get()
            if data is None:
                break
            if isinstance(data, BaseException):
                if isinstance(data, (EOFError, zlib.error, gzip.BadGzipFile)):
                    raise DatasetError(f"{path}: corrupt or truncated gzip file ({data}); "
                                       "re-download it or pass the uncompressed .jsonl") from data
                raise data
            cut = data.rfind(b"\n")
            if cut < 0:
                rest += data
                if max_line is not None and len(rest) > max_line:
                    yield rest
                    rest = b""
                continue
            block = rest + data[:cut + 1] if rest else data[:cut + 1]
            rest = data[cut + 1:]
            yield block
        if rest:
            yield rest
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def _split_lines(block):
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def iter_line_blocks(path):
    """Yield lists of lines (bytes, ``\\n`` removed) of a .jsonl or .jsonl.gz file (see
    :func:`iter_byte_blocks`)."""
    for block in iter_byte_blocks(path):
        yield _split_lines(block)


def _bad_reason(line):
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8"
    return "malformed_json"


def _progress(path, desc, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" lines", unit_scale=True, desc=desc, leave=False)


def _capped_lines(path, cap):
    """Lines of a file (``\\n`` kept) as ``readline(cap)`` gives them: a longer line comes back as its
    first ``cap`` bytes, without ``\\n``."""
    for block in iter_byte_blocks(path, max_line=cap):
        pieces = block.split(b"\n")
        last = pieces.pop()
        for piece in pieces:
            yield piece + b"\n" if len(piece) < cap else piece[:cap]
        if last:
            yield last[:cap]


def detect_schema(path, kind):
    """Return the schema name (``amazon2023``/``amazon2018``) of a ``kind`` (``reviews``/``meta``) file,
    or ``None`` for an empty meta file. Raises DatasetError for files that are not JSON Lines."""
    path = os.fspath(path)
    seen_keys = set()
    n_nonblank = 0
    n_objects = 0
    first_bad = None
    lines = _capped_lines(path, _MAX_DETECT_LINE)
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
                obj = _loads(line)
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


@dataclass
class Reviews:
    """Parsed review rows as parallel arrays (row order = file order) plus the id vocabularies."""

    schema: str
    user: np.ndarray  # int32 code into user_names
    item: np.ndarray  # int32 code into item_names
    rating: np.ndarray  # float64
    timestamp: np.ndarray  # float64 seconds
    user_names: object  # a pyarrow StringArray (millions of users: never turned into Python strings)
    item_names: list
    item_index: dict  # item name -> code
    lines: int = 0
    blank_lines: int = 0
    issues: LineIssues = field(default_factory=LineIssues)


def names_of(names, codes):
    """The names (Python strings) of int ``codes`` in a list or a pyarrow StringArray vocabulary."""
    if isinstance(names, list):
        return [names[c] for c in np.asarray(codes).tolist()]
    import pyarrow as pa

    return names.take(pa.array(np.asarray(codes, dtype=np.int64))).to_pylist()


def _fast_block(block, n_lines, options, keys):
    """Parse a block of lines with pyarrow's C++ JSON reader. Returns the 4 columns only when the result
    is certainly what the line-by-line rules give (valid UTF-8, one row per line, no null, ids strings,
    numbers in range); ``None`` sends the block to the line-by-line path."""
    import pyarrow.compute as pc
    import pyarrow.json as pj

    try:
        block.decode("utf-8")
        table = pj.read_json(io.BytesIO(block), read_options=options[0], parse_options=options[1])
    except Exception:  # noqa: BLE001 - any parse problem: the exact rules decide line by line
        return None
    if table.num_rows != n_lines:
        return None
    cols = [table.column(k) for k in keys]
    if any(c.null_count for c in cols):
        return None
    t, r = cols[3], cols[2]
    if n_lines and (pc.min(t).as_py() < 0 or pc.max(t).as_py() >= 10 ** 17
                    or not pc.all(pc.is_finite(r)).as_py()
                    or pc.max(pc.abs(r)).as_py() >= 1e300):
        return None
    return [c.combine_chunks() for c in cols]


def _slow_block(block, first_line, keys, issues, loads, stats):
    """The exact line rules (module docstring) on one block; returns 4 lists and the line numbers."""
    uk, ik, rk, tk = keys
    U, I, R, T, L = [], [], [], [], []
    add_issue = issues.add
    lineno = first_line - 1
    for lineno, line in enumerate(_split_lines(block), first_line):
        try:
            obj = loads(line)
        except ValueError:
            if line.strip():
                add_issue(_bad_reason(line), lineno)
            else:
                stats["blank"] += 1
            continue
        try:
            u = obj[uk]
            it = obj[ik]
            r = obj[rk]
            t = obj[tk]
        except KeyError:
            add_issue("missing_field", lineno)
            continue
        except TypeError:  # a JSON array, string or number
            add_issue("not_an_object", lineno)
            continue
        tt = type(t)
        tr = type(r)
        if type(u) is not str or type(it) is not str or (tt is not int and tt is not float) \
                or (tr is not float and tr is not int):
            if u is None or it is None or r is None or t is None:
                add_issue("missing_field", lineno)
            else:
                add_issue("wrong_type", lineno)
            continue
        if not (0 <= t < 1e17) or not (-1e300 < r < 1e300):
            add_issue("bad_value", lineno)
            continue
        U.append(u)
        I.append(it)
        R.append(r)
        T.append(t)
        L.append(lineno)
    return U, I, R, T, L, lineno


def _bad_codes(names):
    """Boolean mask over a vocabulary (pyarrow StringArray): ids that are not valid tokens."""
    import pyarrow.compute as pc

    simple = pc.match_substring_regex(names, r"^[!#-~]+$").to_numpy(zero_copy_only=False)
    simple &= pc.utf8_length(names).to_numpy(zero_copy_only=False) <= MAX_ID_CHARS
    simple &= pc.not_equal(names, PAD_TOKEN).to_numpy(zero_copy_only=False)
    bad = np.zeros(len(names), dtype=bool)
    for k in np.flatnonzero(~simple).tolist():  # non-ASCII or odd characters: the exact Python rule
        bad[k] = not valid_id(names[k].as_py())
    return bad


def read_reviews(path, progress=False, fast=True):
    """Stream one reviews file into :class:`Reviews` (see the module docstring for the line rules).

    Blocks of clean lines are parsed by pyarrow's C++ JSON reader (``fast``); any block where that could
    differ from the line rules (a bad line, a blank line, a null, a wrong type) is parsed line by line
    with orjson, so both give the same result."""
    import pyarrow as pa
    import pyarrow.json as pj

    path = os.fspath(path)
    schema = detect_schema(path, "reviews")
    spec = REVIEW_SCHEMAS[schema]
    keys = (spec["user"], spec["item"], spec["rating"], spec["time"])
    arrow_schema = pa.schema([(keys[0], pa.string()), (keys[1], pa.string()), (keys[2], pa.float64()),
                              (keys[3], pa.int64())])
    options = (pj.ReadOptions(use_threads=True, block_size=1 << 22),
               pj.ParseOptions(explicit_schema=arrow_schema, unexpected_field_behavior="ignore"))
    issues = LineIssues()
    stats = {"blank": 0}
    users, items, ratings, times, line_nos = [], [], [], [], []
    lineno = 0
    bar = _progress(path, "reading reviews", progress)
    for block in iter_byte_blocks(path):
        n = block.count(b"\n") + (not block.endswith(b"\n"))
        cols = _fast_block(block, n, options, keys) if fast else None
        if cols is not None:
            users.append(cols[0])
            items.append(cols[1])
            ratings.append(cols[2].to_numpy())
            times.append(cols[3].to_numpy().astype(np.float64))
            line_nos.append(np.arange(lineno + 1, lineno + n + 1, dtype=np.int64))
        else:
            U, I, R, T, L, _ = _slow_block(block, lineno + 1, keys, issues, _loads, stats)
            users.append(pa.array(U, type=pa.string()))
            items.append(pa.array(I, type=pa.string()))
            ratings.append(np.array(R, dtype=np.float64))
            times.append(np.array(T, dtype=np.float64))
            line_nos.append(np.array(L, dtype=np.int64))
        lineno += n
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    user_enc = pa.concat_arrays(users).dictionary_encode() if users else pa.array([], pa.string()).dictionary_encode()
    item_enc = pa.concat_arrays(items).dictionary_encode() if items else pa.array([], pa.string()).dictionary_encode()
    del users, items
    user = user_enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    item = item_enc.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    rating = np.concatenate(ratings) if ratings else np.zeros(0)
    ts = np.concatenate(times) if times else np.zeros(0)
    lines_of_rows = np.concatenate(line_nos) if line_nos else np.zeros(0, dtype=np.int64)
    bad_user, bad_item = _bad_codes(user_enc.dictionary), _bad_codes(item_enc.dictionary)
    bad = bad_user[user] | bad_item[item] if len(user) else np.zeros(0, dtype=bool)
    future = ts > MAX_TIME * spec["time_scale"]
    if bad.any() or future.any():
        for ln in lines_of_rows[future & ~bad].tolist():
            issues.add("bad_value", ln)
        for ln in lines_of_rows[bad].tolist():
            issues.add("bad_id", ln)
        keep = ~(bad | future)
        user, item, rating, ts = user[keep], item[keep], rating[keep], ts[keep]
    item_names = item_enc.dictionary.to_pylist()
    item_index = {name: k for k, name in enumerate(item_names) if not bad_item[k]}
    if spec["time_scale"] != 1.0:
        ts = ts / spec["time_scale"]
    return Reviews(schema=schema, user=user, item=item, rating=rating, timestamp=ts,
                   user_names=user_enc.dictionary, item_names=item_names, item_index=item_index,
                   lines=lineno, blank_lines=stats["blank"], issues=issues)


@dataclass
class ItemMeta:
    """The cleaned values one item contributes to ``<name>.item``."""

    item_text: str
    title: str
    categories: str
    store: str
    image_url: str


@dataclass
class Meta:
    """Meta records read for the wanted items, plus line accounting."""

    schema: object  # str or None for an empty file
    items: dict  # item name -> ItemMeta (first record per item)
    lines: int = 0
    blank_lines: int = 0
    issues: LineIssues = field(default_factory=LineIssues)
    unknown_items: LineIssues = field(default_factory=LineIssues)  # "unknown_item" / "not_kept_item"
    duplicates: LineIssues = field(default_factory=LineIssues)  # reason "duplicate_item"


def _first_url(value):
    return value if isinstance(value, str) and value.strip() else ""


def image_url_2023(images):
    """First image URL of a 2023 ``images`` field: the ``MAIN`` variant if any, else the first image;
    its ``large`` URL, else ``hi_res``, else ``thumb``. Accepts a list of dicts or a dict of lists."""
    if isinstance(images, dict):  # parallel lists (the HF datasets layout)
        n = max((len(v) for v in images.values() if isinstance(v, list)), default=0)
        rows = []
        for j in range(n):
            rows.append({k: (v[j] if isinstance(v, list) and j < len(v) else None) for k, v in images.items()})
        images = rows
    if not isinstance(images, list):
        return ""
    records = [im for im in images if isinstance(im, dict)]
    records.sort(key=lambda im: im.get("variant") != "MAIN")  # stable: MAIN first, else file order
    for im in records:
        for key in ("large", "hi_res", "thumb"):
            url = _first_url(im.get(key))
            if url:
                return url
    return ""


def image_url_2018(meta):
    """First image URL of a 2018 meta record: ``imageURLHighRes``, else ``image``, else ``imageURL``."""
    for key in ("imageURLHighRes", "image", "imageURL"):
        value = meta.get(key)
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for url in value:
                url = _first_url(url)
                if url:
                    return url
    return ""


def item_meta(obj, schema, text_fields):
    """Build the :class:`ItemMeta` of one meta record."""
    alias = META_SCHEMAS[schema]["alias"]
    fields = [alias.get(f, f) for f in text_fields]
    url = image_url_2023(obj.get("images")) if schema == "amazon2023" else image_url_2018(obj)
    url = clean_text(url).replace(" ", "%20")
    title = clean_text(flatten_text(obj.get("title")))
    return ItemMeta(item_text=build_item_text(obj, fields, {"title": title}),
                    title=title,
                    categories=to_category_tokens(obj.get(alias.get("categories", "categories"))),
                    store=to_token(obj.get(alias.get("store", "store"))),
                    image_url=url)


@dataclass
class MetaScan:
    """Everything :func:`read_meta` needs from a meta file, independent of which items are wanted:
    the line accounting, the bad lines, every valid record's (item, line number) in file order and
    the first record of each item (cleaned with ``build``, else ``None``)."""

    schema: object
    lines: int = 0
    blank_lines: int = 0
    issues: LineIssues = field(default_factory=LineIssues)
    records: list = field(default_factory=list)  # (item, line number) of every valid record
    first: dict = field(default_factory=dict)  # item -> ItemMeta (or None) of its first record


def scan_meta(path, text_fields=("title", "description", "features"), progress=False, build=True, clean=None):
    """Read a meta file once (see :func:`read_meta` for the line rules); the result pickles, so another
    process can scan while this one reads the reviews. ``build``: clean the first record of each item
    (of the items in ``clean`` only, when given) into an :class:`ItemMeta`."""
    path = os.fspath(path)
    schema = detect_schema(path, "meta")
    scan = MetaScan(schema=schema)
    if schema is None:
        scan.blank_lines = scan.lines = sum(block.count(b"\n") + (not block.endswith(b"\n"))
                                            for block in iter_byte_blocks(path))
        return scan
    key = META_SCHEMAS[schema]["item"]
    issues, records, first = scan.issues, scan.records, scan.first
    loads = _loads
    lineno = 0
    bar = _progress(path, "reading meta", progress)
    for block in iter_line_blocks(path):
        if bar is not None:
            bar.update(len(block))
        for lineno, line in enumerate(block, lineno + 1):
            try:
                obj = loads(line)
            except ValueError:
                if line.strip():
                    issues.add(_bad_reason(line), lineno)
                else:
                    scan.blank_lines += 1
                continue
            if type(obj) is not dict:
                issues.add("not_an_object", lineno)
                continue
            it = obj.get(key)
            if it is None:
                issues.add("missing_field", lineno)
                continue
            if type(it) is not str:
                issues.add("wrong_type", lineno)
                continue
            if not valid_id(it):
                issues.add("bad_id", lineno)
                continue
            records.append((it, lineno))
            if it not in first:
                first[it] = item_meta(obj, schema, text_fields) if build and (clean is None or it in clean) \
                    else None
    if bar is not None:
        bar.close()
    scan.lines = lineno
    return scan


def select_meta(scan, wanted=None, known=None):
    """The :class:`Meta` of the ``wanted`` items (``None``: all) from a :class:`MetaScan`, with the same
    accounting as reading the file with that ``wanted``: records of other items count as
    ``unknown_item`` (``not_kept_item`` when in ``known``), repeated records of a wanted item as
    ``duplicate_item`` (the first wins)."""
    result = Meta(schema=scan.schema, items={}, lines=scan.lines, blank_lines=scan.blank_lines, issues=scan.issues)
    items, first = result.items, scan.first
    for it, lineno in scan.records:
        if wanted is not None and it not in wanted:
            if known is not None and it in known:
                result.unknown_items.add("not_kept_item", lineno)
            else:
                result.unknown_items.add("unknown_item", lineno)
            continue
        if it in items:
            result.duplicates.add("duplicate_item", lineno)
            continue
        items[it] = first[it]
    return result


def read_meta(path, wanted=None, text_fields=("title", "description", "features"), progress=False,
              known=None, build=True):
    """Stream a meta file, keeping the first record of every item in ``wanted`` (a container of item
    names; ``None`` keeps every item). Records of other items count as ``unknown_item``, or as
    ``not_kept_item`` when they are in ``known`` (reviewed items the split dropped); repeated records of
    one item as ``duplicate_item`` (the first wins). ``build=False`` only records which items have a
    record (``items`` maps them to ``None``), skipping the text cleaning."""
    return select_meta(scan_meta(path, text_fields, progress, build, clean=wanted), wanted, known)

