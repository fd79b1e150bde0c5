"""Bottom-layer file helpers: RecBole atomic files, complete-or-absent writes, JSON-ready values, sha256,
one-line errors.

Imports nothing from the rest of the package, so every layer may use it.
"""

import contextlib
import hashlib
import json
import math
import os
import threading
from pathlib import Path


def temp_name(path):
    """A temporary name beside ``path`` (same folder, so the final rename is atomic), unique per process
    and thread."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path to write; on success it replaces ``path``, on any error it is removed.

    An interrupted write therefore leaves whatever was at ``path`` before untouched.
    """
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text):
    """Write ``text`` (utf-8, newlines as given) to ``path`` through a temporary file."""
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return path


def write_bytes(path, data):
    """Write ``data`` to ``path`` through a temporary file."""
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def write_json(path, data, indent=2):
    """Write ``data`` as JSON (utf-8, trailing newline) to ``path`` through a temporary file."""
    return write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def json_ready(value):
    """A copy of a value that ``json.dumps`` writes as strict JSON and ``yaml.safe_dump`` as plain yaml: the
    project's one converter (results, configs, search records, best-config yaml).

    Rules: None, bool, int, str as they are; a float as it is, except NaN and ±inf, which become None (JSON
    has no NaN); numpy / torch scalars as their Python value (same rules); dict keys as str; tuples, lists
    and sets as lists; an enum (RecBole's ``ModelType``, ``InputType``, ...) as ``"ModelType.GENERAL"``
    (its integer value means nothing outside RecBole); anything else (devices, paths) as ``str(value)``.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return json_ready(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "name") and hasattr(type(value), "__members__"):  # Enum (ModelType, InputType, ...)
        return f"{type(value).__name__}.{value.name}"
    return str(value)


def _update_from_file(digest, path):
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest


def sha256_file(path):
    """Hex sha256 of a file's bytes."""
    return _update_from_file(hashlib.sha256(), path).hexdigest()


def sha256_text(text):
    """Hex sha256 of a string's utf-8 bytes."""
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def sha256_folder(folder):
    """Hex sha256 over the names and contents of a folder's top-level files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + b"\0")
            _update_from_file(digest, path)
    return digest.hexdigest()


def first_line(error):
    """The first line of an error's message (its type name when the message is empty), at most 300 chars."""
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def first_error_line(error):
    """The most telling line of an error text (its last 'SomethingError: ...' line), at most 300 chars."""
    text = str(error or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


# ---------------------------------------------------------------- RecBole atomic files
ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")  # RecBole's FeatureType names


def field_name(field):
    """``"item_id:token"`` -> ``"item_id"``."""
    return str(field).split(":", 1)[0]


def parse_atomic_header(line, path, error=ValueError):
    """The ``field:type`` list of an atomic file's first line; ``error`` (one line naming the file and
    line 1) when a field has no name or a type RecBole does not know."""
    header = line.rstrip("\r\n").split("\t")
    for field in header:
        name, _, kind = field.partition(":")
        if not name or kind not in ATOMIC_TYPES:
            raise error(f"{path}: line 1: header field {field!r} is not name:type with type one of "
                        f"{', '.join(ATOMIC_TYPES)}; fix the header (FORMAT.md)")
    return header


def read_atomic_header(path, error=ValueError):
    """The ``field:type`` list of the atomic file at ``path`` (see :func:`parse_atomic_header`)."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        line = fh.readline()
    if not line:
        raise error(f"{path}: empty atomic file (no header line)")
    return parse_atomic_header(line, path, error)


def read_atomic(path, error=ValueError):
    """Read an atomic file: ``(header, rows)``, header the ``field:type`` list and rows lists of strings
    (one per column; missing trailing values are ``""``)."""
    with open(path, encoding="utf-8", newline="\n") as fh:
        line = fh.readline()
        if not line:
            raise error(f"{path}: empty atomic file (no header line)")
        header = parse_atomic_header(line, path, error)
        width = len(header)
        rows = []
        for line in fh:
            values = line.rstrip("\n").split("\t")
            if len(values) < width:
                values += [""] * (width - len(values))
            rows.append(values)
    return header, rows


def write_atomic(path, header, lines):
    """Write an atomic file through a temporary name: a header (list of ``field:type``) and an iterable
    of complete lines (each ending in ``\\n``, tab-separated); UTF-8, ``\\n`` line ends, no quoting."""
    with replacing(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\t".join(header) + "\n")
            fh.writelines(lines)
    return path
