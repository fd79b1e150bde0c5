"""Feature files next to a dataset, and the one reader that verifies them.

In ``dataset_atomic/<name>/`` (row i = the i-th item of ``<name>.item``, in file order):

- ``<name>.<text-tag>.text.npy``         float32 ``[n_items, d_text]``
- ``<name>.<image-tag>.image.npy``       float32 ``[n_items, d_image]``, zero rows where no image
- ``<name>.<image-tag>.image_mask.npy``  bool ``[n_items]``, True where the item has an image
- ``<name>.features.json``               item id order, dims, encoder ids, revisions, pooling,
  normalisation, sha256 of ``<name>.item`` and of every npy file, missing images and why

:func:`load_features` is what models call: it checks every one of these against the ``.item`` file
and raises :class:`~recbole_blairclip.errors.DatasetError` (naming the file and what to do) on any
mismatch, missing file, wrong shape or NaN row.
"""
import contextlib
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recbole_blairclip.errors import DatasetError
from recbole_blairclip.io import field_name, replacing, sha256_file, write_json

FORMAT_VERSION = 1
RERUN = "rerun `blairclip features --dataset {dir}` to rebuild the features"


# ---------------------------------------------------------------- paths and hashing
def dataset_name(dataset_dir):
    """A dataset's name is its folder's name (``dataset_atomic/<name>/``)."""
    return Path(dataset_dir).resolve().name


def item_path(dataset_dir, name=None):
    dataset_dir = Path(dataset_dir)
    return dataset_dir / f"{name or dataset_name(dataset_dir)}.item"


def features_json_path(dataset_dir, name=None):
    dataset_dir = Path(dataset_dir)
    return dataset_dir / f"{name or dataset_name(dataset_dir)}.features.json"


def feature_file_names(name, text_tag=None, image_tag=None):
    """File names (no folder) for the text, image and image-mask arrays of the given encoder tags."""
    names = {}
    if text_tag:
        names["text"] = f"{name}.{text_tag}.text.npy"
    if image_tag:
        names["image"] = f"{name}.{image_tag}.image.npy"
        names["image_mask"] = f"{name}.{image_tag}.image_mask.npy"
    return names


# ---------------------------------------------------------------- the .item file
@dataclass
class ItemTable:
    """The columns of ``<name>.item`` as strings, in file order (header types stripped)."""

    path: Path
    sha256: str
    item_ids: list
    columns: dict = field(default_factory=dict)

    def column(self, name):
        """Values of a column (``item_text``, ``image_url``...), or empty strings when it is absent."""
        return self.columns.get(name, [""] * len(self.item_ids))


