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
from recbole_blairclip.io import field_name, read_atomic, write_atomic

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


def read_table(path):
    """Read an atomic file: ``(header, rows)`` (see :func:`recbole_blairclip.io.read_atomic`)."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: atomic file not found; run `blairclip convert` first")
    return read_atomic(path, DatasetError)


def read_columns(path):
    """Read an atomic file as ``{field name: list of str}`` (types dropped from the names)."""
    header, rows = read_table(path)
    return {field_name(h): [r[k] for r in rows] for k, h in enumerate(header)}


def write_parts(folder, name, base, seq_lines, item_lines, train_idx, train_seq_idx, valid_idx, test_idx):
    """Write a split dataset's six atomic files into ``folder``: ``base`` holds the interaction lines
    (no line end), ``seq_lines(indices)`` yields the history lines of the sequential parts."""
    path = lambda key: atomic_path(folder, name, key)  # noqa: E731
    write_atomic(path("inter"), PARTS["inter"][1], (b + "\n" for b in base))
    write_atomic(path("train"), PARTS["train"][1], (base[j] + "\n" for j in train_idx.tolist()))
    write_atomic(path("train_seq"), PARTS["train_seq"][1], seq_lines(train_seq_idx.tolist()))
    write_atomic(path("valid"), PARTS["valid"][1], seq_lines(valid_idx.tolist()))
    write_atomic(path("test"), PARTS["test"][1], seq_lines(test_idx.tolist()))
    write_atomic(path("item"), PARTS["item"][1], item_lines)


def check_name(name):
    """A dataset name must be a plain folder name (no separators, not hidden, no whitespace)."""
    if not name or name != os.path.basename(name) or name.startswith(".") or any(c.isspace() for c in name):
        raise DatasetError(f"invalid dataset name {name!r}: use a plain folder name such as 'Appliances'")


def prepare_output(out, name, force, max_item_list_length, min_user_inter):
    """The checks every converter runs before it reads its input; returns ``<out>/<name>``.

    A bad name or setting, an unwritable ``out`` or an existing dataset (without ``force``) fails at once
    with one line, and a dataset left aside by a replacement that was killed is put back first."""
    check_name(name)
    if max_item_list_length < 1:
        raise DatasetError(f"max_item_list_length must be >= 1, got {max_item_list_length}")
    if min_user_inter < 2:
        raise DatasetError(f"min_user_inter must be >= 2, got {min_user_inter}")
    check_writable(out)
    recover_replaced(out, name)
    dest = os.path.join(out, name)
    if os.path.exists(dest) and not force:
        raise DatasetError(f"{dest} already exists; pass --force (force=True) to overwrite it")
    return dest


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
