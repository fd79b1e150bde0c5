"""BLaIRCLIP's lexical channel (``lexical_weight``): TF-IDF cosines against scikit-learn on the raw item
file, scores = dense part + learned scale x cosines, the per-position training logits, bad config."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import COLD, blairclip_config, build_blairclip, write_blairclip_dataset
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features.store import read_items


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_blairclip_dataset(tmp_path / "dataset_atomic")


def sklearn_cosines(folder, dataset, hist):
    """Independent: scikit-learn TF-IDF (sublinear tf, float64) of the .item texts, mean history profile,
    cosine with every item (internal id order)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    table = read_items(os.path.join(folder, "tiny.item"))
    text_of = dict(zip(table.item_ids, table.column("item_text")))
    docs = [text_of.get(t, "") if k else "" for k, t in enumerate(dataset.field2id_token["item_id"])]
    keep = [k for k, d in enumerate(docs) if k and d.strip()]
    fitted = TfidfVectorizer(sublinear_tf=True).fit_transform([docs[k] for k in keep]).toarray()
    X = np.zeros((len(docs), fitted.shape[1]))
    X[keep] = fitted
    out = []
    for row in hist:
        profile = X[[i for i in row if i > 0]].sum(0)
        norms = np.linalg.norm(profile) * np.linalg.norm(X, axis=1)
        out.append(np.divide(X @ profile, norms, out=np.zeros(len(docs)), where=norms > 0))
    return np.array(out)


def test_lexical_scores_are_sklearn_cosines_and_add_to_the_dense_scores(tmp_path, data):
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, lexical_weight=2.0, use_image=False)
    model.eval()
    interaction = next(iter(test))[0]
    seq, lengths = interaction["item_id_list"], interaction["item_length"]
    hist = [seq[r, : int(lengths[r])].tolist() for r in range(len(seq))]
    expected = sklearn_cosines(data, dataset, hist)
    cold = dataset.token2id("item_id", COLD)
    assert (expected[:, cold] > 0).any()  # the unseen item shares a word ("product") with the histories
    got = model.lexical_scores(seq, lengths).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        point = model.predict(interaction)
        model.lexical_scale.fill_(0.0)
        dense = model.full_sort_predict(interaction)
    assert model.lexical_scale.shape == () and len(list(model.lexical.buffers())) == 5
    np.testing.assert_allclose((scores - dense).numpy(), 2.0 * expected, atol=1e-4)
    n = len(interaction)
    assert torch.allclose(point, scores[torch.arange(n), interaction["item_id"]], atol=1e-5)


def test_training_logits_use_each_positions_prefix_and_the_scale_learns(tmp_path, data):
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, lexical_weight=1.5, use_image=False,
                                                             train_rows="user")
    model.eval()  # no dropout: the two computations see the same network
    batch = next(iter(train))
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["item_id"]
    with torch.no_grad():
        loss = model.calculate_loss(batch)[0]
        table = model.item_matrix()
        width = int(lengths.max())
        states = model.sequence_states(seq[:, :width], table)
        manual = []
        for r in range(len(seq)):
            items = seq[r, : int(lengths[r])].tolist() + [int(targets[r])]
            for j in range(int(lengths[r])):  # position j sees items 0..j and predicts item j + 1
                prefix = torch.tensor([items[: j + 1]])
                logits = states[r, j] @ table.t() + 1.5 * model.lexical_scores(prefix, torch.tensor([j + 1]))[0]
                logits[0] = float("-inf")
                manual.append(F.cross_entropy(logits[None], torch.tensor([items[j + 1]])))
    assert loss.item() == pytest.approx(torch.stack(manual).mean().item(), rel=1e-5)

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(3):
        optimizer.zero_grad()
        sum(model.calculate_loss(batch)).backward()
        assert model.lexical_scale.grad is not None and model.lexical_scale.grad.abs() > 0
        optimizer.step()
    assert model.lexical_scale.item() != pytest.approx(1.5, abs=1e-3)


def test_a_run_with_the_lexical_channel_evaluates(tmp_path, data):
    from recbole_blairclip import run

    result = run("BLaIRCLIP", "tiny", config_dict=blairclip_config(tmp_path, epochs=1, lexical_weight=1.0,
                                                                   use_image=False))
    assert set(result["test_result"]) >= {"recall@10", "ndcg@10", "auc"}
    assert result["n_params"] > 1


def test_lexical_channel_with_finetuned_text_or_a_bad_profile_is_refused(tmp_path, data):
    with pytest.raises(ConfigError, match="cold_lexical_weight > 0 need text_mode: frozen"):
        build_blairclip(tmp_path, lexical_weight=1.0, text_mode="finetune", text_encoder=str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="unseen_negatives: false needs text_mode: frozen"):
        build_blairclip(tmp_path, unseen_negatives=False, text_mode="finetune", text_encoder=str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="lexical_profile"):
        build_blairclip(tmp_path, lexical_weight=1.0, lexical_profile="median")
    with pytest.raises(ConfigError, match="cold_lexical_weight > 0 needs use_item_id: true"):
        build_blairclip(tmp_path, cold_lexical_weight=1.0)


