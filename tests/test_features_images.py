"""Image sources (folder, downloads over a loopback HTTP server), decoding, and the pixels encoder."""
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features import sources
from recbole_blairclip.features.image import PixelsImageEncoder, build_image_encoder


def png_bytes(tmp_path, color, size=(20, 10)):
    path = tmp_path / f"c{color[0]}_{color[1]}_{color[2]}.png"
    Image.new("RGB", size, color).save(path)
    return path.read_bytes()


# ---------------------------------------------------------------- folder
def test_folder_index_extensions_and_priority(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "A1.JPG", format="JPEG")
    Image.new("RGB", (4, 4)).save(tmp_path / "A2.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "A2.webp")
    (tmp_path / "A3.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "sub" / "A4.png")
    refs = sources.locate_in_folder(["A1", "A2", "A3", "A4", "../A1"], tmp_path)
    assert Path(refs["A1"].path).name == "A1.JPG"
    assert Path(refs["A2"].path).name == "A2.png"  # .png ranks before .webp
    for missing in ("A3", "A4", "../A1"):
        assert refs[missing].path is None and refs[missing].reason == "no image file in folder"


def test_open_image_good_broken_truncated(tmp_path):
    Image.new("RGBA", (6, 3), (10, 20, 30, 40)).save(tmp_path / "ok.png")
    img, why = sources.open_image(tmp_path / "ok.png")
    assert why is None and img.mode == "RGB" and img.size == (6, 3)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8not really a jpeg")
    img, why = sources.open_image(tmp_path / "bad.jpg")
    assert img is None and why.startswith("undecodable image")
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    img, why = sources.open_image(tmp_path / "cut.png")
    assert img is None and "undecodable" in why
    img, why = sources.open_image(tmp_path / "absent.png")
    assert img is None and "undecodable" in why


def test_decompression_bomb_guard_is_on(tmp_path, monkeypatch):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 > 2 x 1000 pixels: refused by Pillow
    img, why = sources.open_image(tmp_path / "big.png")
    assert img is None and "DecompressionBombError" in why


# ---------------------------------------------------------------- downloads
@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server: /ok.png, /big.png (over the cap), /broken.png, /flaky.png (500 once), 404s."""
    body = png_bytes(tmp_path, (200, 10, 10))
    hits = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path == "/ok.png" or (self.path == "/flaky.png" and hits[self.path] > 1):
                data = body
            elif self.path == "/big.png":
                data = b"x" * 5000
            elif self.path == "/broken.png":
                data = b"\x89PNG garbage"
            elif self.path == "/flaky.png":
                self.send_error(500)
                return
            elif self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd" if self.path == "/redirect-file"
                                 else "ftp://127.0.0.1/x.png")
                self.end_headers()
                return
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", hits, body
    srv.shutdown()
    srv.server_close()


def test_download_cases_and_cache(tmp_path, server):
    base, hits, body = server
    cache = tmp_path / "cache"
    urls = {"ok": f"{base}/ok.png", "same": f"{base}/ok.png", "big": f"{base}/big.png",
            "broken": f"{base}/broken.png", "gone": f"{base}/gone.png", "flaky": f"{base}/flaky.png",
            "file": "file:///etc/passwd", "ftp": "ftp://example.invalid/x.png", "empty": "",
            "redir": f"{base}/redirect-file", "redir2": f"{base}/redirect-ftp", "traversal": f"{base}/../../etc/passwd"}
    refs = sources.download_images(urls, cache, workers=4, timeout=5, retries=1, max_bytes=1000,
                                   progress=False, backoff=0.01)
    ok = Path(refs["ok"].path)
    assert ok.read_bytes() == body and refs["same"].path == refs["ok"].path
    assert ok == sources.cache_path(cache, urls["ok"]) and ok.parent.parent == cache
    assert len(ok.stem) == 64 and ok.suffix == ".img"  # the name is a sha256, not the id or the URL
    assert hits["/ok.png"] == 1  # one fetch for two items with the same URL
    assert refs["flaky"].path is not None and hits["/flaky.png"] == 2  # retried after a 500
    assert "1000-byte cap" in refs["big"].reason
    assert refs["gone"].reason == "download failed: HTTP 404"
    assert refs["file"].reason == refs["ftp"].reason == "not an http(s) URL"
    assert refs["empty"].reason == "no image_url"
    for key in ("redir", "redir2"):
        assert refs[key].path is None and refs[key].reason.startswith("download failed: redirect refused")
    assert refs["traversal"].path is None
    # the broken body downloads fine; decoding reports it
    assert sources.open_image(refs["broken"].path)[0] is None
    # nothing but hashed files (no partial downloads) in the cache
    names = [p.name for p in cache.rglob("*") if p.is_file()]
    assert names and all(len(n) == 68 and n.endswith(".img") for n in names)
    # a second run is served from the cache
    before = dict(hits)
    again = sources.download_images({"ok": urls["ok"]}, cache, progress=False)
    assert again["ok"].path == refs["ok"].path and hits == before


def test_download_unreachable_retries_then_reason(tmp_path):
    ref = sources.download_one("http://127.0.0.1:9/x.png", tmp_path, timeout=1, retries=1, backoff=0.01)
    assert ref.path is None and ref.reason.startswith("download failed after 2 tries")


# ---------------------------------------------------------------- pixels encoder
def test_pixels_matches_numpy():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    enc = PixelsImageEncoder(size=4, normalize=False)
    raw = enc.encode([Image.fromarray(arr)])
    # independent computation: 8x8 -> 4x4 with Pillow bicubic (already square: no crop), /255, flatten HWC
    expect = np.asarray(Image.fromarray(arr).resize((4, 4), Image.Resampling.BICUBIC), np.float32).reshape(-1) / 255
    np.testing.assert_allclose(raw[0], expect, atol=1e-6)
    assert enc.dim == 48 and enc.tag == "pixels4"
    # a wide image is centre-cropped to a square first
    wide = np.zeros((4, 12, 3), np.uint8)
    wide[:, 4:8] = 255
    np.testing.assert_allclose(enc.encode([Image.fromarray(wide)])[0], 1.0)


def test_pixels_finalize_l2_and_pca_against_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    x = rng.random((10, 12)).astype(np.float32)
    mask = np.ones(10, bool)
    mask[[2, 7]] = False
    x[~mask] = 0
    enc = PixelsImageEncoder(size=2)
    out = enc.finalize(x, mask)
    np.testing.assert_allclose(out[mask], x[mask] / np.linalg.norm(x[mask], axis=1, keepdims=True), rtol=1e-6)
    assert not out[~mask].any()
    enc = PixelsImageEncoder(size=2, pca_dim=3)
    assert enc.tag == "pixels2-pca3" and enc.dim == 3
    out = enc.finalize(x, mask)
    ref = PCA(n_components=3, svd_solver="full", random_state=0).fit_transform(x[mask].astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(out[mask], ref, atol=1e-5)
    assert out.shape == (10, 3) and not out[~mask].any()
    with pytest.raises(ConfigError, match="smaller --pixels-pca"):
        PixelsImageEncoder(size=2, pca_dim=9).finalize(x, mask)


def test_build_image_encoder_pixels_needs_no_weights():
    enc = build_image_encoder("pixels", pixels_size=8, pixels_pca=4)
    assert isinstance(enc, PixelsImageEncoder) and enc.describe()["kind"] == "pixels"
