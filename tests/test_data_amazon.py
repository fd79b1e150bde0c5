"""Raw Amazon readers and text cleaning on hand-made lines covering every edge case."""
import gzip
import json

import pytest

from conftest import r23, write_lines
from recbole_blairclip.data import meta as meta_file, reader, reviews as review_file
from recbole_blairclip.data.atomic import read_columns
from recbole_blairclip.data.convert import convert
from recbole_blairclip.data.text import _TAG_RE, clean_text, to_category_tokens
from recbole_blairclip.errors import DatasetError


# line numbers below are 1-based positions in this list
REVIEW_LINES = [
    r23("U1", "I1", 1_600_000_000_000) + b"\n",                     # 1 ok
    b"\n",                                                          # 2 blank
    b'{"user_id": "U1", "parent_asin": \n',                         # 3 malformed
    b'{"user_id": "U\xff\xfe", "parent_asin": "I2"}\n',             # 4 non-utf8
    b"[1, 2]\n",                                                    # 5 not an object
    json.dumps({"parent_asin": "I1", "rating": 5.0, "timestamp": 1}).encode() + b"\n",  # 6 missing user
    json.dumps({"user_id": "U1", "parent_asin": "I1", "rating": 5.0}).encode() + b"\n",  # 7 missing time
    r23("U1", "I1", 1, parent_asin=None) + b"\n",                   # 8 null item -> missing
    r23("U1", "I3", "1600000000000") + b"\n",                       # 9 time as string -> wrong type
    r23("U1", "I3", 1_600_000_000_000, rating="5") + b"\n",         # 10 rating string
    r23(123, "I3", 1_600_000_000_000) + b"\n",                      # 11 user int
    r23("U1", "I3", 1_600_000_000_000, rating=True) + b"\n",        # 12 rating bool
    r23("U1", "I3", -5) + b"\n",                                    # 13 negative time
    r23("U 1", "I3", 1_600_000_000_000) + b"\n",                    # 14 id with space
    r23("U1", "I\t3", 1_600_000_000_000) + b"\n",                   # 15 id with tab
    r23("U1", 'I"3', 1_600_000_000_000) + b"\n",                    # 16 id with quote
    r23("U1", "I2", 1_600_000_100_000, rating=4) + b"\r\n",         # 17 ok, CRLF, int rating
    r23("U1", "I1", 1_600_000_200_000, rating=1.0) + b"\n",         # 18 duplicate of line 1, later
    r23("U2", "I9", 1_500_000_000_500) + b"\n",                     # 19 ok (tie below)
    r23("U2", "I3", 1_500_000_000_500) + b"\n",                     # 20 same time as 19: I3 < I9
    r23("U2", "I1", 1_400_000_000_000, rating=2.5) + b"\n",         # 21 ok, earliest of U2
    r23("U3", "I1", 1_400_000_000_000) + b"\n",                     # 22 single-review user -> dropped
    r23("U1", "I3", 1_600_000_300_000),                             # 23 ok, no trailing newline
]

META_LINES = [
    json.dumps({"parent_asin": "I1", "title": '"Best" <b>Fridge</b> &amp; Co\tX', "description": ["Line1<br>Line2", "  x \n y "],
                "features": ["Fits\u00a0all", "Energy \u2728"], "store": "Acme Corp",
                "categories": ["Appliances", "Refrigerators, Freezers & Ice Makers"],
                "images": [{"thumb": "t0", "large": "L0", "hi_res": None, "variant": "PT01"},
                           {"thumb": "t1", "large": "Lmain", "hi_res": "Hmain", "variant": "MAIN"}]}).encode() + b"\n",
    json.dumps({"parent_asin": "I2", "title": "Filter", "description": [], "features": [], "store": None,
                "categories": [], "images": {"thumb": ["a"], "large": [None], "hi_res": ["H2"], "variant": ["MAIN"]}}).encode() + b"\n",
    json.dumps({"parent_asin": "I1", "title": "DUPLICATE"}).encode() + b"\n",        # 3 duplicate: first wins
    json.dumps({"parent_asin": "I77", "title": "never reviewed"}).encode() + b"\n",  # 4 unknown item
    b"{broken\n",                                                                    # 5 malformed
    json.dumps({"title": "no id"}).encode() + b"\n",                                 # 6 missing id
    b"\n",                                                                           # 7 blank
]


