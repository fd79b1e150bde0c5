"""Meta files (Amazon 2023 / 2018) -> the cleaned title, text, categories, store and image URL of items.

:func:`scan_meta` reads a file once (the line accounting and each item's first raw line);
:func:`build_meta` cleans the first records of the wanted items; :func:`select_meta` keeps the wanted items
from a scan, with the accounting of unknown and repeated records. The schema is detected by :mod:`recbole_blairclip.data.schema`; lines
follow the rules of :mod:`recbole_blairclip.data.line_rules`.
"""
import os
from dataclasses import dataclass, field

from recbole_blairclip.data.line_rules import LineIssues, bad_reason, loads as _loads, valid_id
from recbole_blairclip.data.reader import count_lines, iter_line_blocks, progress_bar
from recbole_blairclip.data.schema import META_SCHEMAS, detect_schema
from recbole_blairclip.data.text import build_item_text, clean_text, flatten_text, to_category_tokens, to_token


@dataclass
class ItemMeta:
    """The cleaned values one item contributes to ``<name>.item``."""

    item_text: str
    title: str
    categories: str
    store: str
    image_url: str


@dataclass
class Meta:
    """Meta records read for the wanted items, plus line accounting."""

    schema: object  # str or None for an empty file
    items: dict  # item name -> ItemMeta (first record per item)
    lines: int = 0
    blank_lines: int = 0
    issues: LineIssues = field(default_factory=LineIssues)
    unknown_items: LineIssues = field(default_factory=LineIssues)  # "unknown_item" / "not_kept_item"
    duplicates: LineIssues = field(default_factory=LineIssues)  # reason "duplicate_item"


def _first_url(value):
    return value if isinstance(value, str) and value.strip() else ""


def image_url_2023(images):
    """First image URL of a 2023 ``images`` field: the ``MAIN`` variant if any, else the first image;
    its ``large`` URL, else ``hi_res``, else ``thumb``. Accepts a list of dicts or a dict of lists."""
    if isinstance(images, dict):  # parallel lists (the HF datasets layout)
        n = max((len(v) for v in images.values() if isinstance(v, list)), default=0)
        rows = []
        for j in range(n):
            rows.append({k: (v[j] if isinstance(v, list) and j < len(v) else None) for k, v in images.items()})
        images = rows
    if not isinstance(images, list):
        return ""
    if images and type(images[0]) is dict and images[0].get("variant") == "MAIN":  # the usual case
        url = _first_url(images[0].get("large"))
        if url:
            return url
    records = [im for im in images if isinstance(im, dict)]
    records.sort(key=lambda im: im.get("variant") != "MAIN")  # stable: MAIN first, else file order
    for im in records:
        for key in ("large", "hi_res", "thumb"):
            url = _first_url(im.get(key))
            if url:
                return url
    return ""


def image_url_2018(meta):
    """First image URL of a 2018 meta record: ``imageURLHighRes``, else ``image``, else ``imageURL``."""
    for key in ("imageURLHighRes", "image", "imageURL"):
        value = meta.get(key)
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            for url in value:
                url = _first_url(url)
                if url:
                    return url
    return ""


def item_meta(obj, schema, text_fields):
    """Build the :class:`ItemMeta` of one meta record."""
    alias = META_SCHEMAS[schema]["alias"]
    url = image_url_2023(obj.get("images")) if schema == "amazon2023" else image_url_2018(obj)
    if url:
        url = clean_text(url).replace(" ", "%20")
    title = clean_text(flatten_text(obj.get("title")))
    return ItemMeta(item_text=build_item_text(obj, [alias.get(f, f) for f in text_fields], {"title": title}),
                    title=title,
                    categories=to_category_tokens(obj.get(alias.get("categories", "categories"))),
                    store=to_token(obj.get(alias.get("store", "store"))),
                    image_url=url)


@dataclass
class MetaScan:
    """Everything :func:`select_meta` needs from a meta file, independent of which items are wanted:
    the line accounting, the bad lines, every valid record's (item, line number) in file order and
    the first record of each item (its raw line from :func:`scan_meta`; after :func:`build_meta`, an
    :class:`ItemMeta` for a wanted item, else ``None``)."""

    schema: object
    lines: int = 0
    blank_lines: int = 0
    issues: LineIssues = field(default_factory=LineIssues)
    records: list = field(default_factory=list)  # (item, line number) of every valid record
    first: dict = field(default_factory=dict)  # item -> raw line of its first record (ItemMeta or None once built)


def scan_meta(path, progress=False):
    """Read a meta file once, keeping each item's first raw line (cleaned later by :func:`build_meta`,
    once the wanted items are known). Line rules: :mod:`~recbole_blairclip.data.line_rules`; a line that
    is not a JSON object, lacks the item key or has a bad id is counted and skipped."""
    path = os.fspath(path)
    schema = detect_schema(path, "meta")
    scan = MetaScan(schema=schema)
    if schema is None:
        scan.blank_lines = scan.lines = count_lines(path)
        return scan
    key = META_SCHEMAS[schema]["item"]
    issues, records, first = scan.issues, scan.records, scan.first
    loads = _loads
    lineno = 0
    bar = progress_bar(path, "reading meta", progress)
    for block in iter_line_blocks(path):
        if bar is not None:
            bar.update(len(block))
        for lineno, line in enumerate(block, lineno + 1):
            try:
                obj = loads(line)
            except ValueError:
                if line.strip():
                    issues.add(bad_reason(line), lineno)
                else:
                    scan.blank_lines += 1
                continue
            if type(obj) is not dict:
                issues.add("not_an_object", lineno)
                continue
            it = obj.get(key)
            if it is None:
                issues.add("missing_field", lineno)
                continue
            if type(it) is not str:
                issues.add("wrong_type", lineno)
                continue
            if not valid_id(it):
                issues.add("bad_id", lineno)
                continue
            records.append((it, lineno))
            if it not in first:
                first[it] = line
    if bar is not None:
        bar.close()
    scan.lines = lineno
    return scan


def build_meta(scan, wanted=None, text_fields=("title", "description", "features")):
    """The scan of :func:`scan_meta` with the first records of the ``wanted`` items (``None``: all) cleaned into :class:`ItemMeta` (the raw lines are dropped)."""
    first = {}
    for it, line in scan.first.items():
        first[it] = item_meta(_loads(line), scan.schema, text_fields) if wanted is None or it in wanted else None
    return MetaScan(schema=scan.schema, lines=scan.lines, blank_lines=scan.blank_lines, issues=scan.issues,
                    records=scan.records, first=first)


def select_meta(scan, wanted=None, known=None):
    """The :class:`Meta` of the ``wanted`` items (``None``: all) from a :class:`MetaScan`, with the same
    accounting as reading the file with that ``wanted``: records of other items count as
    ``unknown_item`` (``not_kept_item`` when in ``known``), repeated records of a wanted item as
    ``duplicate_item`` (the first wins)."""
    result = Meta(schema=scan.schema, items={}, lines=scan.lines, blank_lines=scan.blank_lines, issues=scan.issues)
    items, first = result.items, scan.first
    for it, lineno in scan.records:
        if wanted is not None and it not in wanted:
            if known is not None and it in known:
                result.unknown_items.add("not_kept_item", lineno)
            else:
                result.unknown_items.add("unknown_item", lineno)
            continue
        if it in items:
            result.duplicates.add("duplicate_item", lineno)
            continue
        items[it] = first[it]
    return result
