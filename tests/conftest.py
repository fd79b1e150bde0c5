"""Shared test fixtures: the repo root on sys.path, tiny atomic datasets written on the fly, a markdown
table reader."""
import os
import random
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")


def table_rows(text, heading=None):
    """Cell lists (stripped; ``\\|`` kept as written) of the first markdown table after ``heading`` (in the
    whole text when None): the header row first, the separator row left out."""
    lines = (text.split(heading, 1)[1] if heading else text).strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not all(set(c) <= set(":-") for c in cells):
            rows.append(cells)
    return rows


def write_tiny_dataset(root, name="tiny", n_users=40, n_items=60, seed=0, max_len=50):
    """Write a small leave-one-out dataset in the project's atomic format (FORMAT.md, "Atomic files").

    Users follow item chains (i -> i+1 -> i+2 ...) so that sequential models can learn something.
    Returns the dataset folder.
    """
    rng = random.Random(seed)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    plain = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    seq = plain[:-1] + "\titem_id_list:token_seq\n"
    rows = {"inter": [plain], "train": [plain], "train_seq": [seq], "valid": [seq], "test": [seq]}
    for u in range(n_users):
        length = rng.randint(2, 7)
        start = rng.randrange(n_items)
        items = [f"i{(start + k) % n_items}" for k in range(length)]
        items = list(dict.fromkeys(items))
        t0 = 1_600_000_000 + rng.randrange(10_000)
        for k, item in enumerate(items):
            line = f"u{u}\t{item}\t{rng.randint(1, 5)}.0\t{t0 + 60 * k}.0"
            history = " ".join(items[:k][-max_len:])
            rows["inter"].append(line + "\n")
            part = "test" if k == len(items) - 1 else ("valid" if k == len(items) - 2 and len(items) >= 3 else "train")
            if part == "train":
                rows["train"].append(line + "\n")
                if k > 0:
                    rows["train_seq"].append(f"{line}\t{history}\n")
            else:
                rows[part].append(f"{line}\t{history}\n")
    for part, lines in rows.items():
        suffix = "inter" if part == "inter" else f"{part}.inter"
        with open(os.path.join(folder, f"{name}.{suffix}"), "w", encoding="utf-8") as f:
            f.writelines(lines)
    with open(os.path.join(folder, f"{name}.item"), "w", encoding="utf-8") as f:
        f.write("item_id:token\titem_text:token_seq\n")
        for i in range(n_items):
            f.write(f"i{i}\tproduct number {i} kind{i % 3}\n")
    return folder


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    """A tiny dataset under tmp_path/dataset_atomic, cwd = tmp_path; returns the config_dict to use it."""
    monkeypatch.chdir(tmp_path)
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    return {
        "data_path": str(tmp_path / "dataset_atomic"),
        "output_dir": str(tmp_path / "out"),
        "epochs": 2,
        "train_batch_size": 64,
        "eval_batch_size": 256,
        "show_progress": False,
        "seed": 7,
    }