def read_items(path, columns=None):
    """Read an atomic ``.item`` file (FORMAT.md); ids must be present and unique.

    ``columns``: names (without ``:type``) to keep besides ``item_id``; None keeps every column.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: item file not found; convert the dataset first (blairclip convert)")
    try:
        usecols = None
        if columns is not None:
            keep = set(columns) | {"item_id"}
            usecols = lambda header: field_name(header) in keep  # noqa: E731
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                            quoting=csv.QUOTE_NONE, encoding="utf-8", usecols=usecols)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read as a tab-separated atomic file ({exc}); regenerate it") from exc
    columns = {field_name(c): frame[c].tolist() for c in frame.columns}
    if "item_id" not in columns:
        raise DatasetError(f"{path}: no item_id:token column in the header (columns: {list(frame.columns)}); "
                           "the .item file must follow FORMAT.md")
    ids = columns["item_id"]
    for i, item in enumerate(ids):
        if not item:
            raise DatasetError(f"{path}: line {i + 2}: empty item_id; regenerate the .item file")
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i, item in enumerate(ids):
            if item in seen:
                dup = (i + 2, item)
                break
            seen.add(item)
        raise DatasetError(f"{path}: line {dup[0]}: duplicate item_id '{dup[1]}'; each item must appear once")
    return ItemTable(path, sha256_file(path), ids, columns)


# ---------------------------------------------------------------- writing
def write_features(dataset_dir, items, text=None, text_meta=None, image=None, image_mask=None, image_meta=None,
                   extra=None):
    """Write the arrays and ``<name>.features.json`` for ``items`` (an :class:`ItemTable`).

    Every file is written under a temporary name first; the arrays are renamed into place, then the json
    (which holds their sha256), so a reader never accepts a half-written set. Returns the json's path.
    """
    dataset_dir = Path(dataset_dir)
    name = items.path.name[: -len(".item")]
    n = len(items.item_ids)
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": name,
        "item_file": items.path.name,
        "item_file_sha256": items.sha256,
        "num_items": n,
        "row_order": f"row i = the i-th item of {items.path.name}, in file order",
        "item_ids": list(items.item_ids),
        "text": None,
        "image": None,
    }
    meta.update(extra or {})
    arrays = []
    if text is not None:
        text = np.ascontiguousarray(text, dtype=np.float32)
        if text.shape[0] != n:
            raise ValueError(f"text has {text.shape[0]} rows for {n} items")
        names = feature_file_names(name, text_tag=text_meta["tag"])
        arrays.append((names["text"], text))
        meta["text"] = dict(text_meta, file=names["text"], dim=int(text.shape[1]), dtype="float32")
    if image is not None:
        image = np.ascontiguousarray(image, dtype=np.float32)
        image_mask = np.ascontiguousarray(image_mask, dtype=bool)
        if image.shape[0] != n or image_mask.shape != (n,):
            raise ValueError(f"image rows {image.shape[0]} / mask {image_mask.shape} for {n} items")
        names = feature_file_names(name, image_tag=image_meta["tag"])
        arrays.append((names["image"], image))
        arrays.append((names["image_mask"], image_mask))
        meta["image"] = dict(image_meta, file=names["image"], mask_file=names["image_mask"],
                             dim=int(image.shape[1]), dtype="float32",
                             num_with_image=int(image_mask.sum()), num_missing=int(n - image_mask.sum()))
    with contextlib.ExitStack() as stack:  # every array renamed into place only once all are written
        checksums = {}
        for fname, arr in arrays:
            tmp = stack.enter_context(replacing(dataset_dir / fname))
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
            checksums[fname] = sha256_file(tmp)
        for section in ("text", "image"):
            if meta[section] is not None:
                meta[section]["sha256"] = checksums[meta[section]["file"]]
                if section == "image":
                    meta[section]["mask_sha256"] = checksums[meta[section]["mask_file"]]
    json_path = features_json_path(dataset_dir, name)
    write_json(json_path, meta, indent=1)
    return json_path


# ---------------------------------------------------------------- reading
@dataclass(frozen=True)
class Features:
    """Verified features of a dataset; row i belongs to ``item_ids[i]`` (the ``.item`` file order).

    text: float32 ``[n, d_text]`` (None when not extracted); image: float32 ``[n, d_image]`` or None;
    image_mask: bool ``[n]`` (True = the item has an image) or None; meta: the parsed features.json.
    """

    item_ids: list
    text: np.ndarray
    image: np.ndarray
    image_mask: np.ndarray
    meta: dict

    @property
    def text_dim(self):
        return None if self.text is None else int(self.text.shape[1])

    @property
    def image_dim(self):
        return None if self.image is None else int(self.image.shape[1])

    def aligned(self, tokens, pad_token="[PAD]"):
        """Rows reordered to ``tokens`` (e.g. RecBole's ``dataset.field2id_token['item_id']``).

        Returns ``(text, image, image_mask)`` with one row per token, in token order; ``pad_token`` gets a
        zero row (mask False). A token that is not an item of the features raises DatasetError.
        """
        position = {item: i for i, item in enumerate(self.item_ids)}
        index, pad = [], []
        for k, token in enumerate(tokens):
            if token == pad_token:
                index.append(0)
                pad.append(k)
                continue
            if token not in position:
                raise DatasetError(f"item '{token}' is not in {self.meta.get('item_file')} of the features "
                                   f"({self.meta.get('dataset')}.features.json); the features belong to another "
                                   "version of the dataset: rerun `blairclip features` on it")
            index.append(position[token])
        index = np.asarray(index, dtype=np.int64)

        def take(arr):
            if arr is None:
                return None
            out = arr[index] if len(index) else arr[:0]
            if pad:
                out = np.array(out, copy=True)
                out[pad] = 0
            return out

        return take(self.text), take(self.image), take(self.image_mask)


def _load_npy(path, dataset_dir, mmap):
    if not path.is_file():
        raise DatasetError(f"{path}: feature file missing; " + RERUN.format(dir=dataset_dir))
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read ({exc}); " + RERUN.format(dir=dataset_dir)) from exc


def _check_rows(arr, path, section, expect_rows, expect_dim, dataset_dir, ids):
    if arr.ndim != 2 or arr.shape[0] != expect_rows or (expect_dim is not None and arr.shape[1] != expect_dim):
        raise DatasetError(f"{path}: shape {tuple(arr.shape)} but features.json says [{expect_rows}, {expect_dim}] "
                           f"for the {section} features; " + RERUN.format(dir=dataset_dir))
    if arr.dtype != np.float32:
        raise DatasetError(f"{path}: dtype {arr.dtype}, expected float32; " + RERUN.format(dir=dataset_dir))
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        shown = ", ".join(f"row {r} (item {ids[r]})" for r in bad[:5])
        raise DatasetError(f"{path}: {bad.size} rows contain NaN or infinite values: {shown}; "
                           + RERUN.format(dir=dataset_dir))


def load_features(dataset_dir, name=None, *, item_ids=None, require_text=True, require_image=False,
                  text_tag=None, image_tag=None, verify_item_file=True, verify_checksums=True, mmap=False):
    """Load and verify the features of ``dataset_atomic/<name>/``.

    Args:
        dataset_dir: the dataset folder (``dataset_atomic/<name>``); ``name`` defaults to its base name.
        item_ids: optional list the caller expects, in the same order (checked when given).
        require_text / require_image: raise when that part was not extracted.
        text_tag / image_tag: when given, the encoder tags the features must have been made with
            (e.g. ``blair-roberta-base``, ``clip-vit-base-patch32``, ``pixels16``).
        verify_item_file: check the sha256 and ids of ``<name>.item`` against features.json (default).
        verify_checksums: check the sha256 of each npy file against features.json (default).
        mmap: memory-map the arrays (read-only) instead of reading them.

    Returns:
        :class:`Features`. Raises :class:`DatasetError` naming the file and what to do on any missing
        file, hash or id mismatch, wrong shape or dtype, or NaN/inf row.
    """
    dataset_dir = Path(dataset_dir)
    name = name or dataset_name(dataset_dir)
    json_path = features_json_path(dataset_dir, name)
    if not json_path.is_file():
        raise DatasetError(f"{json_path}: no features for dataset '{name}'; run "
                           f"`blairclip features --dataset {dataset_dir}` first")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        ids = list(meta["item_ids"])
        n = int(meta["num_items"])
    except Exception as exc:
        raise DatasetError(f"{json_path}: unreadable or incomplete ({exc}); " + RERUN.format(dir=dataset_dir)) from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{json_path}: format_version {meta.get('format_version')} is not {FORMAT_VERSION}; "
                           + RERUN.format(dir=dataset_dir))
    if len(ids) != n:
        raise DatasetError(f"{json_path}: {len(ids)} item ids but num_items {n}; " + RERUN.format(dir=dataset_dir))
    if verify_item_file:
        ipath = item_path(dataset_dir, name)
        if not ipath.is_file():
            raise DatasetError(f"{ipath}: item file missing, so the features in {json_path.name} cannot be "
                               "checked; restore the .item file or reconvert the dataset")
        digest = sha256_file(ipath)
        if digest != meta.get("item_file_sha256"):
            raise DatasetError(f"{ipath}: changed since the features were extracted (sha256 {digest[:12]}... "
                               f"vs {str(meta.get('item_file_sha256'))[:12]}... in {json_path.name}); "
                               + RERUN.format(dir=dataset_dir))
        file_ids = read_items(ipath, columns=()).item_ids
        if file_ids != ids:
            first = next((i for i, (a, b) in enumerate(zip(file_ids, ids)) if a != b), min(len(ids), len(file_ids)))
            raise DatasetError(f"{json_path}: item ids differ from {ipath.name} (first difference at row {first}, "
                               f"{len(ids)} vs {len(file_ids)} items); " + RERUN.format(dir=dataset_dir))
    if item_ids is not None and list(item_ids) != ids:
        raise DatasetError(f"{json_path}: item ids are not the ones expected by the caller "
                           f"({len(ids)} vs {len(list(item_ids))} items); " + RERUN.format(dir=dataset_dir))

    def section_array(section, file_key, sha_key):
        info = meta.get(section)
        path = dataset_dir / info[file_key]
        if verify_checksums and path.is_file() and sha256_file(path) != info.get(sha_key):
            raise DatasetError(f"{path}: contents differ from the sha256 recorded in {json_path.name} (the file was "
                               "replaced or a run was interrupted); " + RERUN.format(dir=dataset_dir))
        return path, _load_npy(path, dataset_dir, mmap)

    for section, wanted in (("text", text_tag), ("image", image_tag)):
        have = (meta.get(section) or {}).get("tag")
        if wanted is not None and have != wanted:
            raise DatasetError(f"{json_path}: {section} features were made with encoder tag '{have}', not '{wanted}'; "
                               f"rerun `blairclip features --dataset {dataset_dir}` with the {section} encoder you "
                               "want, or change the configured encoder")
    text = image = mask = None
    if meta.get("text"):
        path, text = section_array("text", "file", "sha256")
        _check_rows(text, path, "text", n, meta["text"].get("dim"), dataset_dir, ids)
    elif require_text:
        raise DatasetError(f"{json_path}: no text features; " + RERUN.format(dir=dataset_dir))
    if meta.get("image"):
        path, image = section_array("image", "file", "sha256")
        _check_rows(image, path, "image", n, meta["image"].get("dim"), dataset_dir, ids)
        mpath, mask = section_array("image", "mask_file", "mask_sha256")
        if mask.shape != (n,) or mask.dtype != np.bool_:
            raise DatasetError(f"{mpath}: shape {tuple(mask.shape)} dtype {mask.dtype}, expected bool [{n}]; "
                               + RERUN.format(dir=dataset_dir))
    elif require_image:
        raise DatasetError(f"{json_path}: no image features (extracted with --image-encoder none); "
                           + RERUN.format(dir=dataset_dir) + " with an image encoder")
    return Features(ids, text, image, mask, meta)
