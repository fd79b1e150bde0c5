"""convert + check-split on the real Amazon samples in ../shared/data (skipped when absent)."""
import gzip
import json
import os

import pytest

from conftest import SHARED_DATA
from recbole_blairclip.data.atomic import read_columns
from recbole_blairclip.data.check import check_split
from recbole_blairclip.data.convert import convert

A18 = os.path.join(SHARED_DATA, "amazon2018-appliances")
H23 = os.path.join(SHARED_DATA, "amazon2023-user-histories")


def expected_split(events):
    """events: (user, item, time_seconds, line) -> {user: [(item, time), ...]} in split order, brute force."""
    first = {}
    for u, i, t, line in events:
        if (u, i) not in first or (t, line) < first[(u, i)]:
            first[(u, i)] = (t, line)
    users = {}
    for (u, i), (t, line) in first.items():
        users.setdefault(u, []).append((t, i, line))
    return {u: [(i, t) for t, i, _ in sorted(ev)] for u, ev in users.items() if len(ev) >= 2}


def assert_matches(folder, name, want):
    inter = read_columns(os.path.join(folder, f"{name}.inter"))
    got = {}
    for u, i, t in zip(inter["user_id"], inter["item_id"], inter["timestamp"]):
        got.setdefault(u, []).append((i, float(t)))
    assert got == want
    test = read_columns(os.path.join(folder, f"{name}.test.inter"))
    assert dict(zip(test["user_id"], test["item_id"])) == {u: ev[-1][0] for u, ev in want.items()}
    valid = read_columns(os.path.join(folder, f"{name}.valid.inter"))
    assert dict(zip(valid["user_id"], valid["item_id"])) == {u: ev[-2][0] for u, ev in want.items() if len(ev) >= 3}
    result = check_split(folder)
    assert result.ok, result.summary()


@pytest.mark.skipif(not os.path.isdir(A18), reason="../shared/data not present")
def test_amazon2018_appliances_5core(tmp_path):
    reviews = os.path.join(A18, "Appliances_5.json.gz")
    meta = os.path.join(A18, "meta_Appliances_first100.json.gz")
    raw = [json.loads(line) for line in gzip.open(reviews)]
    stats = convert(reviews, meta, name="a18", out=str(tmp_path))
    assert stats["reviews"]["schema"] == "amazon2018" and stats["reviews"]["read"] == len(raw) == 2277
    distinct = {(r["reviewerID"], r["asin"]) for r in raw}
    assert len(distinct) == 183  # the 5-core file repeats rows across product variants
    assert stats["dropped"]["duplicate_pairs"] == len(raw) - len(distinct)
    want = expected_split([(r["reviewerID"], r["asin"], float(r["unixReviewTime"]), k) for k, r in enumerate(raw)])
    assert_matches(str(tmp_path / "a18"), "a18", want)
    assert stats["kept"]["interactions"] == sum(map(len, want.values()))
    assert stats["timestamp_ties"] > 0  # day-resolution times: the item-id tie rule is exercised
    m = stats["meta"]
    meta_ids = {json.loads(line)["asin"] for line in gzip.open(meta)}
    kept_items = {i for ev in want.values() for i, _ in ev}
    reviewed = {r["asin"] for r in raw}
    assert m["records"] == len(meta_ids & kept_items)
    assert m["not_kept_items"] == len((meta_ids & reviewed) - kept_items)
    assert m["unknown_items"] == len(meta_ids - {r["asin"] for r in raw})
    item = read_columns(str(tmp_path / "a18" / "a18.item"))
    assert set(item["item_id"]) == kept_items
    texts = [t for t in item["item_text"] if t]
    assert len(texts) == len(meta_ids & kept_items) >= 1 and stats["items"]["without_meta"] == len(kept_items) - len(texts)
    assert all("<" not in t and "&amp;" not in t and "\t" not in t for t in texts)


def rebuild_2023(tmp_path):
    """The third-party per-user histories turned back into raw 2023 review and meta lines."""
    rows = [json.loads(line) for part in ("training", "validation", "test")
            for line in open(os.path.join(H23, f"{part}.jsonl"), encoding="utf-8")]
    reviews, meta = [], {}
    for r in rows:
        for it in r["history"] + [r["heldout"]]:
            reviews.append({"rating": it["rating"], "title": it["review_title"], "text": it["review_full"],
                            "images": [], "asin": it["parent_asin"], "parent_asin": it["parent_asin"],
                            "user_id": r["user_id"], "timestamp": it["timestamp_ms"], "helpful_vote": 0,
                            "verified_purchase": True})
            p = it["product"]
            meta.setdefault(it["parent_asin"], {
                "main_category": p["main_category"], "title": p["title"], "average_rating": None,
                "rating_number": None, "features": [], "description": [], "price": p["price"], "images": [],
                "videos": [], "store": p["brand"], "categories": [], "details": {}, "parent_asin": it["parent_asin"],
                "bought_together": None})
    rp, mp = tmp_path / "reviews.jsonl.gz", tmp_path / "meta.jsonl"
    with gzip.open(rp, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in reviews)
    mp.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in meta.values()), encoding="utf-8")
    return str(rp), str(mp), reviews, meta


@pytest.mark.skipif(not os.path.isdir(H23), reason="../shared/data not present")
def test_amazon2023_rebuilt_histories(tmp_path):
    rp, mp, reviews, meta = rebuild_2023(tmp_path)
    stats = convert(rp, mp, name="h23", out=str(tmp_path / "out"), max_item_list_length=3)
    assert stats["reviews"]["schema"] == "amazon2023" and stats["reviews"]["read"] == len(reviews) == 3455
    assert stats["reviews"]["bad_lines_total"] == 0 and stats["meta"]["records"] == len(meta)
    want = expected_split([(r["user_id"], r["parent_asin"], r["timestamp"] / 1000, k) for k, r in enumerate(reviews)])
    folder = str(tmp_path / "out" / "h23")
    assert_matches(folder, "h23", want)
    test = read_columns(os.path.join(folder, "h23.test.inter"))
    assert max(len(h.split()) for h in test["item_id_list"]) == 3  # truncated to max_item_list_length
    item = read_columns(os.path.join(folder, "h23.item"))
    titles = dict(zip(item["item_id"], item["title"]))
    some = next(i for i in titles if any(ord(c) > 127 for c in meta[i]["title"]))
    assert titles[some] and any(ord(c) > 127 for c in titles[some])  # unicode kept
    assert stats["items"]["without_meta"] == 0
