"""`blairclip convert --inter`: RecBole atomic datasets (interactions or sequence files) into the split."""
import filecmp
import json
import os
from collections import defaultdict

import pytest

from recbole_blairclip.cli import main as cli_main
from recbole_blairclip.data.atomic import read_columns
from recbole_blairclip.data.check import check_split
from recbole_blairclip.data.recbole_atomic import convert_recbole
from recbole_blairclip.errors import DatasetError

TOYS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "amazon2014-toys-recbole")


def write(path, lines, mode="w"):
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else (line + "\n").encode("utf-8"))
    return str(path)


def brute_force(rows, min_rating, user_k, item_k):
    """Independent filter: rating, dedupe (earliest), then user / item minimum until both hold."""
    kept = [(u, i, r, t) for u, i, r, t in rows if min_rating is None or r >= min_rating]
    first = {}
    for k, (u, i, r, t) in enumerate(kept):
        if (u, i) not in first or t < first[(u, i)][0][3]:
            first[(u, i)] = ((u, i, r, t), k)
    inter = {key: v[0] for key, v in first.items()}
    while True:
        uc, ic = defaultdict(int), defaultdict(int)
        for u, i in inter:
            uc[u] += 1
            ic[i] += 1
        drop = {key for key in inter if uc[key[0]] < user_k or ic[key[1]] < item_k}
        if not drop:
            return inter
        for key in drop:
            del inter[key]


@pytest.fixture()
def atomic(tmp_path):
    good = []
    for u in range(30):
        for k in range(3 + u % 9):
            item = (u * 7 + k * 3) % 23
            good.append((f"u{u}", f"i{item}", float(1 + (u + k) % 5), float(1000 + u * 100 + k)))
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in good]
    bad = {
        "wrong_columns": "u1\ti1\t3.0",
        "bad_id": "u 1\ti1\t3.0\t5.0",
        "bad_value": "u2\ti2\tfive\t5.0",
        "non_utf8": b"u3\t\xff\xfe\t3.0\t5.0\n",
    }
    bad_lines = {}
    for reason, line in bad.items():
        lines.append(line)
        bad_lines[reason] = len(lines)  # 1-based line number (header = 1)
    lines.append("u4\ti5\tnan\t7.0")  # not a finite rating
    bad_lines["bad_value_nan"] = len(lines)
    inter = write(tmp_path / "raw.inter", lines)
    item = write(tmp_path / "raw.item", ["item_id:token\ttitle:token_seq\tgenre:token_seq\tyear:float"]
                 + [f"i{k}\tTitle <b>{k}</b>\tAction Comedy\t{1990 + k}" for k in range(23)])
    return {"inter": inter, "item": item, "good": good, "bad_lines": bad_lines, "root": tmp_path}


@pytest.mark.parametrize("min_rating,user_k,item_k", [(None, 2, 0), (3, 3, 4)])
def test_interactions_filters_match_brute_force(atomic, min_rating, user_k, item_k):
    out = str(atomic["root"] / "ds")
    stats = convert_recbole(atomic["inter"], atomic["item"], name="d", out=out, min_rating=min_rating,
                            min_user_inter=user_k, item_core=item_k, text_fields=["title", "genre"])
    want = brute_force(atomic["good"], min_rating, user_k, item_k)
    got = read_columns(os.path.join(out, "d", "d.inter"))
    got_rows = {(u, i): (float(r), float(t)) for u, i, r, t in
                zip(got["user_id"], got["item_id"], got["rating"], got["timestamp"])}
    assert got_rows == {k: (v[2], v[3]) for k, v in want.items()}
    assert check_split(os.path.join(out, "d")).ok
    bad = stats["inter_files"][0]["bad_lines"]
    lb = atomic["bad_lines"]
    assert bad["wrong_columns"] == {"count": 1, "first_lines": [lb["wrong_columns"]]}
    assert bad["bad_id"]["first_lines"] == [lb["bad_id"]]
    assert bad["non_utf8"]["first_lines"] == [lb["non_utf8"]]
    assert bad["bad_value"] == {"count": 2, "first_lines": [lb["bad_value"], lb["bad_value_nan"]]}
    n_low = sum(1 for r in atomic["good"] if min_rating is not None and r[2] < min_rating)
    assert stats["dropped"]["rating_below_min"] == n_low
    items = read_columns(os.path.join(out, "d", "d.item"))
    k = items["item_id"].index("i3") if "i3" in items["item_id"] else 0
    iid = items["item_id"][k]
    assert items["item_text"][k] == f"Title {iid[1:]} Action Comedy"  # tags stripped, fields joined in order
    assert items["categories"][k] == "Action Comedy"  # genre fills categories


