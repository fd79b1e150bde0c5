"""Where item images come from: a local folder, or downloads from ``image_url`` into a cache.

Both give, per item id, a file path or ``None`` plus the reason (``ImageRef``); :func:`open_image`
then decodes a path into an RGB ``PIL.Image`` or a reason. Nothing here ever raises for one bad image:
missing, unreachable, oversized or undecodable images are reported, and become a zero row plus a
false mask entry in the features.

Local folder: the file whose name without extension equals the item id (``B00ABC.jpg``, ``B00ABC.png``
...; extensions in ``IMAGE_EXTENSIONS``, case-insensitive). The folder is listed once; paths are never
built from item ids, so an id cannot point outside the folder, and a symlink that resolves outside the
folder is refused (the item counts as missing, with that reason).

Downloads (``download_images``): http(s) URLs only (redirects to other schemes are refused), a
per-read timeout and a total deadline per image (connection, headers and body: a server dribbling
bytes is cut off), retries with backoff on network errors, 5xx and 429, a size cap (Content-Length
and the bytes actually read), concurrent threads. Files go to ``<cache>/<aa>/<sha256(url)>.img``: the
name comes from a hash, never from the id or URL, and a file is renamed into place only when complete
(a body shorter than its Content-Length, or cut by the deadline, is never cached), so an interrupted run
resumes by skipping what is cached.

Decoding (``open_image``): images over ``max_pixels`` (a setting) are refused from their header, before
any pixel is decoded; JPEGs are decoded at reduced size (``draft``); a decoded image larger than
``max_side`` on a side is shrunk at once, so a batch holds at most ``batch x max_side^2`` pixels.
Pillow's decompression-bomb guard stays on.
"""
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from recbole_blairclip.io import replacing, sha256_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_DEADLINE = 60.0  # seconds per image download, everything included
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000  # e.g. 8000 x 5000; larger images are refused before decoding
DEFAULT_MAX_SIDE = 1024  # decoded images are shrunk to at most this many pixels on a side
USER_AGENT = "recbole-blairclip-features/1 (+image download for research features)"


@dataclass(frozen=True)
class ImageRef:
    """An item's image file (``path``), or ``path=None`` and why (``reason``)."""

    path: str = None
    reason: str = None


# ---------------------------------------------------------------- local folder
OUTSIDE_LINK = "symlink to a file outside the images folder (refused)"


def scan_folder(folder):
    """``(index, refused)``: item id (file name without extension) -> path for every image file directly
    in ``folder``, and item id -> reason for image names refused (symlinks resolving outside ``folder``).

    When an id has several files, the first extension in ``IMAGE_EXTENSIONS`` order wins.
    """
    folder = Path(folder)
    root = os.path.realpath(folder)
    rank = {ext: i for i, ext in enumerate(IMAGE_EXTENSIONS)}
    best, refused = {}, {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            ext = ext.lower()
            if ext not in rank or not entry.is_file():
                continue
            if entry.is_symlink() and os.path.commonpath([root, os.path.realpath(entry.path)]) != root:
                refused[stem] = OUTSIDE_LINK
                continue
            if stem not in best or rank[ext] < rank[os.path.splitext(best[stem])[1].lower()]:
                best[stem] = entry.path
    return best, {k: v for k, v in refused.items() if k not in best}


def index_folder(folder):
    """Item id -> path of its image file in ``folder`` (see :func:`scan_folder`)."""
    return scan_folder(folder)[0]


def locate_in_folder(item_ids, folder):
    """``{item_id: ImageRef}`` for images named by item id in ``folder``."""
    index, refused = scan_folder(folder)
    return {i: ImageRef(index[i]) if i in index else ImageRef(None, refused.get(i, "no image file in folder"))
            for i in item_ids}


# ---------------------------------------------------------------- downloads
class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme.lower() not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, "redirect to a non-http(s) URL", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadline:
    """The total time one download may take: when it passes, every socket the download opened is shut
    down, so a blocked read (headers or body) returns at once. The current thread's deadline is found
    by the connections below through a thread-local."""

    current = threading.local()

    def __init__(self, seconds):
        self.seconds = seconds
        self.expired = False
        self.sockets = []
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def __enter__(self):
        _Deadline.current.value = self
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        _Deadline.current.value = None

    def _expire(self):
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @classmethod
    def watch(cls, sock):
        deadline = getattr(cls.current, "value", None)
        if deadline is None:
            return
        with deadline.lock:
            deadline.sockets.append(sock)
            if deadline.expired:
                sock.shutdown(socket.SHUT_RDWR)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        _Deadline.watch(self.sock)


class _DeadlineHTTPSConnection(http.client.HTTPSConnection):
    def connect(self):
        super().connect()
        _Deadline.watch(self.sock)


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_DeadlineHTTPConnection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_DeadlineHTTPSConnection, req, context=self._context)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects, _DeadlineHTTPHandler, _DeadlineHTTPSHandler)


class _Permanent(Exception):
    """A failure that retrying cannot fix (4xx, too large, not http, past the deadline)."""


