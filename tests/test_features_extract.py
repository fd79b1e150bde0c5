"""extract_features with weight-free encoders: row alignment, masks, resume after a crash, determinism.

A stub text encoder (a hash of each text) and the real ``pixels`` image encoder keep this file fast; the
transformers encoders are covered in test_features_models.py.
"""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from conftest import COLORS, ITEM_HEADER as HEADER, text_of, write_shop_dataset
from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.features import extract as extract_mod
from recbole_blairclip.features.extract import extract_features
from recbole_blairclip.features.image import PixelsImageEncoder
from recbole_blairclip.features.store import load_features



def hash_row(text, dim=6):
    raw = np.frombuffer(hashlib.sha256(text.encode()).digest()[: 4 * dim], dtype=np.uint32).astype(np.float64)
    return (raw / 2 ** 32 - 0.5).astype(np.float32)


class HashText:
    """Independent text 'encoder': row = function of the text alone."""

    tag, dim = "hash6", 6

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def describe(self):
        return {"kind": "stub", "encoder": "hash", "tag": self.tag, "dim": self.dim}

    def encode(self, texts):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        return np.stack([hash_row(t) for t in texts])


def expected_pixel(k):
    x = np.full(3 * 2 * 2, 0, np.float32).reshape(2, 2, 3)
    x[:] = np.array(COLORS[k], np.float32) / 255
    x = x.reshape(-1)
    return x / np.linalg.norm(x) if np.linalg.norm(x) else x


def test_rows_follow_shuffled_item_file_and_masks(tmp_path):
    folder = write_shop_dataset(tmp_path, shuffle_seed=3)
    feats = extract_features(folder, HashText(), PixelsImageEncoder(size=2), chunk_size=5, progress=False)
    ids = [line.split("\t")[0] for line in (folder / "shop.item").read_text().splitlines()[1:]]
    assert feats.item_ids == ids and ids != sorted(ids)
    for row, item in enumerate(ids):
        k = int(item[1:])
        np.testing.assert_array_equal(feats.text[row], hash_row(text_of(k)))
        if k % 7 in (3, 5):
            assert not feats.image_mask[row] and not feats.image[row].any()
        else:
            assert feats.image_mask[row]
            np.testing.assert_allclose(feats.image[row], expected_pixel(k), atol=2e-3)
    meta = feats.meta["image"]
    missing = {k for k in range(23) if k % 7 in (3, 5)}
    assert set(meta["missing"]) == {f"P{k:03d}" for k in missing} and meta["num_missing"] == len(missing)
    assert meta["missing"]["P003"] == "no image file in folder"
    assert meta["missing"]["P005"].startswith("undecodable image")
    assert meta["missing_reasons"] == {"no image file in folder": 3, "undecodable image": 3}
    assert meta["source"] == "folder" and meta["tag"] == "pixels2"
    assert feats.meta["text"]["field"] == "item_text"
    assert not (folder / extract_mod.PARTIAL_DIR).exists()
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
        "shop.features.json", "shop.hash6.text.npy", "shop.item", "shop.pixels2.image.npy",
        "shop.pixels2.image_mask.npy"]


def test_resume_after_interruption_gives_the_same_files(tmp_path):
    clean = write_shop_dataset(tmp_path / "a", shuffle_seed=1)
    extract_features(clean, HashText(), PixelsImageEncoder(size=3, pca_dim=4), chunk_size=4, progress=False)

    folder = write_shop_dataset(tmp_path / "b", shuffle_seed=1)
    crashing = HashText(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        extract_features(folder, crashing, PixelsImageEncoder(size=3, pca_dim=4), chunk_size=4, progress=False)
    assert not (folder / "shop.features.json").exists()
    assert not list(folder.glob("*.npy"))  # nothing half-written in place
    assert len(list((folder / extract_mod.PARTIAL_DIR).rglob("chunk_*.npz"))) == 3

    # the image stage is interrupted too: make the pixels encoder fail on its 4th chunk
    class Crash(PixelsImageEncoder):
        calls = 0

        def encode_prepared(self, batch):
            Crash.calls += 1
            if Crash.calls == 4:
                raise RuntimeError("lost the machine")
            return super().encode_prepared(batch)

    resumed = HashText()
    with pytest.raises(RuntimeError):
        extract_features(folder, resumed, Crash(size=3, pca_dim=4), chunk_size=4, progress=False)
    assert resumed.calls == 6 - 3  # 23 items / 4 = 6 chunks, 3 were done
    final = HashText()
    extract_features(folder, final, PixelsImageEncoder(size=3, pca_dim=4), chunk_size=4, progress=False)
    assert final.calls == 0  # all text chunks came from the partial folder
    for name in ("shop.hash6.text.npy", "shop.pixels3-pca4.image.npy", "shop.pixels3-pca4.image_mask.npy"):
        assert (folder / name).read_bytes() == (clean / name).read_bytes(), name
    assert not (folder / extract_mod.PARTIAL_DIR).exists()


def test_deterministic(tmp_path):
    a = extract_features(write_shop_dataset(tmp_path / "a"), HashText(), PixelsImageEncoder(size=4, pca_dim=3),
                         chunk_size=100, progress=False)
    b = extract_features(write_shop_dataset(tmp_path / "b"), HashText(), PixelsImageEncoder(size=4, pca_dim=3),
                         chunk_size=3, progress=False)
    np.testing.assert_array_equal(a.text, b.text)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.image_mask, b.image_mask)


