"""BLaIRCLIP end to end on a tiny dataset with random features: training, scoring, cold start, reload, errors."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import (
    COLD, blairclip_config, build_blairclip, write_blairclip_dataset, write_random_features, write_tiny_dataset,
)
from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.features.store import read_items


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_blairclip_dataset(tmp_path / "dataset_atomic")


def first_batch(loader):
    return next(iter(loader))


def test_loss_falls_and_both_terms_are_returned(tmp_path, data):
    config, dataset, train, valid, test, model = build_blairclip(tmp_path, learning_rate=0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    totals = []
    for _ in range(6):
        model.train()
        total = 0.0
        for batch in train:
            losses = model.calculate_loss(batch)
            assert isinstance(losses, tuple) and len(losses) == 2
            assert losses[1].item() > 0  # the contrastive term is on by default
            optimizer.zero_grad()
            sum(losses).backward()
            optimizer.step()
            total += sum(losses).item()
        totals.append(total)
    assert totals[-1] < 0.9 * totals[0]
    assert model.logit_scale.item() <= np.log(100) + 1e-6


def test_shapes_and_predict_agrees_with_full_sort(tmp_path, data):
    config, dataset, train, valid, test, model = build_blairclip(tmp_path, item_chunk_size=7)
    model.eval()
    interaction = first_batch(test)[0]
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        point = model.predict(interaction)
    n = len(interaction)
    assert scores.shape == (n, dataset.item_num)
    assert point.shape == (n,)
    assert torch.allclose(point, scores[torch.arange(n), interaction["item_id"]], atol=1e-5)
    # chunked item matrix (7 items per chunk) equals the one-shot computation
    with torch.no_grad():
        whole = model.item_parts(torch.arange(dataset.item_num))[0]
    assert torch.allclose(model.item_matrix(), whole, atol=1e-6)


def test_item_matrix_once_per_evaluation(tmp_path, data):
    config, dataset, train, valid, test, model = build_blairclip(tmp_path)
    calls = []
    original = model.item_parts
    model.item_parts = lambda ids: calls.append(len(ids)) or original(ids)
    model.eval()
    interaction = first_batch(test)[0]
    with torch.no_grad():
        first = model.full_sort_predict(interaction)
        model.full_sort_predict(interaction)
    assert len(calls) == 1
    model.train()  # training resumes: the cache is dropped
    with torch.no_grad():
        model.item_tower.text_projection.weight.mul_(2.0)
    model.eval()
    with torch.no_grad():
        second = model.full_sort_predict(interaction)
    assert len(calls) == 2
    assert not torch.allclose(first, second)


def test_cold_item_gets_finite_content_score(tmp_path, data):
    config, dataset, train, valid, test, model = build_blairclip(tmp_path)
    cold = dataset.token2id("item_id", COLD)
    train_items = set(train.dataset.inter_feat["item_id"].tolist()) if hasattr(train, "dataset") else set()
    train_items |= set(train._dataset.inter_feat["item_id"].tolist())
    train_items |= set(train._dataset.inter_feat["item_id_list"].flatten().tolist())
    assert cold not in train_items
    model.eval()
    interaction = first_batch(test)[0]
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        user = model.forward(interaction["item_id_list"], interaction["item_length"])
    assert torch.isfinite(scores[:, cold]).all()
    # independent computation: no image, so the embedding is the projected text feature
    feats = json.load(open(os.path.join(data, "tiny.features.json")))
    row = feats["item_ids"].index(COLD)
    text = np.load(os.path.join(data, "tiny.randtext.text.npy"))[row]
    embedding = model.item_tower.text_projection.weight.detach() @ torch.tensor(text)
    assert embedding.abs().sum() > 0
    assert torch.allclose(scores[:, cold], user @ embedding, atol=1e-5)


@pytest.mark.parametrize("overrides", [
    dict(use_image=False),
    dict(clip_weight=0.0),
    dict(use_item_id=True, fusion="concat"),
    dict(fusion="gated", seq_encoder="mean", pooler_type="cls", train_rows="prefix"),
])
def test_ablation_switches(tmp_path, data, overrides):
    config, dataset, train, valid, test, model = build_blairclip(tmp_path, **overrides)
    rec, contrastive = model.calculate_loss(first_batch(train))
    assert torch.isfinite(rec) and rec.item() > 0
    if overrides.get("use_image") is False or overrides.get("clip_weight") == 0.0:
        assert contrastive.item() == 0.0
    else:
        assert contrastive.item() > 0.0
    if overrides.get("use_image") is False:
        assert not hasattr(model.item_tower, "image_projection")
    (rec + contrastive).backward()
    assert model.item_tower.text_projection.weight.grad.abs().sum() > 0


def test_text_only_needs_no_image_features(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_blairclip_dataset(tmp_path / "dataset_atomic", with_image=False)
    with pytest.raises(DatasetError, match="no image features"):
        build_blairclip(tmp_path)
    *_, model = build_blairclip(tmp_path, use_image=False)
    assert model.use_image is False


def test_saved_reload_and_same_seed_same_metrics(tmp_path, data):
    from recbole_blairclip import run
    from recbole_blairclip.compat import load_recbole_checkpoint

    cfg = blairclip_config(tmp_path, epochs=2)
    first = run("BLaIRCLIP", "tiny", config_dict=cfg, saved=True)
    second = run("BLaIRCLIP", "tiny", config_dict=dict(cfg, output_dir=str(tmp_path / "out2")), saved=True)
    assert first["test_result"] == second["test_result"]
    assert first["best_valid_result"] == second["best_valid_result"]
    assert os.path.isfile(first["checkpoint"])
    checkpoint = load_recbole_checkpoint(first["checkpoint"])
    config, dataset, train, valid, test, model = build_blairclip(tmp_path)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    # the reloaded model reproduces the reported test Recall@50 with our own computation (valid + train items
    # masked as the evaluation protocol does)
    hits = total = 0
    with torch.no_grad():
        for interaction, history, positive_u, positive_i in test:
            scores = model.full_sort_predict(interaction)
            scores[:, 0] = -np.inf
            # the protocol's candidates (mask_history): never the user's earlier items (tiny histories < 50,
            # so item_id_list is the whole history)
            rows = torch.arange(len(scores)).unsqueeze(1).expand_as(interaction["item_id_list"])
            scores[rows, interaction["item_id_list"]] = -np.inf
            scores[:, 0] = -np.inf
            top = scores.topk(50, dim=1).indices
            hits += (top == positive_i.unsqueeze(1)).any(1).sum().item()
            total += len(positive_i)
    assert hits / total == pytest.approx(first["test_result"]["recall@50"], abs=1e-4)


def test_bad_inputs_raise_clear_errors(tmp_path, data):
    json_path = os.path.join(data, "tiny.features.json")
    meta = json.load(open(json_path))
    with pytest.raises(ConfigError, match="fusion"):
        build_blairclip(tmp_path, fusion="product")
    with pytest.raises(DatasetError, match="text_features"):
        build_blairclip(tmp_path, text_features="blair-roberta-base")
    # NaN row
    arr = np.load(os.path.join(data, "tiny.randtext.text.npy"))
    arr[3, 0] = np.nan
    np.save(os.path.join(data, "tiny.randtext.text.npy"), arr)
    with pytest.raises(DatasetError):
        build_blairclip(tmp_path)
    # dimension mismatch between the array and features.json
    write_random_features(data)
    meta = json.load(open(json_path))
    meta["text"]["dim"] = 99
    json.dump(meta, open(json_path, "w"))
    with pytest.raises(DatasetError, match="shape"):
        build_blairclip(tmp_path)
    # features of another dataset copied next to this one
    other = write_tiny_dataset(str(tmp_path / "elsewhere"), name="other", n_items=50)
    write_random_features(other, name="other")
    for f in os.listdir(other):
        if f.endswith(".npy"):
            os.replace(os.path.join(other, f), os.path.join(data, f))
    os.replace(os.path.join(other, "other.features.json"), json_path)
    with pytest.raises(DatasetError, match="changed since the features were extracted"):
        build_blairclip(tmp_path)
    # missing features
    os.remove(json_path)
    with pytest.raises(DatasetError, match="blairclip features"):
        build_blairclip(tmp_path)


def _tiny_roberta(folder, texts):
    """A 2-layer random RoBERTa and a byte-level BPE tokenizer trained on ``texts``, saved to ``folder``."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    os.makedirs(folder, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(folder)
    tokenizer = RobertaTokenizerFast(vocab_file=os.path.join(folder, "vocab.json"),
                                     merges_file=os.path.join(folder, "merges.txt"))
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    RobertaModel(config).save_pretrained(folder)
    return folder


