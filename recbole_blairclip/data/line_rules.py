"""Line rules of the Amazon readers: which ids are valid, why a line is skipped, how skips are counted.

Line rules (every skipped line is counted per reason with its first line numbers, see
:class:`LineIssues`):

- blank lines are ignored (counted as ``blank_lines``, not as bad);
- ``non_utf8``: the line is not valid UTF-8; ``malformed_json``: not parseable JSON;
  ``not_an_object``: JSON but not an object;
- ``missing_field``: a required field (user, item, rating, time) is absent or null;
- ``wrong_type``: ids not strings, rating/time not numbers (a bool or a numeric string is wrong);
- ``bad_value``: time negative, non-finite or after :data:`MAX_TIME` (year 2100), rating non-finite;
- ``bad_id``: an id that is empty, longer than :data:`MAX_ID_CHARS`, RecBole's padding token ``[PAD]``,
  or contains whitespace, a double quote or a control character (it could not be written as a RecBole
  token, or would collide with padding).
"""
import re

try:  # orjson parses 3-5x faster than json; the stdlib is the fallback
    import orjson

    loads = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson
    import json

    loads = json.loads

FIRST_LINES = 5  # line numbers kept per bad-line reason
MAX_ID_CHARS = 256  # longer user/item ids are bad_id (RecBole's reader limits a field to 131072 chars)
PAD_TOKEN = "[PAD]"  # RecBole's padding token: an id equal to it would share the padding row
MAX_TIME = 4102444800.0  # 2100-01-01 in seconds: later timestamps are bad_value
_ID_RE = re.compile(r'[^\s"\x00-\x1f\x7f-\x9f]+')


class LineIssues:
    """Counts of skipped lines per reason plus the first :data:`FIRST_LINES` line numbers (1-based)."""

    def __init__(self):
        self.counts = {}
        self.first = {}

    def add(self, reason, lineno):
        n = self.counts.get(reason, 0)
        self.counts[reason] = n + 1
        if n < FIRST_LINES:
            self.first.setdefault(reason, []).append(lineno)

    def total(self):
        return sum(self.counts.values())

    def as_dict(self):
        return {r: {"count": self.counts[r], "first_lines": self.first[r]} for r in sorted(self.counts)}


def valid_id(value):
    """True when ``value`` can be a RecBole token: non-empty, at most :data:`MAX_ID_CHARS`, not
    ``[PAD]``, no whitespace/quote/control char."""
    return len(value) <= MAX_ID_CHARS and value != PAD_TOKEN and _ID_RE.fullmatch(value) is not None


def bad_reason(line):
    """``non_utf8`` or ``malformed_json``: why a non-blank line that does not parse is skipped."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "non_utf8"
    return "malformed_json"
