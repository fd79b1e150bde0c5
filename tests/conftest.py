"""Shared test builders and fixtures: the repo root on sys.path, tiny datasets written on the fly (atomic
splits, BLaIRCLIP features, raw Amazon lines, an item file with images), tiny random transformers models, a markdown
table reader."""
import gzip
import json
import os
import random
import re
import sys

import numpy as np
import pytest

from recbole_blairclip.data.atomic import ITEM_FIELDS, write_parts
from recbole_blairclip.data.split import TEST, TRAIN, VALID, split_interactions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
ITEM_HEADER = "\t".join(ITEM_FIELDS)  # the header of a converted .item file


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
    """Write a small leave-one-out dataset in the project's atomic format (FORMAT.md, "Atomic files"),
    split and written by the package's own :func:`split_interactions` and :func:`write_parts`.

    Users follow item chains (i -> i+1 -> i+2 ...) so that sequential models can learn something; the
    catalogue holds all ``n_items`` items (``i0`` ...), touched or not. Returns the dataset folder.
    """
    rng = random.Random(seed)
    user, item, rating, timestamp = [], [], [], []
    for u in range(n_users):
        length = rng.randint(2, 7)
        start = rng.randrange(n_items)
        t0 = 1_600_000_000 + rng.randrange(10_000)
        for k in range(length):
            user.append(u)
            item.append((start + k) % n_items)
            rating.append(float(rng.randint(1, 5)))
            timestamp.append(float(t0 + 60 * k))
    item_names = [f"i{i}" for i in range(n_items)]
    res = split_interactions(np.array(user), np.array(item), np.array(rating), np.array(timestamp),
                             [f"u{u}" for u in range(n_users)], item_names)
    items = [item_names[i] for i in res.item.tolist()]
    base = [f"u{u}\t{i}\t{r!r}\t{t!r}" for u, i, r, t in
            zip(res.user.tolist(), items, res.rating.tolist(), res.timestamp.tolist())]
    start = res.start.tolist()

    def seq_lines(indices):
        return [f"{base[j]}\t{' '.join(items[max(start[j], j - max_len):j])}\n" for j in indices]

    train_idx = np.flatnonzero(res.part == TRAIN)
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    write_parts(folder, name, base, seq_lines,
                (f"i{i}\tproduct number {i} kind{i % 3}\t\t\t\t\n" for i in range(n_items)),
                train_idx, train_idx[res.start[train_idx] < train_idx], np.flatnonzero(res.part == VALID),
                np.flatnonzero(res.part == TEST))
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


# ---------------------------------------------------------------- BLaIRCLIP on the tiny dataset
TINY = dict(embedding_size=16, n_layers=1, n_heads=2, inner_size=32, train_batch_size=64, eval_batch_size=256,
            show_progress=False, seed=7, epochs=2, text_features="randtext", image_features="randimg")
COLD = "cold1"


def write_random_features(folder, name="tiny", text_dim=10, image_dim=12, seed=0, with_image=True):
    """Random text / image features for every item of <name>.item; the cold item gets no image."""
    from recbole_blairclip.features.store import read_items, write_features

    items = read_items(os.path.join(folder, f"{name}.item"))
    rng = np.random.default_rng(seed)
    n = len(items.item_ids)
    kwargs = {}
    if with_image:
        mask = rng.random(n) > 0.3
        mask[[k for k, item in enumerate(items.item_ids) if item == COLD]] = False
        kwargs = dict(image=rng.normal(size=(n, image_dim)) * mask[:, None], image_mask=mask,
                      image_meta={"tag": "randimg"})
    return write_features(folder, items, text=rng.normal(size=(n, text_dim)), text_meta={"tag": "randtext"}, **kwargs)


def write_blairclip_dataset(root, name="tiny", cold=True, with_image=True, seed=0):
    """The tiny dataset, plus one catalogue item no user ever touched, plus its features."""
    folder = write_tiny_dataset(str(root), name=name, seed=seed)
    if cold:
        with open(os.path.join(folder, f"{name}.item"), "a", encoding="utf-8") as f:
            f.write(f"{COLD}\ta brand new product nobody bought\t\t\t\t\n")
    write_random_features(folder, name=name, with_image=with_image)
    return folder


def blairclip_config(tmp_path, **overrides):
    """The config_dict of a small BLaIRCLIP on ``tmp_path/dataset_atomic/tiny``."""
    return dict(TINY, data_path=str(tmp_path / "dataset_atomic"), output_dir=str(tmp_path / "out"), **overrides)


def build_blairclip(tmp_path, **overrides):
    """(config, dataset, train, valid, test, model) without training."""
    from recbole_blairclip.quick_start import build_model, make_config, prepare

    config = make_config("BLaIRCLIP", "tiny", config_dict=blairclip_config(tmp_path, **overrides))
    dataset, train, valid, test = prepare(config)
    return config, dataset, train, valid, test, build_model(config, train)


# ---------------------------------------------------------------- raw Amazon Reviews 2023 lines
def r23(user, item, ts, rating=5.0, **extra):
    """One review line (bytes, no line end) in the 2023 schema."""
    d = {"rating": rating, "title": "t", "text": "x", "images": [], "asin": item + "V", "parent_asin": item,
         "user_id": user, "timestamp": ts, "helpful_vote": 0, "verified_purchase": True}
    d.update(extra)
    return json.dumps(d).encode()


def write_lines(path, lines, gz=False):
    """Write byte lines (each with its line end) to ``path``, gzipped when ``gz``; returns the path."""
    data = b"".join(lines)
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return str(path)


# ---------------------------------------------------------------- an item file with images
COLORS = {k: ((37 * k) % 256, (91 * k) % 256, (53 * k) % 256) for k in range(40)}


def text_of(k):
    return f"item {k} " + " ".join(["word"] * k)


def write_shop_dataset(root, n=23, shuffle_seed=None, name="shop"):
    """Items k = 0..n-1 with text 'item k ...' and a solid-colour image; a few images missing or broken."""
    from PIL import Image

    folder = root / name
    (folder / "images").mkdir(parents=True)
    rows = [f"P{k:03d}\t{text_of(k)}\tt{k}\tc\ts\t" for k in range(n)]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    (folder / f"{name}.item").write_text(ITEM_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    for k in range(n):
        if k % 7 == 3:
            continue  # missing
        if k % 7 == 5:
            (folder / "images" / f"P{k:03d}.jpg").write_bytes(b"\xff\xd8 broken")
            continue
        Image.new("RGB", (12 + k, 9), COLORS[k]).save(folder / "images" / f"P{k:03d}.png")
    return folder


# ---------------------------------------------------------------- tiny random transformers models
TEXTS = [f"stainless {w} for fridge model {k} with {'extra ' * (k % 4)}parts"
         for k, w in enumerate(["water filter", "door seal", "ice maker", "drain hose", "heating element",
                                "dryer vent", "oven knob", "washer pump", "light bulb", "shelf bin"])]


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    """A tiny random RoBERTa saved to a folder (its BPE tokenizer trained on TEXTS); returns the path."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("models") / "tiny-roberta"
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = RobertaTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                               pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=66, pad_token_id=tok.pad_token_id,
                        bos_token_id=0, eos_token_id=2)
    RobertaModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP (1 layer, 32-pixel images, 8-pixel patches) saved to a folder; returns the path."""
    from benchmarks.gpu_features import build_clip

    return build_clip(tmp_path_factory.mktemp("models") / "tiny-clip", size="tiny")