def test_finetune_mode_with_tiny_roberta(tmp_path, data):
    texts = read_items(os.path.join(data, "tiny.item")).column("item_text")
    encoder = _tiny_roberta(str(tmp_path / "roberta"), texts)
    overrides = dict(text_mode="finetune", text_encoder=encoder, text_max_length=12, finetune_layers=1,
                     pooler_type="cls", text_features=None)
    config, dataset, train, valid, test, model = build_blairclip(tmp_path, **overrides)
    layers = model.item_tower.text_tower.encoder.encoder.layer
    bottom = [p.detach().clone() for p in layers[0].parameters()]
    top = [p.detach().clone() for p in layers[1].parameters()]
    assert all(not p.requires_grad for p in layers[0].parameters())
    assert all(p.requires_grad for p in layers[1].parameters())
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    for batch in train:
        rec, contrastive = model.calculate_loss(batch)
        optimizer.zero_grad()
        (rec + contrastive).backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(bottom, layers[0].parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(top, layers[1].parameters()))
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(first_batch(test)[0])
    assert scores.shape[1] == dataset.item_num and torch.isfinite(scores[:, 1:]).all()
    # the whole pipeline (trainer, checkpoint reload) in finetune mode
    from recbole_blairclip import run

    result = run("BLaIRCLIP", "tiny", config_dict=blairclip_config(tmp_path, epochs=1, **overrides), saved=True)
    assert 0.0 <= result["test_result"]["recall@50"] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(tmp_path, data):
    from recbole_blairclip import run

    result = run("BLaIRCLIP", "tiny", config_dict=blairclip_config(tmp_path, epochs=1, use_gpu=True), saved=True)
    assert result["device"].startswith("cuda")