def is_http_url(url):
    """True for an absolute http:// or https:// URL with a host."""
    try:
        parts = urllib.parse.urlparse(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def cache_path(cache_dir, url):
    """The cache file for ``url``: ``<cache>/<first 2 hex>/<sha256 of the URL>.img``."""
    digest = sha256_text(url)
    return Path(cache_dir) / digest[:2] / f"{digest}.img"


def _fetch(url, dest, timeout, max_bytes, deadline=DEFAULT_DEADLINE):
    with _Deadline(deadline) as guard:
        try:
            _fetch_body(url, dest, timeout, max_bytes)
        except Exception:
            if guard.expired:
                raise _Permanent(f"no complete image within the {deadline:g}-s deadline") from None
            raise
        if guard.expired:  # shut down at the very end: what arrived may be short
            if dest.exists():
                dest.unlink()
            raise _Permanent(f"no complete image within the {deadline:g}-s deadline")


def _fetch_body(url, dest, timeout, max_bytes):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _Permanent(f"image larger than the {max_bytes}-byte cap ({length} bytes)")
            size = 0
            with replacing(dest) as tmp:
                with open(tmp, "wb") as fh:
                    while True:
                        block = response.read1(1 << 16)  # one socket read: the deadline can cut in
                        if not block:
                            break
                        size += len(block)
                        if size > max_bytes:
                            raise _Permanent(f"image larger than the {max_bytes}-byte cap")
                        fh.write(block)
                if size == 0:
                    raise _Permanent("empty response")
                if length and length.isdigit() and size != int(length):
                    raise http.client.IncompleteRead(b"", int(length) - size)  # cut short: retried, not cached
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise
        if 300 <= exc.code < 400:
            raise _Permanent(f"redirect refused (HTTP {exc.code}, only http(s) targets are followed)") from exc
        raise _Permanent(f"HTTP {exc.code}") from exc


def download_one(url, cache_dir, timeout=10.0, retries=2, max_bytes=DEFAULT_MAX_IMAGE_BYTES, backoff=0.5,
                 deadline=DEFAULT_DEADLINE):
    """Download ``url`` into the cache (skipped when cached); returns an :class:`ImageRef`.
    ``timeout`` bounds each read, ``deadline`` each try as a whole (seconds)."""
    if not is_http_url(url):
        return ImageRef(None, "not an http(s) URL" if url else "no image_url")
    dest = cache_path(cache_dir, url)
    if dest.is_file():
        return ImageRef(str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = None
    for attempt in range(retries + 1):
        try:
            _fetch(url, dest, timeout, max_bytes, deadline=deadline)
            return ImageRef(str(dest))
        except _Permanent as exc:
            return ImageRef(None, f"download failed: {exc}")
        except Exception as exc:  # network errors, timeouts, 5xx, 429: retry
            last = exc
            if attempt < retries:
                time.sleep(backoff * (2 ** attempt))
    reason = f"HTTP {last.code}" if isinstance(last, urllib.error.HTTPError) else f"{type(last).__name__}: {last}"
    return ImageRef(None, f"download failed after {retries + 1} tries: {reason}"[:300])


def download_images(urls, cache_dir, *, workers=8, timeout=10.0, retries=2, max_bytes=DEFAULT_MAX_IMAGE_BYTES,
                    progress=True, backoff=0.5, deadline=DEFAULT_DEADLINE):
    """Download every item's image; ``urls`` is ``{item_id: url}``. Returns ``{item_id: ImageRef}``.

    Each distinct URL is fetched once, by ``workers`` threads; already cached files are not fetched again.
    """
    from tqdm.auto import tqdm

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    distinct = sorted({u for u in urls.values() if u})
    results = {}
    with ThreadPoolExecutor(max_workers=max(1, int(workers))) as pool:
        futures = {pool.submit(download_one, u, cache_dir, timeout, retries, max_bytes, backoff, deadline): u
                   for u in distinct}
        bar = tqdm(total=len(futures), desc="download images", unit="img", disable=not progress)
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.update(1)
        bar.close()
    return {item: results[u] if u else ImageRef(None, "no image_url") for item, u in urls.items()}


# ---------------------------------------------------------------- decoding
def open_image(path, draft_size=None, max_pixels=DEFAULT_MAX_IMAGE_PIXELS, max_side=DEFAULT_MAX_SIDE):
    """Decode an image file into an RGB ``PIL.Image``: returns ``(image, None)`` or ``(None, reason)``.

    An image over ``max_pixels`` is refused from its header, before decoding (Pillow's own
    decompression-bomb check stays on as well). JPEGs are decoded at reduced size: at least
    ``draft_size`` when given, else at least ``max_side`` on the short side. A decoded image larger than
    ``max_side`` on a side is shrunk (aspect kept) before it is returned.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels and width * height > max_pixels:
                return None, f"image too large: {width}x{height} pixels, over the {max_pixels}-pixel limit"
            if draft_size is not None:
                img.draft("RGB", draft_size)
            elif max_side and min(width, height) > max_side:
                img.draft("RGB", (max_side, max_side))
            out = img.convert("RGB")
        if max_side and max(out.size) > max_side:
            out.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        return out, None
    except Exception as exc:  # undecodable, truncated, bomb, unreadable: a reason, never a crash
        return None, f"undecodable image: {type(exc).__name__}: {str(exc)[:150]}"