def test_clean_text_rules():
    assert clean_text("<p>Hello&nbsp;<b>World</b></p>\t\n x") == "Hello World x"
    assert clean_text("a &lt;br&gt; b &amp;amp; c") == "a b &amp; c"
    assert clean_text('"quoted" 12" tv') == "''quoted'' 12'' tv"
    assert clean_text("a\x00b\x1fc\u2028d") == "a b c d"
    assert clean_text("") == "" and clean_text(None) == ""
    assert to_category_tokens(["Appliances", " Parts & Accessories "]) == "Appliances Parts_&_Accessories"
    # the fast entity path agrees with html.unescape on random mixes of entities
    import html
    import random

    rng = random.Random(0)
    pieces = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&nbsp;", "&amp;amp;", "&copy;", "&#233;", "&", "a", " ",
              "x&y", "&ampx", "&amp;lt;"]
    for _ in range(3000):
        v = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        want = " ".join(_TAG_RE.sub(" ", html.unescape(v)).replace('"', "''").split())
        assert clean_text(v) == want, v


def test_image_url_both_layouts():
    assert meta_file.image_url_2023([{"large": "L0", "variant": "PT01"}, {"large": "LM", "variant": "MAIN"}]) == "LM"
    assert meta_file.image_url_2023({"large": [None, "L1"], "hi_res": ["H0", None], "variant": ["MAIN", "PT"]}) == "H0"
    assert meta_file.image_url_2023([]) == "" and meta_file.image_url_2023(None) == ""
    assert meta_file.image_url_2018({"imageURLHighRes": [], "image": ["u1"], "imageURL": ["u0"]}) == "u1"
    assert meta_file.image_url_2018({"imageURLHighRes": ["h"], "imageURL": ["u0"]}) == "h"


@pytest.mark.parametrize("gz", [False, True])
def test_read_reviews_edge_cases(tmp_path, gz):
    path = write_lines(tmp_path / ("r.jsonl.gz" if gz else "r.jsonl"), REVIEW_LINES, gz=gz)
    rv = review_file.read_reviews(path)
    assert rv.schema == "amazon2023"
    assert rv.lines == 23 and rv.blank_lines == 1
    bad = rv.issues.as_dict()
    assert bad == {
        "malformed_json": {"count": 1, "first_lines": [3]},
        "non_utf8": {"count": 1, "first_lines": [4]},
        "not_an_object": {"count": 1, "first_lines": [5]},
        "missing_field": {"count": 3, "first_lines": [6, 7, 8]},
        "wrong_type": {"count": 4, "first_lines": [9, 10, 11, 12]},
        "bad_value": {"count": 1, "first_lines": [13]},
        "bad_id": {"count": 3, "first_lines": [14, 15, 16]},
    }
    assert len(rv.user) == 8
    assert rv.timestamp[0] == 1_600_000_000.0  # ms -> s


