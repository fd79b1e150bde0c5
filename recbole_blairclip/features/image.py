"""Image embeddings: a CLIP checkpoint, or the weight-free ``pixels`` thumbnails.

Both encoders take a list of RGB ``PIL.Image`` objects (the images that exist; missing ones are
handled by :mod:`recbole_blairclip.features.extract`) and return float32 rows: ``encode(images)``, or in
two steps ``prepare(images)`` (CPU work, thread-safe, run by extraction in loader threads next to image
decoding) then ``encode_prepared(batch)`` (the model). ``finalize(x, mask)`` is
called once on the whole ``[n_items, dim]`` matrix after every chunk is done (identity for CLIP; PCA for
``pixels`` when asked), so chunked, resumable extraction gives the same result as one pass.

- :class:`ClipImageEncoder` loads any transformers CLIP-style checkpoint (hub id or folder) with its own
  image processor and returns ``get_image_features(...).pooler_output`` (the projected image embedding
  in transformers 5), L2-normalised. fp16 on CUDA, ``torch.inference_mode``, batches.
- :class:`PixelsImageEncoder` (tag ``pixels<size>`` or ``pixels<size>-pca<k>``) needs no weights: each
  image is centre-cropped to a square, resized to ``size x size`` RGB (bicubic), scaled to [0, 1] and
  flattened (``3 * size * size`` values, channel last); optionally PCA-reduced (scikit-learn, fitted on
  the items that have an image) to ``pca_dim`` values; then L2-normalised. It is a crude colour/layout
  descriptor, named as what it is, for CPU-only and offline runs.
"""
import os

import numpy as np

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features.pretrained import (
    DEFAULT_IMAGE_ENCODER, load_pretrained, pick_device, resolve_source,
)

PIXELS = "pixels"


def _l2(x):
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class ClipImageEncoder:
    """CLIP image tower: ``encode(images) -> float32 [n, projection_dim]``.

    Args:
        name: hub id or local folder of a CLIP-style checkpoint (a model with ``get_image_features``).
        batch_size: images per forward pass. device / fp16 / revision / normalize / tag: as TextEncoder.
        preprocess_workers: threads running the image processor on the next batches while the model
            runs on the current one (None = up to 4, from the CPU count); results do not depend on it.
    """

    kind = "image"

    def __init__(self, name=DEFAULT_IMAGE_ENCODER, *, batch_size=64, device=None, fp16=True, revision=None,
                 normalize=True, tag=None, preprocess_workers=None):
        import torch
        from transformers import AutoImageProcessor, AutoModel

        if batch_size < 1:
            raise ConfigError(f"image batch size must be >= 1, got {batch_size}")
        self.source = resolve_source(name, revision, role="image encoder", option="--image-encoder", tag=tag)
        self.device = pick_device(device)
        self.dtype = torch.float16 if (fp16 and self.device.type == "cuda") else torch.float32
        self.processor = load_pretrained(self.source, AutoImageProcessor, "image processor")
        model = load_pretrained(self.source, AutoModel, "model weights", dtype=self.dtype)
        if not hasattr(model, "get_image_features"):
            raise ConfigError(f"image encoder {self.source.name} is a {type(model).__name__}, which has no "
                              "get_image_features; pass a CLIP checkpoint (e.g. openai/clip-vit-base-patch32) "
                              "or --image-encoder pixels")
        self.model = model.to(self.device).eval()
        cfg = self.model.config
        self.dim = int(getattr(cfg, "projection_dim", 0) or self.encode([_probe_image()]).shape[1])
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.tag = self.source.tag
        self.preprocess_workers = int(preprocess_workers or min(4, os.cpu_count() or 1))

    def describe(self):
        """What produced the rows (stored in ``<name>.features.json``)."""
        return {
            "kind": "clip",
            "encoder": self.source.name,
            "location": self.source.location if not self.source.local else None,
            "revision": self.source.revision,
            "tag": self.tag,
            "pooling": "get_image_features.pooler_output (projected image embedding)",
            "normalization": "l2" if self.normalize else "none",
            "dim": self.dim,
            "dtype_run": str(self.dtype).replace("torch.", ""),
        }

    def prepare(self, images):
        """CPU step (thread-safe): the processor's pixel tensor for a list of RGB PIL images."""
        return self.processor(images=list(images), return_tensors="pt")["pixel_values"]

    def encode_prepared(self, pixels):
        """Model step: rows for a tensor from :meth:`prepare` (split into ``batch_size`` pieces)."""
        import torch

        batch_size = getattr(self, "batch_size", 64)
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                batch = pixels[start:start + batch_size].to(self.device, self.dtype)
                out = self.model.get_image_features(pixel_values=batch)
                emb = getattr(out, "pooler_output", out)  # transformers 5: output object; 4.x: tensor
                chunks.append(emb.float().cpu().numpy())
        x = np.concatenate(chunks).astype(np.float32, copy=False)
        return _l2(x) if getattr(self, "normalize", True) else x

    def encode(self, images):
        """Embed RGB PIL images; row i is image i. Returns float32 ``[len(images), dim]``.

        The processor runs on the next batches in threads while the model runs on the current one.
        """
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch_size = getattr(self, "batch_size", 64)
        batches = [list(images[s:s + batch_size]) for s in range(0, len(images), batch_size)]
        workers = getattr(self, "preprocess_workers", 1)
        return np.concatenate([self.encode_prepared(p) for p in prefetch_map(self.prepare, batches, workers)])

    def finalize(self, x, mask):
        """Whole-matrix step after all chunks: nothing for CLIP."""
        return x


