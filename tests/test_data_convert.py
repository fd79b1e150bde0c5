"""convert(): determinism, --force, nothing half-written, the CLI; synth: determinism and its story."""
import csv
import gzip
import json
import os

import pytest

from recbole_blairclip.cli import main as cli_main
from recbole_blairclip.data import atomic
from recbole_blairclip.data.check import check_split
from recbole_blairclip.data.convert import convert
from recbole_blairclip.data.synth import synthesize
from recbole_blairclip.errors import DatasetError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(str(out), users=3000, items=300, seed=3, image_size=32)
    return out, summary


def files_of(folder):
    return {p: open(os.path.join(folder, p), "rb").read() for p in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, p))}


def test_same_input_byte_identical_output(raw, tmp_path):
    out, s = raw
    kw = dict(name="s", images_dir=str(out / "images"))
    a = convert(s["paths"]["reviews"], s["paths"]["meta"], out=str(tmp_path / "a"), **kw)
    b = convert(s["paths"]["reviews"], s["paths"]["meta"], out=str(tmp_path / "b"), **kw)
    fa, fb = files_of(tmp_path / "a" / "s"), files_of(tmp_path / "b" / "s")
    assert sorted(fa) == ["s.inter", "s.item", "s.stats.json", "s.test.inter", "s.train.inter",
                          "s.train_seq.inter", "s.valid.inter"]
    assert fa == fb
    assert files_of(tmp_path / "a" / "s" / "images") == files_of(tmp_path / "b" / "s" / "images")
    assert a["items"]["images_copied"] == len(os.listdir(tmp_path / "a" / "s" / "images")) > 0
    stats = json.loads(fa["s.stats.json"])
    assert stats["reviews"]["file"] == "Appliances.jsonl.gz" and "seconds" not in stats
    assert check_split(tmp_path / "a" / "s").ok


