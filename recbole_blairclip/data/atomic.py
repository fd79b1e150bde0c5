"""Write and read RecBole atomic files (FORMAT.md) and publish a dataset folder atomically.

A dataset is written into a hidden temporary folder next to its destination and renamed into place
only when every file is complete (:func:`staged_folder`), so an interrupted or failed conversion never
leaves a half-written dataset behind. Writing is deterministic: the same rows give byte-identical files
(UTF-8, ``\\n`` line ends, tab-separated, no quoting).
"""
import glob
import os
import shutil
import tempfile
from contextlib import contextmanager

from recbole_blairclip.errors import DatasetError

INTER_FIELDS = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
SEQ_FIELDS = INTER_FIELDS + ["item_id_list:token_seq"]
ITEM_FIELDS = ["item_id:token", "item_text:token_seq", "title:token_seq", "categories:token_seq",
               "store:token", "image_url:token"]
# part -> (file suffix, header): <name>.<suffix> in the dataset folder
PARTS = {
    "inter": ("inter", INTER_FIELDS),
    "train": ("train.inter", INTER_FIELDS),
    "train_seq": ("train_seq.inter", SEQ_FIELDS),
    "valid": ("valid.inter", SEQ_FIELDS),
    "test": ("test.inter", SEQ_FIELDS),
    "item": ("item", ITEM_FIELDS),
}


def atomic_path(folder, name, part):
    """Path of ``<folder>/<name>.<suffix>`` for a part key of :data:`PARTS`."""
    return os.path.join(folder, f"{name}.{PARTS[part][0]}")


def write_table(path, header, lines):
    """Write a header (list of ``field:type``) and an iterable of complete lines (each ending in
    ``\\n``, tab-separated) to ``path``."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        f.writelines(lines)


def read_table(path):
    """Read an atomic file: returns ``(header, rows)`` where header is the list of ``field:type`` and
    rows a list of lists of strings (one per column; missing trailing values are ``""``)."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: atomic file not found; run `blairclip convert` first")
    with open(path, encoding="utf-8", newline="\n") as f:
        header_line = f.readline()
        if not header_line:
            raise DatasetError(f"{path}: empty atomic file (no header line)")
        header = header_line.rstrip("\n").split("\t")
        width = len(header)
        rows = []
        for line in f:
            values = line.rstrip("\n").split("\t")
            if len(values) < width:
                values += [""] * (width - len(values))
            rows.append(values)
    return header, rows


def read_columns(path):
    """Read an atomic file as ``{field name: list of str}`` (types dropped from the names)."""
    header, rows = read_table(path)
    names = [h.split(":", 1)[0] for h in header]
    return {n: [r[k] for r in rows] for k, n in enumerate(names)}


def check_name(name):
    """A dataset name must be a plain folder name (no separators, not hidden, no whitespace)."""
    if not name or name != os.path.basename(name) or name.startswith(".") or any(c.isspace() for c in name):
        raise DatasetError(f"invalid dataset name {name!r}: use a plain folder name such as 'Appliances'")


def check_writable(out_dir):
    """Make sure ``out_dir`` is (or can be made) a folder we can write into; DatasetError otherwise."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise DatasetError(f"cannot write into output folder {out_dir}: {exc.strerror or exc}; "
                           "choose another --out") from None


def recover_replaced(out_dir, name):
    """Undo an interrupted replacement: when ``<out_dir>/<name>`` is missing but a copy moved aside by
    :func:`staged_folder` (``.<name>.old-<pid>``) is there, move it back; when both exist, the aside
    copy is stale and removed. Returns the recovered path or None."""
    dest = os.path.join(out_dir, name)
    recovered = None
    for old in sorted(glob.glob(os.path.join(glob.escape(out_dir), f".{glob.escape(name)}.old-*"))):
        if not os.path.exists(dest):
            os.replace(old, dest)
            recovered = dest
        else:
            shutil.rmtree(old, ignore_errors=True)
    return recovered


@contextmanager
def staged_folder(out_dir, name, force=False):
    """Yield a fresh temporary folder; on success it replaces ``<out_dir>/<name>``.

    An existing destination is only replaced with ``force=True`` (else DatasetError, before and after
    the work). On any exception the temporary folder is removed and the destination is untouched: the
    old copy is moved aside, the new one renamed in, and only then the old one deleted; an interrupt
    between the two renames moves the old copy back (and a killed run is recovered by the next one,
    :func:`recover_replaced`). Write errors (full disk, ...) become a one-line DatasetError.
    """
    check_name(name)
    dest = os.path.join(out_dir, name)
    if os.path.isdir(out_dir):
        recover_replaced(out_dir, name)
    if os.path.exists(dest) and not force:
        raise DatasetError(f"{dest} already exists; pass --force (force=True) to overwrite it")
    check_writable(out_dir)
    tmp = os.path.join(out_dir, f".{name}.tmp-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    old = None
    try:
        try:
            yield tmp
        except OSError as exc:
            raise DatasetError(f"cannot write {exc.filename or tmp}: {exc.strerror or exc}; "
                               f"nothing was written to {dest}") from None
        if os.path.exists(dest):
            if not force:
                raise DatasetError(f"{dest} appeared while converting; pass --force to overwrite it")
            old = os.path.join(out_dir, f".{name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            moved, old = old, None
            shutil.rmtree(moved, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        if old is not None and os.path.exists(old) and not os.path.exists(dest):
            os.replace(old, dest)  # interrupted between the two renames: the old dataset comes back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