def test_rerun_is_byte_identical_and_failures_leave_nothing(atomic):
    root = atomic["root"]
    convert_recbole(atomic["inter"], atomic["item"], name="d", out=str(root / "a"))
    convert_recbole(atomic["inter"], atomic["item"], name="d", out=str(root / "b"))
    names = sorted(os.listdir(root / "a" / "d"))
    assert names == sorted(os.listdir(root / "b" / "d"))
    match, mismatch, errors = filecmp.cmpfiles(root / "a" / "d", root / "b" / "d", names, shallow=False)
    assert not mismatch and not errors
    with pytest.raises(DatasetError, match="already exists"):
        convert_recbole(atomic["inter"], name="d", out=str(root / "a"))
    # a header without the user field: one line naming the file and the flag, nothing written
    bad = write(root / "bad.inter", ["uid:token\titem_id:token", "1\t2"])
    with pytest.raises(DatasetError, match=r"bad.inter line 1: no user field 'user_id'.*--user-field"):
        convert_recbole(bad, name="x", out=str(root / "c"))
    with pytest.raises(DatasetError, match="not `name:type`"):
        convert_recbole(write(root / "csv.inter", ["user,item", "1,2"]), name="y", out=str(root / "c"))
    # the field given by name is found; the one user has one item: a failure after reading, nothing written
    with pytest.raises(DatasetError, match="no user has 2 or more"):
        convert_recbole(bad, name="x", out=str(root / "c"), user_field="uid")
    assert not os.path.exists(root / "c") or os.listdir(root / "c") == []


def test_output_checks_are_the_converters_own(atomic):
    """The RecBole-atomic converter runs convert's output checks before it reads: an --out that is a file
    fails in one line, and a dataset moved aside by a killed replacement is put back, not overwritten."""
    root = atomic["root"]
    not_a_dir = write(root / "file_out", ["x"])
    with pytest.raises(DatasetError, match="file_out"):
        convert_recbole(atomic["inter"], name="d", out=not_a_dir)
    out = root / "o"
    convert_recbole(atomic["inter"], name="d", out=str(out))
    os.replace(out / "d", out / ".d.old-12345")  # what a SIGKILL between the two renames leaves
    with pytest.raises(DatasetError, match="already exists"):
        convert_recbole(atomic["inter"], name="d", out=str(out))
    assert sorted(os.listdir(out)) == ["d"]


def test_gzip_input_gives_the_same_dataset(atomic):
    import gzip

    root = atomic["root"]
    gz = {}
    for key in ("inter", "item"):
        with open(atomic[key], "rb") as f:
            gz[key] = str(root / f"z.{key}")  # no .gz suffix: recognised by its magic bytes
            with open(gz[key], "wb") as out:
                out.write(gzip.compress(f.read()))
    plain = convert_recbole(atomic["inter"], atomic["item"], name="d", out=str(root / "p"))
    zipped = convert_recbole(gz["inter"], gz["item"], name="d", out=str(root / "z"))
    assert plain["kept"]["interactions"] > 0 and plain["kept"] == zipped["kept"]
    names = sorted(n for n in os.listdir(root / "p" / "d") if not n.endswith(".stats.json"))
    match, mismatch, errors = filecmp.cmpfiles(root / "p" / "d", root / "z" / "d", names, shallow=False)
    assert not mismatch and not errors and len(match) == len(names) >= 6


def test_missing_field_then_given_by_flag(tmp_path):
    path = write(tmp_path / "f.inter", ["uid:token\tiid:token\tts:float"]
                 + [f"u{u}\ti{(u + k) % 5}\t{k}" for u in range(6) for k in range(4)])
    stats = convert_recbole(path, name="f", out=str(tmp_path / "o"), user_field="uid", item_field="iid",
                            time_field="ts")
    assert stats["kept"] == {"interactions": 24, "users": 6, "items": 5}
    assert check_split(str(tmp_path / "o" / "f")).ok


