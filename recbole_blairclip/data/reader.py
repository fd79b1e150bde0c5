"""The one reader of input files: byte blocks and lines of a plain or gzip file.

Every file the package reads (Amazon ``.jsonl`` / ``.jsonl.gz``, RecBole atomic files, the converter's
own output when checked) goes through :func:`iter_byte_blocks`: gzip is recognised by its magic bytes,
not the suffix; multi-member gzip is read to its end; a corrupt or truncated gzip is one
:class:`~recbole_blairclip.errors.DatasetError`. Decompression runs in a background thread (zlib and
file reads release the GIL), so it overlaps the parsing of the previous block on another core.
"""
import gzip
import os
import zlib

from recbole_blairclip.errors import DatasetError

_BLOCK = 1 << 20  # compressed (or plain) bytes read per block by the reader thread


def _decompressed(path, stop):
    """Decompressed (or plain) byte chunks of a file, as they come; multi-member gzip read to its end."""
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
                yield chunk
                continue
            while chunk:
                started = True
                data = d.decompress(chunk)
                if data:
                    yield data
                chunk = b""
                if d.eof:  # a multi-member gzip: the next member starts in unused_data
                    chunk = d.unused_data
                    d = zlib.decompressobj(31)
                    started = False
        if d is not None and started and not stop.is_set():
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _read_blocks(path, out_queue, stop, max_line):
    """Reader thread: put ``(block, lines)`` pairs (blocks of complete lines, see :func:`iter_byte_blocks`,
    and their line counts), or an exception, then None, on ``out_queue``. zlib and file reads release the
    GIL and the parsers of the blocks mostly do too, so reading overlaps parsing on another core."""
    try:
        rest = b""
        for data in _decompressed(path, stop):
            cut = data.rfind(b"\n")
            if cut < 0:
                rest += data
                if max_line is not None and len(rest) > max_line:
                    out_queue.put((rest, 1))
                    rest = b""
                continue
            block = rest + data[:cut + 1] if rest else data[:cut + 1]
            rest = data[cut + 1:]
            out_queue.put((block, block.count(b"\n")))
        if rest and not stop.is_set():
            out_queue.put((rest, 1))
    except BaseException as exc:  # handed to the consumer
        out_queue.put(exc)
    out_queue.put(None)


def iter_counted_blocks(path, max_line=None):
    """Yield ``(block, lines)``: byte blocks of complete lines (each ends with ``\\n`` except possibly the
    file's last) of a .jsonl or .jsonl.gz file and how many lines each holds (a last line without
    ``\\n`` counts), read, decompressed and cut in a background thread. Corrupt or truncated gzip raises
    DatasetError. With ``max_line``, an unfinished line longer than that is yielded as it is (a block
    without ``\\n``, one line) instead of growing without bound. The one reader of every input file."""
    import queue
    import threading

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found")
    q = queue.Queue(maxsize=4)
    stop = threading.Event()
    thread = threading.Thread(target=_read_blocks, args=(path, q, stop, max_line), daemon=True)
    thread.start()
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
            yield data
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


def iter_byte_blocks(path, max_line=None):
    """The blocks of :func:`iter_counted_blocks`, without their line counts."""
    for block, _ in iter_counted_blocks(path, max_line):
        yield block


def split_lines(block):
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def iter_line_blocks(path):
    """Yield lists of lines (bytes, ``\\n`` removed) of a .jsonl or .jsonl.gz file (see
    :func:`iter_byte_blocks`)."""
    for block in iter_byte_blocks(path):
        yield split_lines(block)


def iter_lines(path, cap=None):
    """Lines of a file (``\\n`` kept), as iterating over the open binary file gives them. With ``cap``, as
    ``readline(cap)`` gives them: a longer line comes back as its first ``cap`` bytes, without ``\\n``."""
    for block in iter_byte_blocks(path, max_line=cap):
        pieces = block.split(b"\n")
        last = pieces.pop()
        for piece in pieces:
            yield piece + b"\n" if cap is None or len(piece) < cap else piece[:cap]
        if last:
            yield last if cap is None else last[:cap]


def count_lines(path):
    """Number of lines of a file (a last line without ``\\n`` counts)."""
    return sum(n for _, n in iter_counted_blocks(path))


def progress_bar(path, desc, enabled):
    """A tqdm bar counting lines (``None`` when not ``enabled``)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" lines", unit_scale=True, desc=desc, leave=False)

