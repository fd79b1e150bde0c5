"""Bad input on the data side (issue 13): each case gets one clear line and loses nothing."""
import errno
import json
import os

import pandas as pd
import pytest
from conftest import r23, write_lines, write_tiny_dataset

from recbole_blairclip.cli import main as blairclip
from recbole_blairclip.data import atomic, line_rules, reviews as review_file
from recbole_blairclip.data import convert as convert_module
from recbole_blairclip.data.atomic import read_columns, recover_replaced
from recbole_blairclip.data.check import check_split
from recbole_blairclip.data.convert import convert
from recbole_blairclip.errors import DatasetError

T0 = 1_600_000_000_000  # ms


def _reviews(tmp_path, extra=()):
    lines = [r23(u, i, T0 + 1000 * k) + b"\n" for k, (u, i) in enumerate(
        [("U1", "I1"), ("U1", "I2"), ("U1", "I3"), ("U2", "I2"), ("U2", "I3"), ("U3", "I1"), ("U3", "I3")])]
    return write_lines(tmp_path / "r.jsonl", lines + [line + b"\n" for line in extra])


def _meta(tmp_path, description="plain"):
    lines = [json.dumps({"parent_asin": i, "title": f"T{i}", "description": [description if i == "I1" else "d"],
                         "features": [], "categories": [], "store": "s", "images": []}).encode() + b"\n"
             for i in ("I1", "I2", "I3")]
    return write_lines(tmp_path / "m.jsonl", lines)


def _recbole_read(path):
    # exactly how RecBole 1.2.1 Dataset._load_feat reads an atomic file
    return pd.read_csv(path, delimiter="\t", dtype=str, encoding="utf-8", engine="python")


# ---- item 2: fields RecBole cannot read ----------------------------------------------------------

def test_long_text_is_capped_and_long_ids_are_bad_ids(tmp_path):
    long_user = "U" * 200_000
    reviews = _reviews(tmp_path, [r23(long_user, "I1", T0), r23(long_user, "I2", T0 + 5)])
    meta = _meta(tmp_path, description="word " * 32_000)  # 160 KB description
    stats = convert(reviews, meta, name="big", out=str(tmp_path / "out"), max_text_chars=5000)
    assert stats["reviews"]["bad_lines"]["bad_id"] == {"count": 2, "first_lines": [8, 9]}
    assert stats["items"]["text_truncated"] == 1 and stats["params"]["max_text_chars"] == 5000
    folder = tmp_path / "out" / "big"
    item = _recbole_read(folder / "big.item")  # raised "field larger than field limit" before
    assert item["item_text:token_seq"].str.len().max() <= 5000
    assert set(read_columns(str(folder / "big.inter"))["user_id"]) == {"U1", "U2", "U3"}
    assert check_split(str(folder)).ok
    with pytest.raises(DatasetError, match="max_text_chars"):
        convert(reviews, meta, name="big2", out=str(tmp_path / "out"), max_text_chars=200_000)