def test_hybrid_unseen_item_scores_from_content_alone(tmp_path, data):
    """unseen_item_id: false: the item no user touched gets exactly its content embedding, a training item
    content + id; with unseen_item_id: true (plain use_item_id) the unseen item adds its (untrained) id."""
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, use_item_id=True, unseen_item_id=False,
                                                   use_image=False)
    cold = dataset.token2id("item_id", COLD)
    warm = int(train._dataset.inter_feat["item_id"][0])
    model.eval()
    with torch.no_grad():
        fused, text, _, _ = model.item_parts(torch.tensor([cold, warm]))
        ids = model.item_tower.item_embedding.weight[[cold, warm]]
    assert torch.equal(fused[0], text[0])
    assert torch.allclose(fused[1], text[1] + ids[1])
    assert ids[0].abs().sum() > 0  # the id row exists, it is just not used
    *_, plain = build_blairclip(tmp_path, use_item_id=True, use_image=False)
    plain.eval()
    with torch.no_grad():
        fused_plain, text_plain, _, _ = plain.item_parts(torch.tensor([cold]))
    assert not torch.allclose(fused_plain[0], text_plain[0])


def test_item_id_dropout(tmp_path, data):
    """item_id_dropout 0 reproduces use_item_id (same seed, same loss); 1 drops every id in training only."""
    batch = None
    losses = []
    for overrides in (dict(), dict(item_id_dropout=0.0)):
        *_, train, valid, test, model = build_blairclip(tmp_path, use_item_id=True, use_image=False, **overrides)
        batch = batch or first_batch(train)
        torch.manual_seed(0)
        losses.append(model.calculate_loss(batch)[0].item())
    assert losses[0] == losses[1]
    *_, model = build_blairclip(tmp_path, use_item_id=True, use_image=False, item_id_dropout=1.0)
    ids = torch.arange(model.n_items)
    model.train()
    fused, text, _, _ = model.item_parts(ids)
    assert torch.equal(fused, text)
    model.eval()
    with torch.no_grad():
        fused, text, _, _ = model.item_parts(ids)
    assert torch.allclose(fused, text + model.item_tower.item_embedding.weight)