def prefetch_map(fn, items, workers):
    """``map(fn, items)`` in order, computing up to ``workers`` items ahead in threads."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _probe_image():
    from PIL import Image

    return Image.new("RGB", (32, 32))


class PixelsImageEncoder:
    """Weight-free thumbnails: ``size x size`` RGB in [0, 1], optionally PCA to ``pca_dim``, L2-normalised.

    ``encode`` returns the raw thumbnails (``3 * size * size`` values); ``finalize`` applies PCA (fitted
    with a fixed seed on the rows whose mask is true) and the normalisation, and zeroes missing rows.
    """

    kind = "image"

    def __init__(self, size=16, pca_dim=None, normalize=True, tag=None):
        if int(size) < 1:
            raise ConfigError(f"pixels size must be >= 1, got {size}")
        if pca_dim is not None and int(pca_dim) < 1:
            raise ConfigError(f"pixels PCA dimension must be >= 1, got {pca_dim}")
        self.size = int(size)
        self.pca_dim = int(pca_dim) if pca_dim else None
        self.normalize = bool(normalize)
        self.raw_dim = 3 * self.size * self.size
        self.dim = self.pca_dim or self.raw_dim
        self.tag = tag or (f"pixels{self.size}" + (f"-pca{self.pca_dim}" if self.pca_dim else ""))
        self.draft_size = (self.size * 4, self.size * 4)  # JPEG decoders may skip detail below this

    def describe(self):
        """What produced the rows (stored in ``<name>.features.json``)."""
        return {
            "kind": PIXELS,
            "encoder": PIXELS,
            "revision": None,
            "tag": self.tag,
            "pooling": f"centre square crop, bicubic resize to {self.size}x{self.size} RGB, /255, flattened "
                       "(channel last)" + (f", PCA to {self.pca_dim} (scikit-learn, fitted on items with "
                                           "an image, random_state=0)" if self.pca_dim else ""),
            "normalization": "l2" if self.normalize else "none",
            "dim": self.dim,
            "size": self.size,
            "pca_dim": self.pca_dim,
        }

    def prepare(self, images):
        """Raw thumbnails: float32 ``[len(images), 3 * size * size]`` in [0, 1] (thread-safe)."""
        from PIL import Image, ImageOps

        out = np.zeros((len(images), self.raw_dim), dtype=np.float32)
        for i, img in enumerate(images):
            thumb = ImageOps.fit(img.convert("RGB"), (self.size, self.size), method=Image.Resampling.BICUBIC)
            out[i] = np.asarray(thumb, dtype=np.float32).reshape(-1) / 255.0
        return out

    def encode_prepared(self, thumbnails):
        """Nothing left to do per batch: PCA and normalisation happen in :meth:`finalize`."""
        return thumbnails

    def encode(self, images):
        """Raw thumbnails for a list of PIL images (see :meth:`prepare`)."""
        return self.encode_prepared(self.prepare(images))

    def finalize(self, x, mask):
        """PCA (when asked) fitted on the rows with an image, then L2; rows without an image stay zero."""
        mask = np.asarray(mask, dtype=bool)
        out = np.zeros((x.shape[0], self.dim), dtype=np.float32)
        present = x[mask].astype(np.float64)
        if present.shape[0] == 0:
            return out
        if self.pca_dim:
            from sklearn.decomposition import PCA

            if present.shape[0] < self.pca_dim or self.raw_dim < self.pca_dim:
                raise ConfigError(f"pixels PCA to {self.pca_dim} dimensions needs at least that many images and "
                                  f"pixel values; only {present.shape[0]} images / {self.raw_dim} values: pass a "
                                  "smaller --pixels-pca or none")
            present = PCA(n_components=self.pca_dim, svd_solver="full", random_state=0).fit_transform(present)
        present = present.astype(np.float32)
        out[mask] = _l2(present) if self.normalize else present
        return out


def build_image_encoder(name=DEFAULT_IMAGE_ENCODER, *, pixels_size=16, pixels_pca=None, batch_size=64,
                        device=None, fp16=True, revision=None, normalize=True, tag=None):
    """``pixels`` -> :class:`PixelsImageEncoder`, anything else -> :class:`ClipImageEncoder`."""
    if str(name).strip().lower() == PIXELS:
        return PixelsImageEncoder(size=pixels_size, pca_dim=pixels_pca, normalize=normalize, tag=tag)
    return ClipImageEncoder(name, batch_size=batch_size, device=device, fp16=fp16, revision=revision,
                            normalize=normalize, tag=tag)