def test_check_split_proves_recbole_can_read_the_files(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    assert check_split(folder).ok
    path = os.path.join(folder, "tiny.item")
    with open(path, "a", encoding="utf-8") as f:
        f.write("i999\t" + "x" * 140_000 + "\n")  # a field over the csv module's 131072 limit
    result = check_split(folder)
    assert not result.ok
    assert any("tiny.item" in v and "RecBole's reader cannot load it" in v for v in result.violations)


# ---- item 6: a reviews file passed as --meta -------------------------------------------------------

def test_reviews_file_as_meta_stops_naming_the_file(tmp_path):
    reviews = _reviews(tmp_path)
    with pytest.raises(DatasetError, match="r.jsonl: this is a reviews file, not a meta file"):
        convert(reviews, reviews, name="x", out=str(tmp_path / "out"))
    assert not (tmp_path / "out" / "x").exists()


# ---- item 8: check-split on corrupt files ----------------------------------------------------------

@pytest.mark.parametrize("damage, expected", [
    ("time", "tiny.train.inter line 2: field timestamp is 'abc', not a number"),
    ("utf8", "tiny.test.inter line 3: not valid UTF-8"),
    ("stats", "tiny.stats.json line 1: broken JSON"),
])
def test_check_split_reports_corrupt_files(tmp_path, capsys, damage, expected):
    folder = write_tiny_dataset(str(tmp_path))
    if damage == "time":
        path = os.path.join(folder, "tiny.train.inter")
        lines = open(path, encoding="utf-8").read().split("\n")
        fields = lines[1].split("\t")
        fields[3] = "abc"
        lines[1] = "\t".join(fields)
        open(path, "w", encoding="utf-8").write("\n".join(lines))
    elif damage == "utf8":
        path = os.path.join(folder, "tiny.test.inter")
        data = open(path, "rb").read().split(b"\n")
        data[2] = data[2].replace(b"u", b"\xff", 1)
        open(path, "wb").write(b"\n".join(data))
    else:
        open(os.path.join(folder, "tiny.stats.json"), "w").write('{"params": {"max_item_list_length": 5')
    rc = blairclip(["check-split", folder])
    out = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out.err
    assert expected in out.out


# ---- item 9: disk errors in convert ----------------------------------------------------------------

def test_output_under_a_regular_file_fails_before_reading(tmp_path, monkeypatch, capsys):
    reviews = _reviews(tmp_path)
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(review_file, "read_reviews", lambda *a, **k: pytest.fail("input read before the check"))
    rc = blairclip(["convert", "--reviews", reviews, "--name", "d", "--out", str(tmp_path / "afile" / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot write into output folder" in err[0]


def test_full_disk_is_one_line_and_nothing_half_written(tmp_path, monkeypatch, capsys):
    reviews = _reviews(tmp_path)
    calls = []
    real_write = atomic.write_atomic

    def full(path, header, lines):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_write(path, header, lines)

    monkeypatch.setattr(atomic, "write_atomic", full)
    rc = blairclip(["convert", "--reviews", reviews, "--name", "d", "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "No space left on device" in err[0]
    assert os.listdir(tmp_path / "out") == []  # no dataset, no temporary folder


# ---- item 10: the --force window ------------------------------------------------------------------

def test_interrupt_between_the_renames_keeps_the_old_dataset(tmp_path, monkeypatch):
    reviews = _reviews(tmp_path)
    out = tmp_path / "out"
    convert(reviews, None, name="d", out=str(out))
    before = (out / "d" / "d.inter").read_bytes()
    real_replace = os.replace
    calls = []

    def interrupted(src, dst):
        if os.path.isdir(src):  # the dataset folders' renames, not the files' own temp renames
            calls.append((src, dst))
        if len(calls) == 2:  # after the old copy was moved aside, before the new one is in place
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert(reviews, None, name="d", out=str(out), min_user_inter=3, force=True)
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert (out / "d" / "d.inter").read_bytes() == before
    assert os.listdir(out) == ["d"]


def test_a_killed_replacement_is_recovered_by_the_next_run(tmp_path):
    reviews = _reviews(tmp_path)
    out = tmp_path / "out"
    convert(reviews, None, name="d", out=str(out))
    before = (out / "d" / "d.inter").read_bytes()
    os.replace(out / "d", out / ".d.old-12345")  # what a SIGKILL between the two renames leaves
    with pytest.raises(DatasetError, match="already exists"):  # recovered, so not silently replaced
        convert(reviews, None, name="d", out=str(out))
    assert (out / "d" / "d.inter").read_bytes() == before and os.listdir(out) == ["d"]
    (out / ".d.old-777").mkdir()  # a stale aside copy next to a dataset is removed
    assert recover_replaced(str(out), "d") is None and os.listdir(out) == ["d"]


# ---- item 11: benchmark dataset names ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "/tmp/x", "..", "a/b"])
def test_benchmark_dataset_name_cannot_leave_out(tmp_path, monkeypatch, name):
    from recbole_blairclip.benchmark.plan import row_folder
    from recbole_blairclip.benchmark.runner import benchmark

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dataset_atomic" / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="invalid dataset name"):
        benchmark(dataset=name, models="BPR", config_dict={"data_path": "dataset_atomic/a"},
                  out=str(tmp_path / "results"), progress="none")
    assert sorted(os.listdir(tmp_path)) == ["dataset_atomic"]
    assert row_folder("..") == "_.." and row_folder(".hidden") == "_.hidden"


# ---- item 12: ids equal to RecBole's padding token --------------------------------------------------

def test_padding_token_ids_are_bad_ids(tmp_path):
    reviews = _reviews(tmp_path, [r23("[PAD]", "I1", T0), r23("[PAD]", "I2", T0 + 5),
                                  r23("U1", "[PAD]", T0 + 9)])
    meta_lines = open(_meta(tmp_path), "rb").read() + json.dumps({"parent_asin": "[PAD]"}).encode() + b"\n"
    meta = write_lines(tmp_path / "m2.jsonl", [meta_lines])
    for fast in (True, False):
        rv = review_file.read_reviews(reviews, fast=fast)
        assert rv.issues.counts["bad_id"] == 3
    stats = convert(reviews, meta, name="p", out=str(tmp_path / "out"))
    assert stats["meta"]["bad_lines"]["bad_id"] == {"count": 1, "first_lines": [4]}
    inter = read_columns(str(tmp_path / "out" / "p" / "p.inter"))
    assert "[PAD]" not in inter["user_id"] and "[PAD]" not in inter["item_id"]


def test_check_split_flags_padding_token_ids(tmp_path):
    folder = write_tiny_dataset(str(tmp_path))
    for suffix in ("inter", "train.inter"):
        path = os.path.join(folder, f"tiny.{suffix}")
        text = open(path, encoding="utf-8").read()
        open(path, "w", encoding="utf-8").write(text.replace("u0\t", "[PAD]\t"))
    result = check_split(folder)
    assert not result.ok and any("padding token [PAD]" in v for v in result.violations)


# ---- item 14: far-future timestamps, Ctrl-C ---------------------------------------------------------

@pytest.mark.parametrize("fast", [True, False])
def test_year_3000_timestamps_are_bad_values(tmp_path, fast):
    year3000_ms = 32_503_680_000_000
    reviews = _reviews(tmp_path, [r23("U1", "I9", year3000_ms)])
    rv = review_file.read_reviews(reviews, fast=fast)
    assert rv.issues.as_dict()["bad_value"] == {"count": 1, "first_lines": [8]}
    assert len(rv.user) == 7 and rv.timestamp.max() < line_rules.MAX_TIME


@pytest.mark.parametrize("command", ["convert", "features"])
def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys, command):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if command == "convert":
        monkeypatch.setattr(convert_module, "convert", interrupted)
        argv = ["convert", "--reviews", _reviews(tmp_path), "--name", "d", "--out", str(tmp_path / "out")]
    else:
        import recbole_blairclip.features.extract as extract

        monkeypatch.setattr(extract, "extract_features", interrupted)
        argv = ["features", "--dataset", write_tiny_dataset(str(tmp_path)), "--text-encoder", "none",
                "--image-encoder", "pixels"]
    rc = blairclip(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1 and "interrupted" in err[0]
