"""``extract_features(address=...)``: the encoders run as Ray Data batches on encoder actors of a local
Ray (started in this process on 127.0.0.1, 2 CPUs, no dashboard, shut down at the end); the written
files are byte-identical to a local run's, and an interrupted run resumes with only the missing chunks.
Tiny random RoBERTa and CLIP models (built by conftest.py's fixtures) are loaded by path.
"""
import json
import shutil

import numpy as np
import pytest

from conftest import write_shop_dataset
from recbole_blairclip.features import distributed
from recbole_blairclip.features import extract as extract_mod
from recbole_blairclip.features.extract import extract_features

ray = pytest.importorskip("ray")
TIMED = {"created_unix", "seconds"}


def outputs(folder):
    """{file name: bytes} of the feature files, features.json without its timing keys."""
    files = {}
    for path in sorted(folder.iterdir()):
        if path.name.endswith(".features.json"):
            meta = json.loads(path.read_text())
            files[path.name] = json.dumps({k: v for k, v in meta.items() if k not in TIMED}, sort_keys=True)
        elif ".features" in path.name or path.suffix == ".npy":
            files[path.name] = path.read_bytes()
    return files


def clear(folder):
    for path in folder.iterdir():
        if ".features" in path.name or path.suffix == ".npy":
            shutil.rmtree(path) if path.is_dir() else path.unlink()


@pytest.fixture
def local_ray(monkeypatch):
    """A Ray started in this process on 127.0.0.1 (2 CPUs, no dashboard), shut down afterwards."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    except Exception as exc:  # noqa: BLE001 - Ray 2.60's raylet gives up when its agents start > 15 s
        pytest.skip(f"a local Ray could not start on this machine ({str(exc)[:120]})")
    yield
    ray.shutdown()


def test_ray_run_is_byte_identical_to_local_and_resumes(tmp_path, tiny_roberta, tiny_clip, monkeypatch,
                                                        local_ray):
    folder = write_shop_dataset(tmp_path, n=23)
    kw = dict(max_length=32, chunk_size=4, batch_size=3, image_batch_size=2, threads=1, progress=False)
    extract_features(folder, tiny_roberta, tiny_clip, **kw)
    local = outputs(folder)
    assert any(name.endswith(".npy") for name in local) and len(local) >= 3
    clear(folder)

    # an interrupted local run leaves the first 2 text chunks saved
    calls = {"n": 0}
    real_text_chunk = extract_mod.text_chunk

    def failing(enc, texts):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_text_chunk(enc, texts)

    monkeypatch.setattr(extract_mod, "text_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        extract_features(folder, tiny_roberta, tiny_clip, **kw)
    monkeypatch.setattr(extract_mod, "text_chunk", real_text_chunk)
    assert len(list((folder / extract_mod.PARTIAL_DIR).glob("text-*/chunk_*.npz"))) == 2

    computed = []
    real_run = distributed.run_chunks_on_ray

    def spy(*args, **kwargs):
        computed.append((args[4], real_run(*args, **kwargs)))
        return computed[-1][1]

    monkeypatch.setattr(distributed, "run_chunks_on_ray", spy)
    feats = extract_features(folder, tiny_roberta, tiny_clip, address="local", ray_actors=2, **kw)
    assert ray.is_initialized()  # a Ray the run did not start is left running
    assert computed == [("text", 6 - 2), ("image", 6)]  # 23 items in chunks of 4: only the missing ones
    assert outputs(folder) == local
    assert not (folder / extract_mod.PARTIAL_DIR).exists()
    assert feats.text.shape == (23, 32) and np.isfinite(feats.text).all()