def test_force_and_nothing_half_written(raw, tmp_path, monkeypatch):
    out, s = raw
    rev, meta = s["paths"]["reviews"], s["paths"]["meta"]
    convert(rev, None, name="s", out=str(tmp_path))
    before = files_of(tmp_path / "s")
    with pytest.raises(DatasetError, match="already exists.*--force"):
        convert(rev, meta, name="s", out=str(tmp_path))
    assert files_of(tmp_path / "s") == before

    calls = []

    def failing_write(path, header, lines):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("interrupted while writing")
        return real_write(path, header, lines)

    real_write = atomic.write_atomic
    monkeypatch.setattr(atomic, "write_atomic", failing_write)
    with pytest.raises(KeyboardInterrupt):
        convert(rev, meta, name="s", out=str(tmp_path), force=True)
    assert files_of(tmp_path / "s") == before  # the old dataset is untouched
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        convert(rev, meta, name="new", out=str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["s"]  # no partial dataset, no temp folder
    monkeypatch.setattr(atomic, "write_atomic", real_write)

    convert(rev, meta, name="s", out=str(tmp_path), force=True)
    after = files_of(tmp_path / "s")
    assert after["s.inter"] == before["s.inter"] and after["s.item"] != before["s.item"]
    with pytest.raises(DatasetError, match="invalid dataset name"):
        convert(rev, meta, name="../evil", out=str(tmp_path))


def test_cli_synth_convert_check(tmp_path, capsys):
    raw_dir = tmp_path / "raw"
    assert cli_main(["synth", "--users", "800", "--items", "120", "--seed", "1", "--out", str(raw_dir),
                     "--no-images"]) == 0
    assert "reviews by 800 users on 120 items" in capsys.readouterr().out
    assert not (raw_dir / "images").exists()
    assert cli_main(["synth", "--users", "800", "--items", "120", "--out", str(raw_dir)]) == 2  # exists
    capsys.readouterr()
    args = ["convert", "--reviews", str(raw_dir / "Appliances.jsonl.gz"), "--meta",
            str(raw_dir / "meta_Appliances.jsonl.gz"), "--name", "cli", "--out", str(tmp_path / "ds"),
            "--no-progress", "--max-item-list-length", "7"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'ds' / 'cli'}") and "cold-start test targets" in out
    assert cli_main(args) == 2 and "--force" in capsys.readouterr().err
    assert cli_main(args + ["--force"]) == 0
    capsys.readouterr()
    assert cli_main(["check-split", str(tmp_path / "ds" / "cli")]) == 0
    stats = json.loads((tmp_path / "ds" / "cli" / "cli.stats.json").read_text())
    assert stats["params"]["max_item_list_length"] == 7


def test_synth_deterministic_and_story(raw, tmp_path):
    out, s = raw
    again = tmp_path / "again"
    synthesize(str(again), users=3000, items=300, seed=3, image_size=32)
    for name in ("Appliances.jsonl.gz", "meta_Appliances.jsonl.gz", "items_truth.tsv", "synth.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    assert files_of(out / "images") == files_of(again / "images")
    other = tmp_path / "other"
    synthesize(str(other), users=3000, items=300, seed=4, images=False)
    assert (other / "Appliances.jsonl.gz").read_bytes() != (out / "Appliances.jsonl.gz").read_bytes()

    truth = {r["item_id"]: r for r in csv.DictReader(open(out / "items_truth.tsv"), delimiter="\t")}
    reviews = [json.loads(line) for line in gzip.open(out / "Appliances.jsonl.gz")]
    meta = {m["parent_asin"]: m for m in map(json.loads, gzip.open(out / "meta_Appliances.jsonl.gz"))}
    assert len(reviews) == s["reviews"] and len(truth) == 300
    assert set(reviews[0]) == {"rating", "title", "text", "images", "asin", "parent_asin", "user_id", "timestamp",
                               "helpful_vote", "verified_purchase"}
    # very sparse users: most write one review
    per_user = {}
    for r in reviews:
        per_user.setdefault(r["user_id"], []).append(r)
    ones = sum(1 for v in per_user.values() if len(v) == 1) / len(per_user)
    assert 0.75 < ones < 0.95
    # popularity skew: the top 10 % of items get far more than 10 % of reviews
    counts = sorted((sum(1 for r in reviews if r["parent_asin"] == i) for i in truth), reverse=True)
    assert sum(counts[:30]) > 0.4 * len(reviews)
    # complements: after a primary appliance, the next purchase is often an accessory fitting its brand
    follow = fits = 0
    for v in per_user.values():
        v.sort(key=lambda r: r["timestamp"])
        for a, b in zip(v, v[1:]):
            ta, tb = truth[a["parent_asin"]], truth[b["parent_asin"]]
            if ta["kind"] == "primary" and tb["kind"] == "accessory":
                follow += 1
                fits += ta["brand"] == tb["brand"]
    assert follow > 50 and fits / follow > 0.4  # chance level is about 0.12
    # type and brand in the text; colour in the text only for some items, in the image for all
    with_meta = [i for i in truth if i in meta]
    for i in with_meta[:50]:
        title = meta[i]["title"]
        assert truth[i]["brand"] in title + " ".join(meta[i]["description"])
        assert (truth[i]["colour"].title() in title) == (truth[i]["colour_in_text"] == "1")
    hidden = sum(truth[i]["colour_in_text"] == "0" for i in with_meta) / len(with_meta)
    assert 0.55 < hidden < 0.85
    from PIL import Image

    from recbole_blairclip.data.synth import COLOURS

    for i in [i for i in truth if truth[i]["has_image"] == "1"][:40]:
        im = Image.open(out / "images" / f"{i}.png").convert("RGB")
        assert im.size == (32, 32)
        rgb = COLOURS[truth[i]["colour"]][0]
        assert rgb in {c for _, c in im.getcolors(4096)}, i  # the colour is drawn
    assert sum(t["has_meta"] == "0" for t in truth.values()) < 15
