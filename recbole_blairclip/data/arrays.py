"""numpy / Python strings <-> pyarrow without pandas, and Arrow's UTF-8 check.

pyarrow imports pandas (about a second) the first time ``pa.array`` or ``Array.to_numpy`` runs; the
converter never needs pandas, so it moves numbers through the arrays' buffers instead.
"""
import numpy as np

_NUMPY_TYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
                "float": np.float32, "double": np.float64}


def to_numpy(arr):
    """A numpy view (read-only) of a pyarrow numeric or boolean Array without nulls."""
    if arr.null_count:
        raise ValueError("to_numpy: the array has nulls")
    n, offset = len(arr), arr.offset
    kind = str(arr.type)
    data = arr.buffers()[1]
    if kind == "bool":
        if n == 0:
            return np.zeros(0, dtype=bool)
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[offset:offset + n].astype(bool)
    dtype = np.dtype(_NUMPY_TYPES[kind])
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=n, offset=offset * dtype.itemsize)


def int64_array(values):
    """A pyarrow Int64Array of a numpy integer array (for ``take``)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def str_array(values):
    """A pyarrow large_string array of Python str ``values`` (``pa.array`` would import pandas)."""
    import pyarrow as pa

    data = "".join(values).encode("utf-8")
    lengths = np.fromiter((len(v.encode("utf-8")) for v in values), dtype=np.int64, count=len(values)) \
        if not data.isascii() else np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.large_string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def valid_utf8(data):
    """True when ``data`` (bytes) is valid UTF-8, as ``data.decode("utf-8")`` decides, without decoding."""
    if data.isascii():
        return True
    import pyarrow as pa

    offsets = np.array([0, len(data)], dtype=np.int64)
    text = pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True