def test_reextracting_after_item_change_is_needed(tmp_path):
    folder = write_shop_dataset(tmp_path)
    extract_features(folder, HashText(), "pixels", pixels_size=2, progress=False)
    with open(folder / "shop.item", "a", encoding="utf-8") as fh:
        fh.write("P999\tnew item\tt\tc\ts\t\n")
    with pytest.raises(DatasetError, match="changed since the features were extracted"):
        load_features(folder)
    feats = extract_features(folder, HashText(), "pixels", pixels_size=2, progress=False)
    assert feats.item_ids[-1] == "P999" and not feats.image_mask[-1]
    assert json.loads((folder / "shop.features.json").read_text())["num_items"] == 24


def test_text_only_and_errors(tmp_path):
    folder = write_shop_dataset(tmp_path)
    feats = extract_features(folder, HashText(), None, progress=False)
    assert feats.image is None and feats.meta["image"] is None
    with pytest.raises(ConfigError, match="nothing to extract"):
        extract_features(folder, None, "none", progress=False)
    with pytest.raises(DatasetError, match="no 'description' column"):
        extract_features(folder, HashText(), None, text_field="description", progress=False)
    with pytest.raises(ConfigError, match="--images .*no such folder"):
        extract_features(folder, HashText(), "pixels", images=tmp_path / "nowhere", progress=False)
    (folder / "images").rename(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="no image source"):
        extract_features(folder, HashText(), "pixels", progress=False)
    feats = extract_features(folder, HashText(), "pixels", images=tmp_path / "elsewhere", progress=False)
    assert feats.image_mask.sum() == 23 - 6
    with pytest.raises(DatasetError, match="dataset folder not found"):
        extract_features(tmp_path / "missing", HashText(), None, progress=False)


def test_download_source_end_to_end(tmp_path, monkeypatch):
    """--download: image_url per item through the cache (the network call itself is stubbed here)."""
    folder = tmp_path / "dl"
    folder.mkdir()
    rows = [f"D{k}\ttext {k}\tt\tc\ts\thttp://img.invalid/{k}.png" for k in range(4)] + ["D9\tno url\tt\tc\ts\t"]
    (folder / "dl.item").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    fetched = []

    def fake_fetch(url, dest, timeout, max_bytes, **kwargs):
        fetched.append(url)
        if url.endswith("/3.png"):
            raise extract_mod.sources._Permanent("HTTP 404")
        Image.new("RGB", (5, 5), (255, 0, 0)).save(dest, format="PNG")

    monkeypatch.setattr(extract_mod.sources, "_fetch", fake_fetch)
    feats = extract_features(folder, HashText(), "pixels", pixels_size=2, download=True, progress=False)
    assert feats.image_mask.tolist() == [True, True, True, False, False]
    assert feats.meta["image"]["missing"] == {"D3": "download failed: HTTP 404", "D9": "no image_url"}
    assert (folder / "dl.image_cache").is_dir() and len(fetched) == 4
    extract_features(folder, HashText(), "pixels", pixels_size=2, download=True, progress=False)
    assert len(fetched) == 5  # only the failed URL is tried again; the rest come from the cache
