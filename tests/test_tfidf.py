"""TFIDF model: scores against hand-worked TF-IDF and scikit-learn, profiles, empty texts, bad input,
sparse chunking, and a saved checkpoint reloaded after a run through recbole_blairclip.run."""
import math
import os

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from conftest import write_tiny_dataset

import recbole_blairclip
from recbole_blairclip.errors import ConfigError, DatasetError
import crosscheck  # tests/crosscheck.py: the independent numpy oracle
from recbole_blairclip.model import lexical as lexical_module
from recbole_blairclip.model import lexical_cpu
from recbole_blairclip.quick_start import build_model, build_trainer, load_best, make_config, prepare

DOCS = {"a": "Red apple fruit", "b": "green APPLE", "c": "red car"}
# user -> items in time order: train = all but the last two (last one if only two), valid, test
# d and e occur only in interactions (no item row, so no text): they do not count as documents for idf
USERS = {"u1": ["a", "b", "c"], "u2": ["b", "a"], "u3": ["c", "a", "b"], "u4": ["d", "e", "a"]}


def write_three_docs(root, name="three", docs=DOCS, item_header="item_id:token\titem_text:token_seq"):
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    plain = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    files = {p: [plain + ("\titem_id_list:token_seq" if p != "train" else "")] for p in ("train", "valid", "test")}
    files["train_seq"] = [plain + "\titem_id_list:token_seq"]
    files["inter"] = [plain]
    for user, items in USERS.items():
        for k, item in enumerate(items):
            line = f"{user}\t{item}\t5.0\t{1000 + k}.0"
            part = "test" if k == len(items) - 1 else ("valid" if k == len(items) - 2 and len(items) >= 3 else "train")
            files["inter"].append(line)
            hist = " ".join(items[:k])
            if part == "train":
                files["train"].append(line)
                if k:
                    files["train_seq"].append(f"{line}\t{hist}")
            else:
                files[part].append(f"{line}\t{hist}")
    for part, lines in files.items():
        suffix = "inter" if part == "inter" else f"{part}.inter"
        with open(os.path.join(folder, f"{name}.{suffix}"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(folder, f"{name}.item"), "w", encoding="utf-8") as f:
        f.write(item_header + "\n")
        for item, text in docs.items():
            f.write(f"{item}\t{text}\n" if "\t" in item_header else f"{item}\n")
    return folder


def config_dict(tmp_path, **extra):
    d = {
        "data_path": str(tmp_path / "dataset_atomic"),
        "output_dir": str(tmp_path / "out"),
        "show_progress": False,
        "eval_batch_size": 4096,
        "metric_decimal_place": 10,
    }
    d.update(extra)
    return d


def build(tmp_path, dataset="three", **extra):
    config = make_config("TFIDF", dataset, config_dict=config_dict(tmp_path, **extra))
    ds, train_data, valid_data, test_data = prepare(config)
    return config, ds, build_model(config, train_data), (train_data, valid_data, test_data)


def hand_vectors():
    """TF-IDF of the three documents worked out from the formulas (smooth idf, sublinear tf, l2 rows)."""
    vocab = ["apple", "car", "fruit", "green", "red"]
    idf_df2 = math.log(4 / 3) + 1  # ln((1 + n) / (1 + df)) + 1 with n = 3 documents, df = 2
    idf_df1 = math.log(4 / 2) + 1  # df = 1
    raw = {
        "a": [idf_df2, 0, idf_df1, 0, idf_df2],  # apple, fruit, red (tf = 1 -> 1 + ln 1 = 1)
        "b": [idf_df2, 0, 0, idf_df1, 0],  # apple, green (lower-cased)
        "c": [0, idf_df1, 0, 0, idf_df2],  # car, red
    }
    return vocab, {k: np.array(v) / np.linalg.norm(v) for k, v in raw.items()}


def scores_for(model, ds, history, **kw):
    ids = [ds.token2id("item_id", t) for t in history]
    inter = Interaction(
        {
            "user_id": torch.tensor([1]),
            "item_id_list": torch.tensor([ids]),
            "item_length": torch.tensor([len(ids)]),
        }
    )
    scores = model.full_sort_predict(inter).view(-1).numpy()
    return {t: scores[ds.token2id("item_id", t)] for t in DOCS}


def cosine(p, q):
    return float(p @ q / (np.linalg.norm(p) * np.linalg.norm(q)))


def test_scores_match_hand_worked_tfidf_and_sklearn(tmp_path):
    write_three_docs(str(tmp_path / "dataset_atomic"))
    _, ds, model, _ = build(tmp_path)
    _, vec = hand_vectors()
    # scikit-learn on the same three documents, as an independent second reference
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    sk = TfidfVectorizer(sublinear_tf=True).fit_transform(list(DOCS.values()))
    sk_sim = cosine_similarity(sk)
    got = scores_for(model, ds, ["a"])
    for j, item in enumerate(DOCS):
        assert got[item] == pytest.approx(cosine(vec["a"], vec[item]), abs=1e-6)
        assert got[item] == pytest.approx(sk_sim[0, j], abs=1e-6)
    assert got["a"] == pytest.approx(1.0, abs=1e-6)
    # mean profile of a and b
    got = scores_for(model, ds, ["a", "b"])
    profile = (vec["a"] + vec["b"]) / 2
    for item in DOCS:
        assert got[item] == pytest.approx(cosine(profile, vec[item]), abs=1e-6)
    assert scores_for(model, ds, ["b"])["c"] == pytest.approx(0.0, abs=1e-7)  # no shared term


@pytest.mark.parametrize("profile,weights", [("recency", (0.5, 1.0)), ("last", (0.0, 1.0))])
def test_recency_and_last_item_profiles(tmp_path, profile, weights):
    write_three_docs(str(tmp_path / "dataset_atomic"))
    _, ds, model, _ = build(tmp_path, user_profile=profile, recency_decay=0.5)
    _, vec = hand_vectors()
    got = scores_for(model, ds, ["a", "b"])  # b is the most recent
    p = weights[0] * vec["a"] + weights[1] * vec["b"]
    for item in DOCS:
        assert got[item] == pytest.approx(cosine(p, vec[item]), abs=1e-6)


def test_protocol_hands_train_and_valid_items_at_test(tmp_path):
    """At test time u1's profile is its train item a plus its valid item b (as SASRec's input)."""
    write_three_docs(str(tmp_path / "dataset_atomic"))
    config, ds, model, (train_data, valid_data, test_data) = build(tmp_path)
    trainer = build_trainer(config, model)
    dump = crosscheck.collect_scores(trainer, test_data)
    _, vec = hand_vectors()
    row = list(dump["users"]).index(ds.token2id("user_id", "u1"))
    scores = dump["scores"][row]
    c = ds.token2id("item_id", "c")
    assert scores[c] == pytest.approx(cosine((vec["a"] + vec["b"]) / 2, vec["c"]), abs=1e-6)
    assert np.isneginf(scores[ds.token2id("item_id", "a")]) and np.isneginf(scores[ds.token2id("item_id", "b")])
    # without the protocol's history the model falls back to the training history only (a)
    stored = model.full_sort_predict(Interaction({"user_id": torch.tensor([ds.token2id("user_id", "u1")])}))
    assert float(stored[c]) == pytest.approx(cosine(vec["a"], vec["c"]), abs=1e-6)


def test_empty_texts_give_zero_scores_not_nan(tmp_path):
    docs = {"a": "red apple", "b": "", "c": "red car"}
    write_three_docs(str(tmp_path / "dataset_atomic"), docs=docs)
    _, ds, model, _ = build(tmp_path)
    got = scores_for(model, ds, ["a"])
    assert got["b"] == 0.0 and got["a"] == pytest.approx(1.0)
    got = scores_for(model, ds, ["b"])  # a history whose only item has no text
    assert all(v == 0.0 for v in got.values())
    # a catalogue without any text at all: every score 0
    write_three_docs(str(tmp_path / "dataset_atomic"), name="blank", docs={"a": "", "b": "", "c": ""})
    _, ds, model, _ = build(tmp_path, dataset="blank")
    scores = model.full_sort_predict(Interaction({"user_id": torch.arange(1, 4)}))
    assert torch.isfinite(scores).all() and (scores == 0).all()


def test_missing_text_field_names_needed_and_existing_fields(tmp_path):
    write_three_docs(str(tmp_path / "dataset_atomic"), item_header="item_id:token")
    with pytest.raises(DatasetError) as err:
        build(tmp_path)
    message = str(err.value)
    assert "'item_text'" in message and "item_id" in message and "three.item" in message
    # a field that is in the file but not loaded: the message says to add it to load_col
    write_three_docs(str(tmp_path / "dataset_atomic"), name="other")
    with pytest.raises(DatasetError, match="load_col"):
        build(tmp_path, dataset="other", load_col={"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]})


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("user_profile", "median", "user_profile"),
        ("tfidf_norm", "l3", "tfidf_norm"),
        ("tfidf_ngram_range", [2, 1], "tfidf_ngram_range"),
        ("text_fields", [], "text_fields"),
        ("tfidf_min_df", 5, "vocabulary"),
    ],
)
def test_bad_config_values(tmp_path, key, value, match):
    write_three_docs(str(tmp_path / "dataset_atomic"))
    with pytest.raises(ConfigError, match=match):
        build(tmp_path, **{key: value})


def test_chunked_scoring_equals_one_block_and_state_is_sparse(tmp_path, monkeypatch):
    write_tiny_dataset(str(tmp_path / "dataset_atomic"), n_users=20, n_items=30)
    _, ds, model, _ = build(tmp_path, dataset="tiny", tfidf_ngram_range=[1, 2])
    users = Interaction({"user_id": torch.arange(1, ds.user_num)})
    whole = model.full_sort_predict(users)
    monkeypatch.setattr(lexical_module, "_DENSE_BUDGET", 1)  # one user per block
    assert torch.allclose(model.full_sort_predict(users), whole, atol=1e-6)
    n_terms = int(model.lexical.n_terms)
    assert n_terms > 0
    for name, buf in model.named_buffers():
        assert buf.dim() <= 1, name  # CSR arrays and per-item norms only: no dense items x vocabulary
    assert model.lexical.item_val.numel() < ds.item_num * n_terms
    # predict() agrees with full_sort_predict for (user, item) pairs
    pairs = Interaction({"user_id": torch.tensor([1, 2]), "item_id": torch.tensor([3, 5])})
    full = model.full_sort_predict(Interaction({"user_id": torch.tensor([1, 2])})).view(2, -1)
    assert torch.allclose(model.predict(pairs), full[[0, 1], [3, 5]])


def test_saved_run_reloads_the_checkpoint(tiny_data):
    result = recbole_blairclip.run("TFIDF", "tiny", config_dict=tiny_data, saved=True)
    assert os.path.isfile(result["checkpoint"])
    assert result["epochs"] == 1 and result["n_params"] == 1
    assert set(result["test_result"]) >= {"recall@10", "recall@50", "ndcg@10", "mrr@10", "auc"}
    assert result["n_test_users"] == 40
    assert result["n_test_coldstart"] + result["n_test_warm"] == 40
    assert result["test_result_warm"] is not None
    # a fresh model with its state wiped, then the checkpoint: same scores, same test metrics
    config = make_config("TFIDF", "tiny", config_dict=tiny_data)
    _, train_data, _, test_data = prepare(config)
    model = build_model(config, train_data)
    trainer = build_trainer(config, model)
    reference = crosscheck.collect_scores(trainer, test_data)
    for buf in model.buffers():
        buf.zero_()
    trainer.saved_model_file = result["checkpoint"]
    load_best(trainer)
    again = crosscheck.collect_scores(trainer, test_data)
    np.testing.assert_allclose(again["scores"], reference["scores"])
    assert again["result"] == pytest.approx(result["test_result"], abs=1e-9)


# (gemm, spmm, scatter) costs that force every term to one kind, or mix them; head caps; tile sizes
@pytest.mark.parametrize("costs, head_max, tile", [
    ((0.0, 1e9, 1e9), 10**6, 4096), ((0.0, 1e9, 1e9), 3, 7), ((1e9, 0.0, 1e9), 10**6, 7), ((1e9, 1e9, 0.0), 10**6, 7),
    ((0.032, 0.2, 4.0), 10**6, 4096), ((1.0, 0.05, 3.0), 10**6, 5), ((0.0, 1e9, 1e9), 0, 16)])
def test_split_scoring_matches_scipy_cosines_for_any_term_split(tmp_path, monkeypatch, costs, head_max, tile):
    """CPU scoring (dense GEMM over head terms + sparse x dense over mid terms + sparse x sparse over the
    rare ones, in item tiles) against scipy: profile = weights x X, cosine with every item row; the same for
    the CUDA-path SpMM."""
    import scipy.sparse as sp

    write_tiny_dataset(str(tmp_path / "dataset_atomic"), n_users=30, n_items=40)
    _, ds, model, _ = build(tmp_path, dataset="tiny", tfidf_ngram_range=[1, 2], user_profile="recency",
                            recency_decay=0.7)
    for name, value in zip(("_GEMM_NS", "_SPMM_NS", "_SCATTER_NS"), costs):
        monkeypatch.setattr(lexical_cpu, name, value)
    monkeypatch.setattr(lexical_cpu, "_HEAD_MAX", head_max)
    monkeypatch.setattr(lexical_cpu, "_TILE", tile)
    model.lexical.__dict__.pop("_cache", None)  # the CPU scorer is rebuilt with these costs
    X = sp.csr_matrix((model.lexical.item_val.numpy(), model.lexical.item_col.numpy(), model.lexical.item_crow.numpy()),
                      shape=(model.n_items, int(model.lexical.n_terms))).astype(np.float64)
    rng = np.random.default_rng(head_max % 1000 + tile)
    hist = torch.from_numpy(rng.integers(0, model.n_items, size=(25, 6)))
    lengths = torch.from_numpy(rng.integers(1, 7, size=25))
    hist = torch.where(torch.arange(6)[None, :] < lengths[:, None], hist, torch.zeros_like(hist))
    inter = Interaction({"user_id": torch.arange(1, 26), "item_id_list": hist, "item_length": lengths})
    got = model.full_sort_predict(inter).view(25, -1).numpy()
    W = np.zeros((25, model.n_items))
    for u in range(25):
        for k in range(int(lengths[u])):
            if hist[u, k] > 0:
                W[u, hist[u, k]] += 0.7 ** (int(lengths[u]) - 1 - k)
    profile = sp.csr_matrix(W) @ X
    dots = (profile @ X.T).toarray()
    norms = np.sqrt(np.asarray(profile.multiply(profile).sum(1)).ravel())[:, None] * np.sqrt(
        np.asarray(X.multiply(X).sum(1)).ravel())[None, :]
    expected = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    assert np.abs(expected).max() > 0.1 and (expected == 0).any()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    scorer = model.lexical.cpu_scorer()
    nnz, n_terms = model.lexical.item_val.numel(), int(model.lexical.n_terms)
    cap = min(head_max, n_terms, lexical_cpu._HEAD_FLOATS_PER_NNZ * nnz // model.n_items)
    assert scorer.n_head + scorer.n_mid + scorer.n_rare == n_terms
    if costs[0] == 0.0:  # every term wants the head: the caps allow `cap`, the rest go to rare (cheaper here)
        assert (scorer.n_head, scorer.n_rare) == (cap, n_terms - cap)
    elif costs[1] == 0.0:
        assert scorer.n_mid == n_terms
    elif costs[2] == 0.0:
        assert scorer.n_rare == n_terms
    else:  # mixed: what term_split chose (checked by brute force in the next test)
        kind, _ = lexical_cpu.term_split(np.bincount(model.lexical.item_col.numpy(), minlength=n_terms),
                                         model.n_items, model.lexical.mean_history, nnz)
        assert [scorer.n_head, scorer.n_mid, scorer.n_rare] == np.bincount(kind, minlength=3).tolist()
    assert len(scorer.tiles) == -(-model.n_items // tile)
    assert scorer.head.numel() <= lexical_cpu._HEAD_FLOATS_PER_NNZ * nnz  # memory O(non-zeros)
    assert scorer.memory_floats() <= 2 * nnz + 2 * nnz + 2 * len(scorer.tiles) * (tile + n_terms + 2)
    # the CUDA path (the same unit profiles, sparse item matrix x dense block) gives the same cosines
    P = model.lexical.profiles(hist, model.history_weights(hist, lengths))
    spmm = model.lexical._scores_spmm(P, torch.empty(25, model.n_items), torch.zeros(int(model.lexical.n_terms), 30))
    np.testing.assert_allclose(spmm.numpy(), expected, atol=1e-6)


def test_term_split_gives_each_term_its_cheapest_kind_within_the_head_caps():
    """term_split against a per-term brute force: cost of a head column n_items * gemm, of a mid term
    df * spmm, of a rare term P(a user has it) * df * scatter; the head keeps its most frequent terms up to
    the caps and the others go to the cheaper of mid and rare."""
    rng = np.random.default_rng(5)
    n_items, h = 1000, 3.0
    df = np.concatenate([rng.integers(1, n_items, 40), rng.integers(1, 30, 400), [n_items, n_items]])
    for nnz in (10**6, 3 * n_items):  # head cap 256 terms, then 2 * nnz / n_items = 6 columns
        kind, order = lexical_cpu.term_split(df, n_items, h, nnz)
        assert (np.diff(df[order]) <= 0).all()
        cost = np.stack([np.full(len(df), n_items * lexical_cpu._GEMM_NS), df * lexical_cpu._SPMM_NS,
                         (1 - (1 - df / n_items) ** h) * df * lexical_cpu._SCATTER_NS])
        best = cost.argmin(axis=0)
        cap = min(lexical_cpu._HEAD_MAX, 2 * nnz // n_items)
        want = [t for t in order if best[t] == 0]
        head = set(want[:cap])
        for t in range(len(df)):
            if t in head:
                assert kind[t] == 0
            elif best[t] == 0:
                assert kind[t] == (1 if cost[1, t] <= cost[2, t] else 2)
            else:
                assert kind[t] == best[t]
        assert (kind == 0).sum() == min(cap, len(want)) and len(want) > 6  # the second nnz caps the head
        assert {0, 1, 2} <= set(kind.tolist())
