"""``extract_features``: text and image features for every item of a dataset, resumable.

Flow for ``dataset_atomic/<name>/``:

1. read ``<name>.item`` (ids, ``item_text``, ``image_url``) and hash it;
2. text: encode ``item_text`` in chunks of ``chunk_size`` items;
3. images: find each item's image (``images`` folder, ``<dataset>/images/`` when present, or
   ``download`` from ``image_url`` into a cache), decode, encode in chunks; missing or broken images
   give a zero row, a false mask entry and a reason (counted, listed in features.json, never fatal);
4. write the arrays and ``<name>.features.json`` under temporary names, rename them into place.

Each finished chunk is saved under ``<dataset>/.features-partial/<stage>-<key>/``, where the key hashes
the ``.item`` file, the encoder description and the chunk size: a run that is interrupted (crash,
Ctrl-C, lost machine) and started again with the same arguments skips the chunks already done. The
partial folder is removed once the final files are in place.
"""
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.features import sources
from recbole_blairclip.features.pretrained import DEFAULT_IMAGE_ENCODER, DEFAULT_TEXT_ENCODER
from recbole_blairclip.features.store import load_features, read_items, write_features
from recbole_blairclip.io import replacing, sha256_text

logger = logging.getLogger(__name__)
PARTIAL_DIR = ".features-partial"


def _version(package):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _key(*parts):
    return sha256_text(json.dumps(parts, sort_keys=True, default=str))[:16]


