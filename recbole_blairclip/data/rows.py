"""The five interaction files of a split, built as Arrow strings and written as bytes.

The lines are those :func:`recbole_blairclip.data.atomic.write_parts` writes from Python strings
(``user\\titem\\trating\\ttimestamp`` with ``repr`` floats, plus ``\\t`` and the space-joined history in
the sequential parts), byte for byte; Arrow's string kernels join them a chunk of rows at a time.
"""
import numpy as np

from recbole_blairclip.data import atomic
from recbole_blairclip.data.arrays import int64_array, str_array as _strings
from recbole_blairclip.data.atomic import PARTS, atomic_path

_CHUNK = 1 << 20  # rows joined and written at a time (bounds the memory of one file's lines)


def _scalar(text):
    """A pyarrow string scalar (``pa.scalar`` would import pandas)."""
    return _strings([text])[0]


_FRACTIONS = [".0"] + ["." + f"{r:03d}".rstrip("0") for r in range(1, 1000)]  # of r thousandths


def _millis_strings(values):
    """``repr`` of floats that are a whole number of thousandths in (0, 1e11): such a float is the double
    nearest to ``m / 1000``, so that decimal (trailing zeros dropped, at least one fraction digit) is the
    shortest string that reads back as it, which is what ``repr`` writes. Arrow writes the integer part."""
    import pyarrow as pa
    import pyarrow.compute as pc

    q, r = np.divmod(np.rint(values * 1000).astype(np.int64), 1000)
    whole = int64_array(q).cast(pa.large_string())
    fraction = _strings(_FRACTIONS).take(int64_array(r))
    return pc.binary_join_element_wise(whole, fraction, _scalar(""))


def float_strings(values):
    """``repr`` of every float of ``values`` as a large_string array: what ``_float_str`` gives (0.0 and
    -0.0 both take the first one's, as its cache does)."""
    import pyarrow as pa

    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values).any():  # NaN != NaN: not one group
        return _strings([repr(v) for v in values.tolist()])
    uniq, inverse = np.unique(values, return_inverse=True)
    inverse = inverse.reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        fast = (uniq > 0) & (uniq < 1e11) & (np.rint(uniq * 1000) / 1000 == uniq)
    fast_at, slow_at = np.flatnonzero(fast), np.flatnonzero(~fast)
    slow = [repr(v) for v in uniq[slow_at].tolist()]
    zeros = np.flatnonzero(values == 0)
    if len(zeros):  # the one zero of uniq is slow: written as the first zero of values is
        slow[int(np.searchsorted(slow_at, inverse[zeros[0]]))] = repr(float(values[zeros[0]]))
    where = np.empty(len(uniq), dtype=np.int64)
    where[fast_at] = np.arange(len(fast_at))
    where[slow_at] = len(fast_at) + np.arange(len(slow_at))
    text = pa.concat_arrays([_millis_strings(uniq[fast_at]), _strings(slow)])
    return text.take(int64_array(where[inverse]))


def _text(chunks):
    """Each large_string array of ``chunks`` as one str (its lines, concatenated)."""
    for arr in chunks:
        if len(arr):
            offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
            yield bytes(memoryview(arr.buffers()[2])[int(offsets[0]):int(offsets[-1])]).decode("utf-8")


def _write(path, header, chunks):
    atomic.write_atomic(path, header, _text(chunks))  # the one writer of atomic files


def write_interactions(folder, name, res, user_names, item_names, max_item_list_length,
                       train_idx, train_seq_idx, valid_idx, test_idx):
    """Write ``<name>.{inter,train.inter,train_seq.inter,valid.inter,test.inter}`` of a
    :class:`~recbole_blairclip.data.split.SplitResult` into ``folder``; ``user_names`` and
    ``item_names`` are pyarrow string arrays indexed by the codes of ``res``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    tab, space, newline, empty = _scalar("\t"), _scalar(" "), _scalar("\n"), _scalar("")
    users = user_names.cast(pa.large_string())
    items = item_names.cast(pa.large_string())
    ratings = float_strings(res.rating)
    times = float_strings(res.timestamp)
    start = np.asarray(res.start, dtype=np.int64)
    L = max_item_list_length

    def base(rows):
        take = int64_array(rows)
        return pc.binary_join_element_wise(users.take(int64_array(res.user[rows])),
                                           items.take(int64_array(res.item[rows])),
                                           ratings.take(take), times.take(take), tab)

    def plain(indices):
        for lo in range(0, len(indices), _CHUNK):
            yield pc.binary_join_element_wise(base(indices[lo:lo + _CHUNK]), empty, newline)

    def seq(indices):
        for lo in range(0, len(indices), _CHUNK):
            rows = np.asarray(indices[lo:lo + _CHUNK], dtype=np.int64)
            first = np.maximum(start[rows], rows - L)
            sizes = rows - first
            offsets = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(sizes, out=offsets[1:])
            flat = np.repeat(first - offsets[:-1], sizes) + np.arange(offsets[-1], dtype=np.int64)
            history = pa.LargeListArray.from_arrays(pa.Array.from_buffers(pa.int64(), len(offsets), [
                None, pa.py_buffer(offsets)]), items.take(int64_array(res.item[flat])))
            joined = pc.binary_join(history, space)
            yield pc.binary_join_element_wise(pc.binary_join_element_wise(base(rows), joined, tab), empty, newline)

    everything = np.arange(len(res.user), dtype=np.int64)
    _write(atomic_path(folder, name, "inter"), PARTS["inter"][1], plain(everything))
    _write(atomic_path(folder, name, "train"), PARTS["train"][1], plain(np.asarray(train_idx)))
    _write(atomic_path(folder, name, "train_seq"), PARTS["train_seq"][1], seq(np.asarray(train_seq_idx)))
    _write(atomic_path(folder, name, "valid"), PARTS["valid"][1], seq(np.asarray(valid_idx)))
    _write(atomic_path(folder, name, "test"), PARTS["test"][1], seq(np.asarray(test_idx)))