def test_convert_edge_cases(tmp_path):
    rev = write_lines(tmp_path / "r.jsonl", REVIEW_LINES)
    meta = write_lines(tmp_path / "m.jsonl.gz", META_LINES, gz=True)
    stats = convert(rev, meta, name="edge", out=str(tmp_path / "out"))
    folder = tmp_path / "out" / "edge"
    inter = read_columns(str(folder / "edge.inter"))
    # U1: I1 (line 1; line 18 is a later duplicate), I2, I3; U2: I1, then tie I3 < I9; U3 dropped
    assert list(zip(inter["user_id"], inter["item_id"], inter["rating"], inter["timestamp"])) == [
        ("U1", "I1", "5.0", "1600000000.0"), ("U1", "I2", "4.0", "1600000100.0"), ("U1", "I3", "5.0", "1600000300.0"),
        ("U2", "I1", "2.5", "1400000000.0"), ("U2", "I3", "5.0", "1500000000.5"), ("U2", "I9", "5.0", "1500000000.5")]
    test = read_columns(str(folder / "edge.test.inter"))
    assert test["item_id"] == ["I3", "I9"] and test["item_id_list"] == ["I1 I2", "I1 I3"]
    valid = read_columns(str(folder / "edge.valid.inter"))
    assert valid["item_id"] == ["I2", "I3"] and valid["item_id_list"] == ["I1", "I1"]
    assert read_columns(str(folder / "edge.train.inter"))["item_id"] == ["I1", "I1"]
    assert read_columns(str(folder / "edge.train_seq.inter"))["item_id"] == []  # one train item per user
    assert stats["dropped"]["duplicate_pairs"] == 1 and stats["dropped"]["user_below_min_inter"] == 1
    assert stats["reviews"]["bad_lines_total"] == 14
    assert stats["timestamp_ties"] == 1
    assert stats["cold_start"] == {"test_targets": 2, "valid_targets": 2}

    item = read_columns(str(folder / "edge.item"))
    rows = {i: k for k, i in enumerate(item["item_id"])}
    assert item["item_id"] == ["I1", "I2", "I3", "I9"]  # items of kept interactions, string order
    k = rows["I1"]
    assert item["title"][k] == "''Best'' Fridge & Co X"
    assert item["item_text"][k] == "''Best'' Fridge & Co X Line1 Line2 x y Fits all Energy \u2728"
    assert item["categories"][k] == "Appliances Refrigerators,_Freezers_&_Ice_Makers"
    assert item["store"][k] == "Acme Corp" and item["image_url"][k] == "Lmain"
    assert item["image_url"][rows["I2"]] == "H2" and item["store"][rows["I2"]] == ""
    assert item["item_text"][rows["I3"]] == "" and item["title"][rows["I9"]] == ""
    m = stats["meta"]
    assert m["records"] == 2 and m["unknown_items"] == 1 and m["unknown_items_first_lines"] == [4]
    assert m["duplicate_items"] == 1 and m["duplicate_items_first_lines"] == [3]
    assert m["bad_lines"] == {"malformed_json": {"count": 1, "first_lines": [5]},
                              "missing_field": {"count": 1, "first_lines": [6]}}
    assert stats["items"]["without_meta"] == 2  # I3, I9 stay with empty text
    # no tab/newline inside any value: every line has exactly the header's column count
    for f in folder.iterdir():
        if f.suffix in (".inter", ".item"):
            lines = f.read_text(encoding="utf-8").split("\n")
            assert lines[-1] == "" and len({ln.count("\t") for ln in lines[:-1]}) == 1


def test_items_without_meta_and_meta_items_options(tmp_path):
    rev = write_lines(tmp_path / "r.jsonl", REVIEW_LINES)
    meta = write_lines(tmp_path / "m.jsonl", META_LINES)
    s = convert(rev, meta, name="d", out=str(tmp_path), keep_items_without_meta=False)
    # I3 and I9 have no meta: their interactions go; U1 keeps I1, I2; U2 keeps only I1 -> dropped
    inter = read_columns(str(tmp_path / "d" / "d.inter"))
    assert list(zip(inter["user_id"], inter["item_id"])) == [("U1", "I1"), ("U1", "I2")]
    assert s["dropped"]["items_without_meta"] == 3  # lines 19, 20, 23
    s = convert(rev, meta, name="e", out=str(tmp_path), include_meta_items=True)
    assert read_columns(str(tmp_path / "e" / "e.item"))["item_id"] == ["I1", "I2", "I3", "I77", "I9"]
    assert s["meta"]["unknown_items"] == 1