def _save_chunk(path, **arrays):
    with replacing(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def run_chunks(work_dir, n, chunk_size, compute, desc, progress=True):
    """Compute ``compute(start, stop) -> dict of arrays`` for every chunk of ``range(n)``, resumably.

    Chunks already saved in ``work_dir`` (``chunk_<start>.npz``) are loaded instead of computed.
    Returns the per-key concatenation of all chunks, in row order.
    """
    from tqdm.auto import tqdm

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    bar = tqdm(total=n, desc=desc, unit="item", disable=not progress)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        path = work_dir / f"chunk_{start:09d}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    part = {k: data[k] for k in data.files}
            except Exception:  # a damaged chunk is recomputed
                part = None
            if part is not None and all(len(v) == stop - start for v in part.values()):
                parts.append(part)
                bar.update(stop - start)
                continue
        part = compute(start, stop)
        _save_chunk(path, **part)
        parts.append(part)
        bar.update(stop - start)
    bar.close()
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def text_chunk(enc, texts):
    """One chunk of text features: ``{"x": [len(texts), dim] float32}``."""
    return {"x": enc.encode(texts)}


def image_chunk(enc, refs, image_batch_size=64, load_workers=4, max_pixels=sources.DEFAULT_MAX_IMAGE_PIXELS):
    """One chunk of image features from ``refs`` = [(path or None, reason)] (a row per item):
    ``{"x": raw features, "mask": decoded, "reason": why not}``. Files are decoded (and the encoder's CPU
    step run) a batch each by ``load_workers`` threads ahead of the model; images over ``max_pixels`` are
    refused before decoding."""
    from recbole_blairclip.features.image import prefetch_map

    raw_dim = getattr(enc, "raw_dim", enc.dim)
    draft = getattr(enc, "draft_size", None)
    prepare = getattr(enc, "prepare", None) or (lambda imgs: imgs)
    encode_prepared = getattr(enc, "encode_prepared", None) or enc.encode
    step = max(1, int(getattr(enc, "batch_size", image_batch_size) or image_batch_size))

    def load(span):
        """Decode one batch of files and run the encoder's CPU step (in a loader thread)."""
        paths, reasons = span
        present, images = [], []
        for k, path in enumerate(paths):
            if path is None:
                continue
            img, why = sources.open_image(path, draft, max_pixels=max_pixels)
            if img is None:
                reasons[k] = why
            else:
                present.append(k)
                images.append(img)
        return present, (prepare(images) if images else None), reasons

    spans = [([p for p, _ in refs[s:s + step]], [r for _, r in refs[s:s + step]]) for s in range(0, len(refs), step)]
    x = np.zeros((len(refs), raw_dim), dtype=np.float32)
    ok = np.zeros(len(refs), dtype=bool)
    reasons = []
    for s, (present, prepared, why) in zip(range(0, len(refs), step), prefetch_map(load, spans, load_workers)):
        if present:
            rows = [s + k for k in present]
            x[rows] = encode_prepared(prepared)
            ok[rows] = True
        reasons.extend(why)
    return {"x": x, "mask": ok, "reason": np.array(reasons, dtype=str)}


def _locate_images(items, images, download, cache_dir, dataset_dir, workers, timeout, retries, max_bytes, progress,
                   deadline=sources.DEFAULT_DEADLINE):
    """``({item_id: ImageRef}, description of the source)``."""
    ids = items.item_ids
    if download:
        if images:
            raise ConfigError("pass either --images DIR or --download, not both")
        cache = Path(cache_dir) if cache_dir else dataset_dir / f"{dataset_dir.name}.image_cache"
        urls = dict(zip(ids, items.column("image_url")))
        if "image_url" not in items.columns:
            raise DatasetError(f"{items.path}: no image_url:token column, so images cannot be downloaded; "
                               "pass --images DIR instead")
        refs = sources.download_images(urls, cache, workers=workers, timeout=timeout, retries=retries,
                                       max_bytes=max_bytes, progress=progress, deadline=deadline)
        return refs, {"source": "download", "cache_dir": str(cache)}
    folder = Path(images) if images else dataset_dir / "images"
    if not folder.is_dir():
        if images:
            raise ConfigError(f"--images {images}: no such folder")
        raise ConfigError(f"no image source for {dataset_dir}: pass --images DIR (files named <item_id>.jpg/.png...), "
                          "--download (from image_url), or --image-encoder none")
    return sources.locate_in_folder(ids, folder), {"source": "folder", "folder": str(folder.resolve())}


def extract_features(dataset_dir, text_encoder=DEFAULT_TEXT_ENCODER, image_encoder=DEFAULT_IMAGE_ENCODER, *,
                     images=None, download=False, cache_dir=None, text_field="item_text", pooling=None,
                     max_length=None, text_revision=None, image_revision=None, pixels_size=16, pixels_pca=None,
                     batch_size=32, image_batch_size=64, device=None, fp16=True, chunk_size=1024,
                     download_workers=8, download_timeout=10.0, download_retries=2,
                     max_image_bytes=sources.DEFAULT_MAX_IMAGE_BYTES, load_workers=4, threads=None, progress=True,
                     download_deadline=sources.DEFAULT_DEADLINE, max_image_pixels=sources.DEFAULT_MAX_IMAGE_PIXELS,
                     address=None, ray_init=None, ray_actors=None):
    """Extract text and image features for every item of ``dataset_dir`` (``dataset_atomic/<name>``).

    Args:
        text_encoder: hub id, folder or alias (``minilm``) — or a ready encoder object with
            ``encode(texts)``, ``describe()``, ``tag``, ``dim``; None skips text features.
        image_encoder: CLIP hub id or folder, ``pixels``, or a ready encoder object with ``encode(images)``,
            ``finalize(x, mask)``, ``describe()``, ``tag``, ``dim``; None or ``none`` skips images.
        images: folder of images named ``<item_id>.<ext>``; default ``<dataset_dir>/images`` when present.
        download: fetch ``image_url`` into ``cache_dir`` (default ``<dataset_dir>/<name>.image_cache``).
        text_field: the ``.item`` column to encode. pooling, max_length, text_revision: see TextEncoder.
        image_revision, pixels_size, pixels_pca: see the image encoders.
        batch_size / image_batch_size: per forward pass. device: None = CUDA when available. fp16: on CUDA.
        chunk_size: items per saved chunk (the unit of resumption).
        download_workers, download_timeout (s, per read), download_deadline (s, per image), download_retries,
            max_image_bytes: download limits.
        max_image_pixels: images with more pixels are refused before decoding (a missing image).
        load_workers: threads decoding image files and running the image encoder's CPU step, a batch each,
            ahead of the model.
        threads: torch CPU threads (``torch.set_num_threads``) for this process; None leaves torch's default.
        progress: show tqdm bars.
        address: run the encoders on a Ray cluster (``auto``, ``ray://host:10001``, ``host:port``, or
            ``local`` for a Ray started in this process): Ray Data hands the missing chunks to encoder
            actors (a GPU each when the cluster has GPUs); this process saves each finished chunk, so the
            run resumes as a local one does, and writes the same files (see ``features/distributed.py``).
        ray_init: extra ``ray.init`` keyword arguments (e.g. ``num_cpus``) with ``address``.
        ray_actors: encoder actors with ``address`` (default one per GPU, else one per CPU minus one).

    Returns:
        the written features, re-read and verified by :func:`~recbole_blairclip.features.store.load_features`.
    """
    from recbole_blairclip.features.image import build_image_encoder
    from recbole_blairclip.features.text import TextEncoder

    started = time.time()
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"{dataset_dir}: dataset folder not found; convert a dataset into dataset_atomic/<name>/")
    name = dataset_dir.resolve().name
    items = read_items(dataset_dir / f"{name}.item")
    n = len(items.item_ids)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    text_encoder, image_encoder = (None if isinstance(e, str) and e.strip().lower() == "none" else e
                                   for e in (text_encoder, image_encoder))
    if text_encoder is None and image_encoder is None:
        raise ConfigError("nothing to extract: both the text and the image encoder are none")
    if text_encoder is not None and text_field not in items.columns:
        raise DatasetError(f"{items.path}: no '{text_field}' column to encode (columns: {sorted(items.columns)})")
    ray_started = False
    if address is not None:  # one Ray connection for both stages
        from recbole_blairclip.features.distributed import connect

        ray_started = connect(address, ray_init)
    try:
        partial_root = dataset_dir / PARTIAL_DIR
        used_dirs = []

        text = text_meta = None
        if text_encoder is not None:
            enc = text_encoder if not isinstance(text_encoder, str) else TextEncoder(
                text_encoder, pooling=pooling, max_length=max_length, batch_size=batch_size, device=device,
                fp16=fp16, revision=text_revision)
            text_meta = dict(enc.describe(), field=text_field)
            work = partial_root / f"text-{_key(items.sha256, text_meta, chunk_size)}"
            used_dirs.append(work)
            texts = items.column(text_field)
            if address is not None:  # every missing chunk computed by encoder actors, saved here
                from recbole_blairclip.features.distributed import run_chunks_on_ray

                spec = (text_encoder, dict(pooling=pooling, max_length=max_length, batch_size=batch_size, fp16=fp16,
                                           revision=text_revision))
                run_chunks_on_ray(address, work, n, chunk_size, "text", spec, lambda a, b: {"texts": texts[a:b]},
                                  threads=threads, progress=progress, ray_init=ray_init, actors=ray_actors)
            result = run_chunks(work, n, chunk_size, lambda a, b: text_chunk(enc, texts[a:b]),
                                desc=f"text {enc.tag}", progress=progress)
            text = result["x"] if n else np.zeros((0, enc.dim), np.float32)

        image = mask = image_meta = None
        if image_encoder is not None:
            enc = image_encoder if not isinstance(image_encoder, str) else build_image_encoder(
                image_encoder, pixels_size=pixels_size, pixels_pca=pixels_pca, batch_size=image_batch_size,
                device=device, fp16=fp16, revision=image_revision)
            refs, source_meta = _locate_images(items, images, download, cache_dir, dataset_dir, download_workers,
                                               download_timeout, download_retries, max_image_bytes, progress,
                                               deadline=download_deadline)
            desc = enc.describe()
            work = partial_root / f"image-{_key(items.sha256, desc, source_meta, chunk_size)}"
            used_dirs.append(work)
            chunk_refs = lambda a, b: [(refs[i].path, refs[i].reason or "") for i in items.item_ids[a:b]]  # noqa: E731
            compute = lambda a, b: image_chunk(enc, chunk_refs(a, b), image_batch_size, load_workers,  # noqa: E731
                                               max_image_pixels)
            if address is not None:
                from recbole_blairclip.features.distributed import run_chunks_on_ray

                spec = (image_encoder, dict(pixels_size=pixels_size, pixels_pca=pixels_pca, batch_size=image_batch_size,
                                            fp16=fp16, revision=image_revision))
                run_chunks_on_ray(address, work, n, chunk_size, "image", spec,
                                  lambda a, b: {"refs": chunk_refs(a, b), "image_batch_size": image_batch_size,
                                                "load_workers": load_workers, "max_pixels": max_image_pixels},
                                  threads=threads, progress=progress, ray_init=ray_init, actors=ray_actors)
            result = run_chunks(work, n, chunk_size, compute, desc=f"image {enc.tag}", progress=progress)
            if n:
                mask = result["mask"].astype(bool)
                image = enc.finalize(result["x"], mask)
                reasons = result["reason"].tolist()
            else:
                mask, image, reasons = np.zeros(0, bool), np.zeros((0, enc.dim), np.float32), []
            missing = {items.item_ids[i]: reasons[i] or "missing" for i in np.flatnonzero(~mask)}
            counts = {}
            for why in missing.values():
                key = why.split(":")[0]
                counts[key] = counts.get(key, 0) + 1
            image_meta = dict(desc, **source_meta, missing_reasons=counts, missing=missing)
            if missing:
                logger.warning("%d of %d items have no usable image (%s)", len(missing), n,
                               ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))

        extra = {"created_unix": round(time.time(), 3), "seconds": round(time.time() - started, 3),
                 "versions": {pkg: _version(pkg) for pkg in ("transformers", "torch", "numpy", "pillow")}}
        write_features(dataset_dir, items, text, text_meta, image, mask, image_meta, extra=extra)
        for work in used_dirs:
            shutil.rmtree(work, ignore_errors=True)
        try:
            partial_root.rmdir()
        except OSError:
            pass
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    return load_features(dataset_dir, name, require_text=text_encoder is not None)