def test_no_time_column_uses_file_order(tmp_path):
    path = write(tmp_path / "n.inter", ["user_id:token\titem_id:token", "a\tz", "a\ty", "b\tx", "a\tw", "b\tv"])
    convert_recbole(path, name="n", out=str(tmp_path / "o"))
    test = read_columns(str(tmp_path / "o" / "n" / "n.test.inter"))
    assert dict(zip(test["user_id"], test["item_id"])) == {"a": "w", "b": "v"}
    assert dict(zip(test["user_id"], test["item_id_list"])) == {"a": "z y", "b": "x"}


def test_sequence_files(tmp_path):
    seqs = {"u1": ["a", "b", "c", "d", "e"], "u2": ["c", "a", "f"], "u3": ["b", "g"]}
    head = "user_id:token\titem_id_list:token_seq\titem_id:token"
    train, valid, test = [head], [head], [head]
    for u, s in seqs.items():
        for j in range(1, len(s) - 2):
            train.append(f"{u}\t{' '.join(s[:j])}\t{s[j]}")
        if len(s) >= 3:
            valid.append(f"{u}\t{' '.join(s[:-2])}\t{s[-2]}")
        test.append(f"{u}\t{' '.join(s[-4:-1])}\t{s[-1]}")  # a truncated history (the last 3)
    train.append("u1\tz z\ta")  # not part of u1's sequence
    bad_line = len(train)
    paths = [write(tmp_path / f"s.{p}.inter", rows) for p, rows in (("train", train), ("valid", valid), ("test", test))]
    stats = convert_recbole(paths, name="s", out=str(tmp_path / "o"))
    assert stats["params"]["form"] == "sequences"
    assert stats["dropped"]["inconsistent_sequence"] == 1
    assert stats["inconsistent_sequence_first_lines"] == {"s.train.inter": [bad_line]}
    got = read_columns(str(tmp_path / "o" / "s" / "s.inter"))
    rebuilt = defaultdict(list)
    for u, i, t in zip(got["user_id"], got["item_id"], got["timestamp"]):
        rebuilt[u].append((float(t), i))
    # u1's test row holds only its last 3 history items: it still extends the sequence by its item
    want = seqs
    assert {u: [i for _, i in sorted(v)] for u, v in rebuilt.items()} == want
    assert check_split(str(tmp_path / "o" / "s")).ok


def test_cli_convert_inter(atomic, capsys):
    out = str(atomic["root"] / "cli")
    status = cli_main(["convert", "--inter", atomic["inter"], "--item", atomic["item"], "--name", "c", "--out", out,
                       "--text-fields", "genre", "--min-rating", "2", "--item-core", "2"])
    assert status == 0
    text = capsys.readouterr().out
    assert "raw.inter: interactions" in text and "bad lines" in text
    stats = json.load(open(os.path.join(out, "c", "c.stats.json")))
    assert stats["params"]["text_fields"] == ["genre"] and stats["params"]["min_rating"] == 2.0
    assert cli_main(["check-split", os.path.join(out, "c")]) == 0
    assert cli_main(["convert", "--name", "c2", "--out", out]) == 2  # neither --reviews nor --inter


@pytest.mark.skipif(not os.path.isdir(TOYS), reason="../shared/data/amazon2014-toys-recbole absent")
def test_real_toys_converts_and_checks(tmp_path):
    import pandas as pd

    inter = os.path.join(TOYS, "toys.inter")
    stats = convert_recbole(inter, os.path.join(TOYS, "toys.item"), name="toys", out=str(tmp_path))
    df = pd.read_csv(inter, sep="\t", dtype=str)
    df.columns = [c.split(":")[0] for c in df.columns]
    df = df.drop_duplicates(["user_id", "item_id"])
    assert stats["kept"] == {"interactions": len(df), "users": df.user_id.nunique(), "items": df.item_id.nunique()}
    # per user, the test target is the latest interaction of the original file (synthetic times keep the order)
    df["t"] = df.timestamp.astype(float)
    last = df.sort_values("t").groupby("user_id").item_id.last()
    test = read_columns(str(tmp_path / "toys" / "toys.test.inter"))
    assert dict(zip(test["user_id"], test["item_id"])) == last.to_dict()
    assert check_split(str(tmp_path / "toys")).ok
    items = read_columns(str(tmp_path / "toys" / "toys.item"))
    assert items["item_text"][items["item_id"].index("1")] == "a399 a2 a220 a262"
