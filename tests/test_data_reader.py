"""The one file reader (data/reader.py): the same lines as Python's own file iteration, plain or gzip."""
import gzip
import io

import pytest

from recbole_blairclip.data import reader
from recbole_blairclip.errors import DatasetError

LINES = [b'{"a": 1}\n', b"\n", b"x" * 3000 + b"\n", b"\r\n", "\u00e9t\u00e9\n".encode(), b"no newline at end"]


def _written(tmp_path, kind, data):
    path = tmp_path / f"f.{kind}"
    if kind == "plain":
        path.write_bytes(data)
    elif kind == "gz":
        path.write_bytes(gzip.compress(data))
    else:  # two gzip members, cut in the middle of a line
        cut = len(data) // 2
        path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]))
    return str(path)


@pytest.mark.parametrize("kind", ["plain", "gz", "members"])
@pytest.mark.parametrize("block", [7, 1 << 20])
def test_lines_match_binary_file_iteration(tmp_path, monkeypatch, kind, block):
    data = b"".join(LINES * 40)
    path = _written(tmp_path, kind, data)
    monkeypatch.setattr(reader, "_BLOCK", block)
    expected = list(io.BytesIO(data))  # what iterating over the uncompressed file gives
    assert list(reader.iter_lines(path)) == expected
    assert [b"".join(b + b"\n" for b in blk) for blk in reader.iter_line_blocks(path)][-1].endswith(b"end\n")
    assert sum(len(b) for b in reader.iter_line_blocks(path)) == len(expected) == reader.count_lines(path)


@pytest.mark.parametrize("block", [7, 1 << 20])
def test_capped_lines_are_readline_with_a_limit(tmp_path, monkeypatch, block):
    """Up to the first line longer than the cap, the lines are ``readline(cap)``'s; that line comes back
    as its first ``cap`` bytes, without ``\\n`` (the caller stops there: not JSON Lines)."""
    data = b"".join(LINES * 3)
    path = _written(tmp_path, "gz", data)
    monkeypatch.setattr(reader, "_BLOCK", block)
    f, want = io.BytesIO(data), []
    while True:
        line = f.readline(50)
        want.append(line)
        if len(line) == 50 and not line.endswith(b"\n"):
            break
    got = reader.iter_lines(path, cap=50)
    assert [next(got) for _ in want] == want and want[-1] == b"x" * 50
    got.close()


def test_corrupt_gzip_and_missing_file(tmp_path):
    good = gzip.compress(b"".join(LINES * 500))
    (tmp_path / "t.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        list(reader.iter_lines(str(tmp_path / "t.gz")))
    (tmp_path / "b.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        list(reader.iter_byte_blocks(str(tmp_path / "b.gz")))
    with pytest.raises(DatasetError, match="file not found"):
        next(reader.iter_lines(str(tmp_path / "missing.jsonl")))