def test_missing_id_vector_stands_in_for_unseen_and_dropped_ids(tmp_path, data):
    """missing_id: true: the unseen item gets content + the shared vector; with item_id_dropout 1 every item
    does in training; the vector is learned from the dropped ids (it has a gradient)."""
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, use_item_id=True, unseen_item_id=False,
                                                             use_image=False, missing_id=True, item_id_dropout=1.0)
    cold = dataset.token2id("item_id", COLD)
    warm = int(train._dataset.inter_feat["item_id"][0])
    with torch.no_grad():
        model.item_tower.missing_id.normal_()
    shared = model.item_tower.missing_id
    model.eval()
    with torch.no_grad():
        fused, text, _, _ = model.item_parts(torch.tensor([cold, warm]))
        ids = model.item_tower.item_embedding.weight[warm]
    assert torch.allclose(fused[0], text[0] + shared)
    assert torch.allclose(fused[1], text[1] + ids)
    model.train()
    fused, text, _, _ = model.item_parts(torch.tensor([cold, warm]))
    assert torch.allclose(fused, text + shared)  # every id dropped
    sum(model.calculate_loss(first_batch(train))).backward()
    assert model.item_tower.missing_id.grad.abs().sum() > 0


def test_nearest_items_is_a_brute_force_cosine_top_k():
    from recbole_blairclip.model.item_tower import nearest_items

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(23, 6, generator=gen)
    candidates = torch.rand(23, generator=gen) > 0.4
    ids, weights = nearest_items(feats, 3, candidates, chunk=5)  # chunks smaller than the catalogue
    x = feats.numpy() / np.linalg.norm(feats.numpy(), axis=1, keepdims=True)
    for i in range(23):
        pool = [j for j in range(1, 23) if candidates[j] and j != i]
        sims = {j: float(x[i] @ x[j]) for j in pool}
        best = sorted(pool, key=lambda j: -sims[j])[:3]
        assert sorted(ids[i].tolist()) == sorted(best)
        w = np.clip([sims[j] for j in ids[i].tolist()], 0, None)
        expected = w / w.sum() if w.sum() > 0 else np.full(3, 1 / 3)
        np.testing.assert_allclose(weights[i].numpy(), expected, rtol=1e-5)


def test_id_neighbours_lend_an_unseen_item_the_ids_of_its_nearest_items(tmp_path, data):
    """id_neighbours: k: the unseen item adds the weighted mean id of its k nearest training items (and the
    missing_id vector when set); in training a dropped id does the same, and the neighbours' ids learn from it."""
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, use_item_id=True, unseen_item_id=False,
                                                             use_image=False, id_neighbours=2, missing_id=True,
                                                             item_id_dropout=1.0)
    cold = dataset.token2id("item_id", COLD)
    tower = model.item_tower
    neighbours = tower.neighbour_ids[cold]
    assert tower.id_items[neighbours].all() and cold not in neighbours.tolist()
    with torch.no_grad():
        tower.missing_id.normal_()
    model.eval()
    with torch.no_grad():
        fused, text, _, has_id = model.item_parts(torch.tensor([cold]))
        lent = (tower.neighbour_weights[cold, :, None] * tower.item_embedding.weight[neighbours]).sum(0)
    assert not has_id[0]
    assert torch.allclose(fused[0], text[0] + tower.missing_id + lent, atol=1e-6)
    model.train()
    sum(model.calculate_loss(first_batch(train))).backward()  # every id dropped: all borrowed
    grads = tower.item_embedding.weight.grad
    assert grads[tower.neighbour_ids.flatten().unique()].abs().sum() > 0
    with pytest.raises(ConfigError, match="id_neighbours > 0 needs use_item_id"):
        build_blairclip(tmp_path, id_neighbours=2, use_image=False)
