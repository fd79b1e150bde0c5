"""Bad images (issue 13, items 4, 5, 13): slow downloads, huge images, symlinks out of the folder."""
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from PIL import Image

from recbole_blairclip.features import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 200, 0)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def slow_server():
    """127.0.0.1 server: /slow-body (a byte every 0.1 s), /slow-headers (a header byte every 0.1 s),
    /short (Content-Length larger than the body). Every dribble stops after 15 s or when the test ends."""
    body = _png()
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _dribble(self, data):
            end = time.monotonic() + 15
            for k in range(len(data)):
                if stop.is_set() or time.monotonic() > end:
                    return
                self.wfile.write(data[k:k + 1])
                self.wfile.flush()
                time.sleep(0.1)

        def do_GET(self):
            try:
                if self.path == "/slow-body":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self._dribble(body)
                elif self.path == "/slow-headers":
                    self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                    self._dribble(b"X-Padding: " + b"a" * 140 + b"\r\n")
                    self.wfile.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                elif self.path == "/short":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body) + 500))
                    self.end_headers()
                    self.wfile.write(body)
                    self.close_connection = True
            except OSError:  # the client hung up: expected
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
def test_slow_downloads_hit_the_total_deadline_and_are_not_cached(tmp_path, slow_server, path):
    # each read arrives well within the 2-s timeout, so only a total deadline stops the download
    ref = sources.download_one(slow_server + path, tmp_path, timeout=2, retries=0, deadline=1.0)
    assert ref.path is None and "deadline" in ref.reason
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing cached, no partial file


def test_short_body_is_never_cached(tmp_path, slow_server):
    ref = sources.download_one(slow_server + "/short", tmp_path, timeout=2, retries=1, backoff=0.01, deadline=5)
    assert ref.path is None and "IncompleteRead" in ref.reason
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    Image.new("1", (12000, 12000)).save(tmp_path / "huge.png")
    img, why = sources.open_image(tmp_path / "huge.png")
    assert img is None and "12000x12000 pixels" in why and "limit" in why
    Image.new("RGB", (3000, 2000), (10, 20, 30)).save(tmp_path / "large.jpg", quality=90)
    img, why = sources.open_image(tmp_path / "large.jpg", max_pixels=10_000_000, max_side=1024)
    assert why is None and max(img.size) == 1024 and img.size == (1024, 683)
    assert img.getpixel((5, 5)) == pytest.approx((10, 20, 30), abs=3)


PEAK_SCRIPT = """
import json, resource, sys
from recbole_blairclip.features.extract import extract_features
feats = extract_features(sys.argv[1], None, "pixels", pixels_size=4, image_batch_size=16, load_workers=1,
                         progress=False)
print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "mask": feats.image_mask.tolist(), "missing": feats.meta["image"]["missing"]}))
"""


def test_a_batch_of_12000_square_pngs_stays_small(tmp_path):
    folder = tmp_path / "huge"
    (folder / "images").mkdir(parents=True)
    ids = [f"H{k}" for k in range(7)] + ["ok"]
    (folder / "huge.item").write_text("item_id:token\titem_text:token_seq\n" +
                                      "".join(f"{i}\ttext {i}\n" for i in ids), encoding="utf-8")
    Image.new("1", (12000, 12000)).save(folder / "images" / "H0.png")  # about 15 KB on disk
    for k in range(1, 7):
        os.link(folder / "images" / "H0.png", folder / "images" / f"H{k}.png")
    Image.new("RGB", (64, 64), (200, 0, 0)).save(folder / "images" / "ok.png")
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(folder)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["mask"] == [False] * 7 + [True]
    assert all("over the 40000000-pixel limit" in out["missing"][f"H{k}"] for k in range(7))
    # decoding the seven images in full takes 7 x 432 MB; the process stays far below that
    assert out["peak_kb"] < 1_500_000, out["peak_kb"]


def test_symlinks_outside_the_images_folder_are_refused(tmp_path):
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (4, 4)).save(folder / "real.png")
    os.symlink(outside, folder / "leak.png")
    os.symlink(folder / "real.png", folder / "alias.png")  # inside the folder: fine
    refs = sources.locate_in_folder(["leak", "alias", "real", "none"], folder)
    assert refs["leak"] == sources.ImageRef(None, sources.OUTSIDE_LINK)
    assert refs["alias"].path.endswith("alias.png") and refs["real"].path.endswith("real.png")
    assert refs["none"].reason == "no image file in folder"


def test_convert_does_not_copy_symlinks_from_outside(tmp_path):
    from test_bad_input_data import _reviews

    from recbole_blairclip.data.convert import convert

    images = tmp_path / "imgs"
    images.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png())
    os.symlink(secret, images / "I1.png")
    (images / "I2.png").write_bytes(_png())
    stats = convert(_reviews(tmp_path), None, name="s", out=str(tmp_path / "out"), images_dir=str(images))
    assert stats["items"]["images_copied"] == 1
    assert sorted(os.listdir(tmp_path / "out" / "s" / "images")) == ["I2.png"]
