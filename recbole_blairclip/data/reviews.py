"""Reviews files (Amazon 2023 / 2018) -> parallel arrays of user, item, rating and time.

The schema is detected by :mod:`recbole_blairclip.data.schema`; lines follow the rules of
:mod:`recbole_blairclip.data.line_rules`. Blocks of clean lines are parsed by pyarrow's C++ JSON
reader; a block where that could differ from the rules is parsed line by line with orjson.
"""
import io
import os
from dataclasses import dataclass, field

import numpy as np

from recbole_blairclip.data.arrays import int64_array, to_numpy, valid_utf8
from recbole_blairclip.data.line_rules import MAX_ID_CHARS, MAX_TIME, PAD_TOKEN, LineIssues, bad_reason, loads, \
    valid_id
from recbole_blairclip.data.reader import iter_counted_blocks, progress_bar, split_lines
from recbole_blairclip.data.schema import REVIEW_SCHEMAS, detect_schema


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
    item_vocab: object = None  # item_names as a pyarrow StringArray


def names_of(names, codes):
    """The names (Python strings) of int ``codes`` in a list or a pyarrow StringArray vocabulary."""
    if isinstance(names, list):
        return [names[c] for c in np.asarray(codes).tolist()]
    return names.take(int64_array(codes)).to_pylist()


def _fast_block(block, n_lines, options, keys):
    """Parse a block of lines with pyarrow's C++ JSON reader. Returns the 4 columns only when the result
    is certainly what the line-by-line rules give (valid UTF-8, one row per line, no null, ids strings,
    numbers in range); ``None`` sends the block to the line-by-line path."""
    import pyarrow.compute as pc
    import pyarrow.json as pj

    if not valid_utf8(block):
        return None
    try:
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
    """The exact line rules (:mod:`~recbole_blairclip.data.line_rules`) on one block; returns 4 lists and the line numbers."""
    uk, ik, rk, tk = keys
    U, I, R, T, L = [], [], [], [], []
    add_issue = issues.add
    lineno = first_line - 1
    for lineno, line in enumerate(split_lines(block), first_line):
        try:
            obj = loads(line)
        except ValueError:
            if line.strip():
                add_issue(bad_reason(line), lineno)
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


def _printable_ascii(names):
    """Boolean mask over a pyarrow StringArray: non-empty strings of the bytes ``!``, ``#``-``~`` only."""
    import pyarrow as pa

    names = names.cast(pa.large_string())
    n = len(names)
    offsets = to_numpy(pa.Array.from_buffers(pa.int64(), n + 1, [None, names.buffers()[1]], offset=names.offset))
    out = np.zeros(n, dtype=bool)
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    if len(nonempty) == 0:
        return out
    data = np.frombuffer(names.buffers()[2], dtype=np.uint8, count=int(offsets[-1]))[int(offsets[0]):]
    if data.min() >= 0x21 and data.max() <= 0x7E and not (data == 0x22).any():  # the usual case: no odd byte
        out[nonempty] = True
        return out
    odd = (data < 0x21) | (data > 0x7E) | (data == 0x22)
    out[nonempty] = ~np.logical_or.reduceat(odd, offsets[:-1][nonempty] - offsets[0])
    return out


def _bad_codes(names):
    """Boolean mask over a vocabulary (pyarrow StringArray): ids that are not valid tokens."""
    import pyarrow.compute as pc

    simple = _printable_ascii(names)
    length = to_numpy(pc.utf8_length(names))
    simple &= (length <= MAX_ID_CHARS) & (length != len(PAD_TOKEN))  # the padding token: the Python rule
    bad = np.zeros(len(names), dtype=bool)
    for k in np.flatnonzero(~simple).tolist():  # non-ASCII or odd characters: the exact Python rule
        bad[k] = not valid_id(names[k].as_py())
    return bad


def read_reviews(path, progress=False, fast=True, after_pass=None):
    """Stream one reviews file into :class:`Reviews` (line rules: :mod:`~recbole_blairclip.data.line_rules`).

    Blocks of clean lines are parsed by pyarrow's C++ JSON reader (``fast``); any block where that could
    differ from the line rules (a bad line, a blank line, a null, a wrong type) is parsed line by line
    with orjson, so both give the same result. ``after_pass`` (no arguments) is called once the whole
    file is read, before the id vocabularies are built (which runs without the GIL: convert starts its
    meta scan there, in a thread)."""
    import pyarrow as pa
    import pyarrow.json as pj

    path = os.fspath(path)
    schema = detect_schema(path, "reviews")
    spec = REVIEW_SCHEMAS[schema]
    keys = (spec["user"], spec["item"], spec["rating"], spec["time"])
    arrow_schema = pa.schema([(keys[0], pa.string()), (keys[1], pa.string()), (keys[2], pa.float64()),
                              (keys[3], pa.int64())])
    # one parse chunk per block (blocks are a few MiB); Arrow's threads only when its pool has more than one
    # (OMP_NUM_THREADS=1 sets it to one: then threads only add overhead)
    options = (pj.ReadOptions(use_threads=pa.cpu_count() > 1, block_size=1 << 24),
               pj.ParseOptions(explicit_schema=arrow_schema, unexpected_field_behavior="ignore"))
    issues = LineIssues()
    stats = {"blank": 0}
    users, items, ratings, times, line_nos = [], [], [], [], []
    lineno = 0
    bar = progress_bar(path, "reading reviews", progress)
    for block, n in iter_counted_blocks(path):
        cols = _fast_block(block, n, options, keys) if fast else None
        if cols is not None:
            users.append(cols[0])
            items.append(cols[1])
            ratings.append(to_numpy(cols[2]))
            times.append(to_numpy(cols[3]).astype(np.float64))
            line_nos.append(np.arange(lineno + 1, lineno + n + 1, dtype=np.int64))
        else:
            U, I, R, T, L, _ = _slow_block(block, lineno + 1, keys, issues, loads, stats)
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
    if after_pass is not None:
        after_pass()
    user_enc = pa.concat_arrays(users).dictionary_encode() if users else pa.array([], pa.string()).dictionary_encode()
    item_enc = pa.concat_arrays(items).dictionary_encode() if items else pa.array([], pa.string()).dictionary_encode()
    del users, items
    user = to_numpy(user_enc.indices).astype(np.int32)
    item = to_numpy(item_enc.indices).astype(np.int32)
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
                   lines=lineno, blank_lines=stats["blank"], issues=issues, item_vocab=item_enc.dictionary)

