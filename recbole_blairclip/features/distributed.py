"""Feature extraction on a Ray cluster: the missing chunks of one stage as Ray Data batches, encoded by
encoder actors, saved by the driver.

``run_chunks_on_ray`` is called by :func:`~recbole_blairclip.features.extract.extract_features` (``address``)
before its ordinary :func:`~recbole_blairclip.features.extract.run_chunks`: every chunk not yet saved under
``<dataset>/.features-partial/<stage>-<key>/`` becomes one row of a Ray dataset (its start, stop and inputs:
the texts, or the image paths and reasons); ``map_batches`` hands the rows, one per batch, to a pool of
:class:`EncoderActor` (one encoder loaded per actor, a GPU each when the cluster has GPUs, else one CPU
each); each actor returns the chunk as the bytes of the same ``.npz`` file a local run writes, and the
driver renames it into place as it arrives. An interrupted run keeps every chunk that arrived; run again
(locally or on a cluster) it computes only the others. ``run_chunks`` then reads the chunks and the final
files are written exactly as in a local run, so the output is byte-identical when the actors compute what
the local process computes (same code, dtype and torch thread count: the actors use the driver's).

Every node needs this package and the images at the same absolute paths (texts travel in the rows).
Actor workers do not import RecBole, so they need no numpy-2 alias shim.
"""
import io
import json
import os
from pathlib import Path

import numpy as np

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.io import write_bytes


def build_encoder(kind, spec, device):
    """The encoder of a stage from ``spec = (name or encoder object, keyword arguments)``."""
    name, kwargs = spec
    if not isinstance(name, str):
        return name
    if kind == "text":
        from recbole_blairclip.features.text import TextEncoder

        return TextEncoder(name, device=device, **kwargs)
    from recbole_blairclip.features.image import build_image_encoder

    return build_image_encoder(name, device=device, **kwargs)


class EncoderActor:
    """A Ray Data callable class: loads the stage's encoder once, turns chunk rows into ``.npz`` bytes."""

    def __init__(self, kind, spec, device, threads):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.kind = kind
        self.encoder = build_encoder(kind, spec, device)

    def __call__(self, batch):
        from recbole_blairclip.features.extract import image_chunk, text_chunk

        blobs = []
        for k in range(len(batch["start"])):
            inputs = json.loads(batch["inputs"][k])
            if self.kind == "text":
                arrays = text_chunk(self.encoder, list(inputs["texts"]))
            else:
                refs = [(None if p is None else str(p), r) for p, r in inputs["refs"]]
                arrays = image_chunk(self.encoder, refs, inputs["image_batch_size"], inputs["load_workers"],
                                     inputs["max_pixels"])
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            blobs.append(buf.getvalue())
        return {"start": np.asarray(batch["start"]), "stop": np.asarray(batch["stop"]),
                "npz": np.array(blobs, dtype=object)}


def connect(address, ray_init=None):
    """``ray.init`` for ``address`` (``local``: a Ray started in this process); returns whether this
    call started the connection (the caller then shuts it down)."""
    from recbole_blairclip.compat import require_ray

    ray = require_ray("blairclip features --address")
    if ray.is_initialized():
        return False
    kwargs = dict(ray_init or {})
    kwargs.setdefault("include_dashboard", False)
    kwargs.setdefault("log_to_driver", False)
    target = None if address == "local" else address
    if target is None:  # a one-machine Ray: loopback only, no token authentication (Ray >= 2.5x default)
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kwargs.setdefault("_node_ip_address", "127.0.0.1")
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc}); start one with `ray start "
                          "--head` or pass --address local") from None
    return True


def missing_chunks(work_dir, n, chunk_size):
    """(start, stop) of every chunk of ``range(n)`` without a saved, readable file in ``work_dir``."""
    todo = []
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        path = Path(work_dir) / f"chunk_{start:09d}.npz"
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    if all(len(data[k]) == stop - start for k in data.files):
                        continue
            except Exception:  # noqa: BLE001 - a damaged chunk is recomputed
                pass
        todo.append((start, stop))
    return todo


def run_chunks_on_ray(address, work_dir, n, chunk_size, kind, spec, chunk_inputs, *, threads=None,
                      progress=True, ray_init=None, actors=None):
    """Compute and save every missing chunk of one stage on Ray; returns how many were computed.

    ``chunk_inputs(start, stop)`` gives the row's inputs (``{"texts": [...]}`` or ``{"refs": [...], ...}``);
    ``actors`` caps the pool (default: one per GPU, else one per CPU of the cluster, at most the chunks).
    """
    import torch
    from tqdm.auto import tqdm

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    todo = missing_chunks(work_dir, n, chunk_size)
    if not todo:
        return 0
    started = connect(address, ray_init)
    try:
        import ray
        import ray.data

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        size = actors or (gpus if gpus else max(1, int(resources.get("CPU", 1)) - 1))
        size = max(1, min(size, len(todo)))
        threads = threads or torch.get_num_threads()  # the same arithmetic as this process's run
        rows = [{"start": a, "stop": b, "inputs": json.dumps(chunk_inputs(a, b), default=str)} for a, b in todo]
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            EncoderActor, batch_size=1, batch_format="numpy", concurrency=size,
            fn_constructor_args=(kind, spec, "cuda" if gpus else "cpu", threads),
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
        )
        bar = tqdm(total=sum(b - a for a, b in todo), desc=f"{kind} on ray ({size} actors)", unit="item",
                   disable=not progress)
        done = 0
        for row in ds.iter_rows():
            start, stop = int(row["start"]), int(row["stop"])
            path = work_dir / f"chunk_{start:09d}.npz"
            write_bytes(path, row["npz"])
            done += 1
            bar.update(stop - start)
        bar.close()
        return done
    finally:
        if started:
            import ray

            ray.shutdown()
