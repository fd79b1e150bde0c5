"""The split against a brute-force reference, and the independent checker catching planted leaks."""
import json
import random
import shutil

import pytest

from recbole_blairclip.cli import main as cli_main
from recbole_blairclip.data.check import check_split
from recbole_blairclip.data.convert import convert


def random_raw(seed, n_users=60, n_items=25):
    """Raw 2023 review lines with duplicates, timestamp ties and ids whose string order != number order."""
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        for _ in range(rng.choice([1, 1, 2, 3, 4, 6, 9, 14])):
            rows.append({"user_id": f"u{u}", "parent_asin": f"i{rng.randrange(n_items)}",
                         "rating": float(rng.randint(1, 5)), "timestamp": 1_600_000_000_000 + 1000 * rng.randrange(12)})
    return rows


def brute_force(rows, L, three_way=True, min_user_inter=2, item_core=0):
    """Expected file lines, computed the slow obvious way."""
    first = {}
    for line, r in enumerate(rows):
        key = (r["user_id"], r["parent_asin"])
        cand = (r["timestamp"], line, r)
        if key not in first or cand[:2] < first[key][:2]:
            first[key] = cand
    kept = [(u, i, t, line, r["rating"]) for (u, i), (t, line, r) in first.items()]
    while True:
        users, items = {}, {}
        for u, i, *_ in kept:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        new = [k for k in kept if users[k[0]] >= min_user_inter and (item_core == 0 or items[k[1]] >= item_core)]
        if len(new) == len(kept):
            break
        kept = new
    by_user = {}
    for k in kept:
        by_user.setdefault(k[0], []).append(k)
    out = {p: [] for p in ("inter", "train", "train_seq", "valid", "test")}
    for u in sorted(by_user):
        ev = sorted(by_user[u], key=lambda k: (k[2], k[1], k[3]))
        n = len(ev)
        for pos, (_, i, t, _, rating) in enumerate(ev):
            base = f"{u}\t{i}\t{rating!r}\t{t / 1000!r}"
            hist = " ".join(e[1] for e in ev[max(0, pos - L):pos])
            out["inter"].append(base)
            if pos == n - 1:
                out["test"].append(f"{base}\t{hist}")
            elif three_way and pos == n - 2 and n >= 3:
                out["valid"].append(f"{base}\t{hist}")
            else:
                out["train"].append(base)
                if pos > 0:
                    out["train_seq"].append(f"{base}\t{hist}")
    return out


def write_raw(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def read_body(path):
    return path.read_text(encoding="utf-8").split("\n")[1:-1]


@pytest.mark.parametrize("seed, L, three_way, item_core", [(0, 50, True, 0), (1, 3, True, 0), (2, 2, False, 0),
                                                           (3, 4, True, 3)])
def test_split_matches_brute_force(tmp_path, seed, L, three_way, item_core):
    rows = random_raw(seed)
    raw = write_raw(tmp_path / "r.jsonl", rows)
    convert(raw, None, name="d", out=str(tmp_path), max_item_list_length=L, two_way=not three_way,
            item_core=item_core)
    want = brute_force(rows, L, three_way=three_way, item_core=item_core)
    suffix = {"inter": "inter", "train": "train.inter", "train_seq": "train_seq.inter", "valid": "valid.inter",
              "test": "test.inter"}
    for part, lines in want.items():
        assert read_body(tmp_path / "d" / f"d.{suffix[part]}") == lines, part
    assert len(want["test"]) > 20 and len(want["train_seq"]) > 10 and (len(want["valid"]) > 5) == three_way
    result = check_split(tmp_path / "d")
    assert result.ok, result.summary()
    if item_core:
        counts = {}
        for line in want["inter"]:
            counts[line.split("\t")[1]] = counts.get(line.split("\t")[1], 0) + 1
        assert min(counts.values()) >= item_core


def _converted(tmp_path):
    raw = write_raw(tmp_path / "r.jsonl", random_raw(5))
    convert(raw, None, name="d", out=str(tmp_path / "good"), max_item_list_length=5)
    return tmp_path / "good" / "d"


def _plant(src, dst, part, edit):
    shutil.copytree(src, dst)
    path = dst / f"d.{part}"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines = edit(lines)
    path.write_text("\n".join(lines), encoding="utf-8")
    return dst


def test_checker_catches_planted_leaks(tmp_path):
    good = _converted(tmp_path)
    assert check_split(good).ok
    test_rows = read_body(good / "d.test.inter")
    valid_rows = read_body(good / "d.valid.inter")
    long_row = next(r for r in test_rows if len(r.split("\t")[4].split()) >= 3)
    long_idx = test_rows.index(long_row) + 1

    def test_in_train(lines):  # a test interaction copied into train
        return lines[:-1] + ["\t".join(test_rows[0].split("\t")[:4]), ""]

    def later_in_history(lines):  # the target itself appended to its own history
        f = lines[long_idx].split("\t")
        f[4] = f"{f[4]} {f[1]}"
        lines[long_idx] = "\t".join(f)
        return lines

    def wrong_target(lines):  # test target replaced by the user's valid item
        u = valid_rows[0].split("\t")[0]
        k = next(k for k, ln in enumerate(lines) if ln.startswith(u + "\t"))
        v = valid_rows[0].split("\t")
        lines[k] = "\t".join(v[:4] + lines[k].split("\t")[4:])
        return lines

    def incomplete_history(lines):  # oldest history item dropped
        f = lines[long_idx].split("\t")
        f[4] = " ".join(f[4].split()[1:])
        lines[long_idx] = "\t".join(f)
        return lines

    def missing_train(lines):
        return lines[:1] + lines[2:]

    cases = [("train.inter", test_in_train, "leak: user .* test item .* is in .*train"),
             ("test.inter", later_in_history, "not strictly earlier"),
             ("test.inter", wrong_target, "wrong target"),
             ("test.inter", incomplete_history, "history for target"),
             ("train.inter", missing_train, "missing training item"),
             ("train_seq.inter", missing_train, "training-prefix rows")]
    import re

    for k, (part, edit, pattern) in enumerate(cases):
        bad = _plant(good, tmp_path / f"bad{k}" / "d", part, edit)
        result = check_split(bad)
        assert not result.ok, pattern
        assert any(re.search(pattern, v) for v in result.violations), (pattern, result.violations)


def test_check_split_cli(tmp_path, capsys):
    good = _converted(tmp_path)
    assert cli_main(["check-split", str(good)]) == 0
    assert capsys.readouterr().out.startswith("OK: leave-one-out split verified")
    bad = _plant(good, tmp_path / "bad" / "d", "train.inter",
                 lambda lines: lines[:-1] + ["\t".join(read_body(good / "d.test.inter")[0].split("\t")[:4]), ""])
    assert cli_main(["check-split", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED:") and "leak" in out
    assert cli_main(["check-split", str(tmp_path / "nowhere")]) == 2