def test_vectorizer_defaults_are_the_tfidf_models_packaged_values():
    """BLaIRCLIP's lexical channel falls back to VECTORIZER_DEFAULTS for unset tfidf_* keys: the same values
    as TFIDF's packaged yaml, so both build the same index by default."""
    from recbole_blairclip.config import load_yaml
    from recbole_blairclip.model.lexical import VECTORIZER_DEFAULTS

    path = os.path.join(os.path.dirname(__file__), "..", "recbole_blairclip", "properties", "model", "TFIDF.yaml")
    packaged = load_yaml(path)
    assert {k: packaged[k] for k in VECTORIZER_DEFAULTS} == VECTORIZER_DEFAULTS


def test_cold_lexical_scale_adds_to_the_items_scored_without_their_id(tmp_path, data):
    """cold_lexical_weight: items without their id (here the unseen one) get lexical_scale + cold_lexical_scale
    times the cosine, the others lexical_scale; in training the mask is the step's own (dropped ids count)."""
    *_, dataset, train, valid, test, model = build_blairclip(
        tmp_path, lexical_weight=1.0, cold_lexical_weight=2.0, use_image=False, use_item_id=True,
        unseen_item_id=False, item_id_dropout=0.5, train_rows="user")
    model.eval()
    cold = dataset.token2id("item_id", COLD)
    has_id = model.evaluation_has_id()
    assert not has_id[cold] and torch.equal(has_id, ~model.train_unseen)
    interaction = next(iter(test))[0]
    seq, lengths = interaction["item_id_list"], interaction["item_length"]
    cosines = model.lexical_scores(seq, lengths)
    with torch.no_grad():
        scores = model.full_sort_predict(interaction)
        model.lexical_scale.fill_(0.0)
        model.cold_lexical_scale.fill_(0.0)
        dense = model.full_sort_predict(interaction)
        model.lexical_scale.fill_(1.0)
        model.cold_lexical_scale.fill_(2.0)
    weight = torch.where(has_id, 1.0, 3.0)
    np.testing.assert_allclose((scores - dense).numpy(), (cosines * weight).numpy(), atol=1e-4)
    assert (cosines[:, cold] > 0).any()

    batch = next(iter(train))
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["item_id"]
    with torch.no_grad():  # eval: the mask is the evaluation one (no dropout)
        loss = model.calculate_loss(batch)[0]
        table = model.item_matrix()
        states = model.sequence_states(seq[:, : int(lengths.max())], table)
        manual = []
        for r in range(len(seq)):
            items = seq[r, : int(lengths[r])].tolist() + [int(targets[r])]
            for j in range(int(lengths[r])):
                prefix = torch.tensor([items[: j + 1]])
                logits = states[r, j] @ table.t() + weight * model.lexical_scores(prefix, torch.tensor([j + 1]))[0]
                logits[0] = float("-inf")
                manual.append(F.cross_entropy(logits[None], torch.tensor([items[j + 1]])))
    assert loss.item() == pytest.approx(torch.stack(manual).mean().item(), rel=1e-5)

    model.train()  # warm items whose id is dropped in the step teach cold_lexical_scale
    parts = model.item_parts(torch.arange(model.n_items))
    assert parts.has_id is not None and (~parts.has_id[1:] & has_id[1:]).any()
    sum(model.calculate_loss(batch)).backward()
    assert model.cold_lexical_scale.grad is not None and model.cold_lexical_scale.grad.abs() > 0


def test_unseen_negatives_false_leaves_unseen_items_out_of_the_training_softmax(tmp_path, data):
    *_, dataset, train, valid, test, model = build_blairclip(tmp_path, use_image=False, unseen_negatives=False,
                                                             train_rows="prefix")
    model.eval()
    cold = dataset.token2id("item_id", COLD)
    inter = train.dataset.inter_feat  # independent: the ids in the training rows
    seen = set(inter["item_id"].tolist()) | set(inter["item_id_list"].flatten().tolist())
    unseen = torch.tensor([k not in seen or k == 0 for k in range(model.n_items)])
    assert unseen[cold] and unseen[0] and torch.equal(unseen, model.train_unseen)
    batch = next(iter(train))
    seq, lengths, targets = batch["item_id_list"], batch["item_length"], batch["item_id"]
    with torch.no_grad():
        loss = model.calculate_loss(batch)[0]
        table = model.item_matrix()
        logits = model.forward(seq, lengths, table) @ table.t()
        full = F.cross_entropy(logits.masked_fill(torch.arange(model.n_items) == 0, float("-inf")), targets)
        masked = F.cross_entropy(logits.masked_fill(unseen, float("-inf")), targets)
    assert loss.item() == pytest.approx(masked.item(), rel=1e-5)
    assert masked.item() < full.item()  # the unseen items' share of the softmax is gone
    # evaluation still ranks every item, the unseen ones included
    scores = model.full_sort_predict(next(iter(test))[0])
    assert torch.isfinite(scores[:, cold]).all()