def test_2018_schema_detected(tmp_path):
    lines = [json.dumps({"overall": 5.0, "reviewerID": "R1", "asin": "A1", "unixReviewTime": 1_400_000_000}).encode() + b"\n",
             json.dumps({"overall": 3.0, "reviewerID": "R1", "asin": "A2", "unixReviewTime": 1_400_000_100}).encode() + b"\n",
             json.dumps({"overall": 3.0, "user_id": "R1", "parent_asin": "A3", "timestamp": 1}).encode() + b"\n"]
    meta = [json.dumps({"asin": "A1", "title": "T<br/>1", "feature": ["f1"], "description": "d1", "brand": "B",
                        "category": ["Appliances", "Parts"], "imageURLHighRes": ["h1"]}).encode() + b"\n"]
    rev = write_lines(tmp_path / "r.json.gz", lines, gz=True)
    mp = write_lines(tmp_path / "m.json", meta)
    s = convert(rev, mp, name="old", out=str(tmp_path))
    assert s["reviews"]["schema"] == "amazon2018" and s["meta"]["schema"] == "amazon2018"
    assert s["reviews"]["bad_lines"] == {"missing_field": {"count": 1, "first_lines": [3]}}
    item = read_columns(str(tmp_path / "old" / "old.item"))
    assert item["item_text"][0] == "T 1 d1 f1" and item["store"][0] == "B" and item["image_url"][0] == "h1"
    assert read_columns(str(tmp_path / "old" / "old.inter"))["timestamp"] == ["1400000000.0", "1400000100.0"]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\n\n", "empty"),
    (b"user_id,item_id,rating\nU1,I1,5\n", "not a JSON Lines file"),
    (b'[\n  {"user_id": "U1"}\n]\n', "not a JSON Lines file"),
    (json.dumps([{"user_id": "U1"}]).encode(), "not a JSON Lines file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not a JSON Lines file"),
    (json.dumps({"parent_asin": "I1", "title": "x"}).encode() + b"\n", "meta file"),
    (json.dumps({"foo": 1}).encode() + b"\n", "unknown reviews schema"),
])
def test_not_json_lines_fails_at_once(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        convert(str(path), None, name="x", out=str(tmp_path / "out"))
    assert not (tmp_path / "out" / "x").exists()


def test_corrupt_gzip_and_missing_files(tmp_path):
    good = gzip.compress(b"".join(REVIEW_LINES * 50))
    (tmp_path / "trunc.jsonl.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip"):
        convert(str(tmp_path / "trunc.jsonl.gz"), None, name="x", out=str(tmp_path / "out"))
    with pytest.raises(DatasetError, match="not found"):
        convert(str(tmp_path / "nope.jsonl"), None, name="x", out=str(tmp_path / "out"))
    rev = write_lines(tmp_path / "r.jsonl", REVIEW_LINES)
    with pytest.raises(DatasetError, match="not found"):
        convert(rev, str(tmp_path / "nope_meta.jsonl"), name="x", out=str(tmp_path / "out"))
    empty_meta = tmp_path / "empty_meta.jsonl"
    empty_meta.write_bytes(b"")
    s = convert(rev, str(empty_meta), name="x", out=str(tmp_path / "out"))
    assert s["meta"]["schema"] is None and s["items"]["without_meta"] == s["items"]["rows"] == 4
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


@pytest.mark.parametrize("gz", [False, True])
def test_fast_and_line_by_line_paths_agree(tmp_path, monkeypatch, gz):
    """Blocks of clean lines go through pyarrow, the others line by line: same result either way."""
    import random

    rng = random.Random(0)
    good = [r23(f"U{rng.randrange(40)}", f"I{rng.randrange(30)}", 1_600_000_000_000 + rng.randrange(10**6),
                rating=float(rng.randint(1, 5))) + b"\n" for _ in range(400)]
    lines = list(good)
    for k in (37, 150, 151, 290):  # a few bad lines, including ones the C++ parser would accept
        lines.insert(k, REVIEW_LINES[[2, 5, 12, 14][(k // 37) % 4]])
    lines.insert(200, b"\n")
    lines.insert(320, r23("U\u00e9", "I1", 1_600_000_000_000) + b"\n")  # non-ASCII id: valid
    nbsp = r23("U\u00a0x", "I1", 1_600_000_000_000) + b"\n"  # NBSP inside: a bad id
    lines.insert(330, nbsp)
    path = write_lines(tmp_path / ("mix.jsonl.gz" if gz else "mix.jsonl"), lines, gz=gz)
    monkeypatch.setattr(reader, "_BLOCK", 700)  # many small blocks
    calls = []
    real_slow = review_file._slow_block
    monkeypatch.setattr(review_file, "_slow_block", lambda *a: calls.append(1) or real_slow(*a))
    fast = review_file.read_reviews(path)
    n_slow = len(calls)
    slow = review_file.read_reviews(path, fast=False)
    assert 0 < n_slow < len(calls) - n_slow  # some blocks took each path
    for f in ("user", "item", "rating", "timestamp"):
        assert getattr(fast, f).tolist() == getattr(slow, f).tolist(), f
    assert fast.user_names.to_pylist() == slow.user_names.to_pylist() and fast.item_names == slow.item_names
    assert fast.issues.as_dict() == slow.issues.as_dict() and fast.blank_lines == slow.blank_lines == 1
    bad_ids = [k + 1 for k, line in enumerate(lines) if line in (nbsp, REVIEW_LINES[14])]
    assert fast.issues.as_dict()["bad_id"]["first_lines"] == bad_ids and len(bad_ids) == 2
    assert len(fast.user) == 401 and "U\u00e9" in fast.user_names.to_pylist()
