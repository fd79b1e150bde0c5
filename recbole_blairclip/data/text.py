"""Text cleaning for atomic files: HTML unescape/strip, whitespace normalisation, item text building.

Every string written into an atomic file passes through :func:`clean_text`, which guarantees what
RecBole's loader needs: no tab or newline inside a value (tabs separate columns), no double quote
(RecBole reads with pandas' python csv engine, where a value starting with ``"`` is parsed as a quoted
field and breaks the file; ``"`` becomes ``''``), and single spaces between tokens (``token_seq``
values are split on spaces).
"""
import html
import re

_TAG_RE = re.compile(r"<[^<>]{0,2000}>")
# an entity other than the five common ones (those are replaced without html.unescape, which is slow)
_RARE_ENTITY_RE = re.compile(r"&(?!(?:lt|gt|quot|#39|nbsp|amp);)")
# C0/C1 control characters and DEL that ``str.split()`` does not treat as whitespace become spaces;
# ``"`` becomes ``''``. ``str.split()`` then removes every whitespace run (tabs, newlines, NBSP, U+2028).
_ODD_RE = re.compile('[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"]')


def _odd(match):
    return "''" if match.group() == '"' else " "


def clean_text(value):
    """Return ``value`` (a str) with HTML tags stripped, entities unescaped, control characters and
    double quotes replaced and all runs of whitespace collapsed to one space (trimmed)."""
    if not value:
        return ""
    if "<" in value:
        value = _TAG_RE.sub(" ", value)
    if "&" in value:
        if _RARE_ENTITY_RE.search(value) is None:  # only the common entities: plain replaces
            value = (value.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
                     .replace("&#39;", "'").replace("&nbsp;", " ").replace("&amp;", "&"))
        else:
            value = html.unescape(value)
        if "<" in value:  # entities that spelled a tag (``&lt;br&gt;``)
            value = _TAG_RE.sub(" ", value)
    if value.isascii() and value.isprintable():  # the usual case: of the odd characters only '"' is printable
        if '"' in value:
            value = value.replace('"', "''")
    elif _ODD_RE.search(value) is not None:
        value = _ODD_RE.sub(_odd, value)
    return " ".join(value.split())


def flatten_text(value):
    """Flatten a meta field into one string: str as is, lists joined with spaces, dicts as
    ``key value`` pairs, numbers via ``str``; ``None``/bools/empty give ``""``."""
    kind = type(value)
    if kind is str:
        return value
    if kind is list:
        try:
            return " ".join(value)  # the usual case: a list of strings
        except TypeError:
            pass
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return " ".join(s for s in (flatten_text(v) for v in value) if s)
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            s = flatten_text(v)
            if s:
                parts.append(f"{k} {s}")
        return " ".join(parts)
    return ""


def build_item_text(meta, fields, cleaned=None):
    """Item text = the cleaned, space-joined values of ``fields`` (in order) of one meta record.
    ``cleaned`` maps field names to values already cleaned (reused instead of cleaning again)."""
    parts = []
    for field in fields:
        if cleaned is not None and field in cleaned:
            s = cleaned[field]
        else:
            s = clean_text(flatten_text(meta.get(field)))
        if s:
            parts.append(s)
    return " ".join(parts)


def to_token(value):
    """A single ``token`` value (store, image url): cleaned text, may contain spaces, never tabs."""
    return clean_text(flatten_text(value))


def to_category_tokens(categories):
    """``categories`` as a ``token_seq`` value: one token per category, inner spaces -> ``_``."""
    if isinstance(categories, str):
        categories = [categories]
    if not isinstance(categories, (list, tuple)):
        return ""
    tokens = []
    for c in categories:
        c = clean_text(flatten_text(c))
        if c:
            tokens.append(c.replace(" ", "_"))
    return " ".join(tokens)
