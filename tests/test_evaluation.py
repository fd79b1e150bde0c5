"""The shared evaluation protocol: same candidates for every model, masking, AUC, ties, cold-start views.

Expected values come from the atomic files read with pandas (candidates, cold-start counts) and from
the independent numpy metrics of ``tests/crosscheck.py``.
"""
import os

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SHARED_DATA, write_tiny_dataset

import crosscheck  # tests/crosscheck.py: the independent numpy oracle
from recbole.evaluator.collector import Collector

from recbole_blairclip.evaluation.protocol import PHASE_ATTR, ProtocolCollector, mean_ranks, pessimistic_topk
from recbole_blairclip.quick_start import build_model, build_trainer, make_config, prepare

MODELS = ("BPR", "SASRec", "TFIDF")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    write_tiny_dataset(str(root / "dataset_atomic"), n_users=30, n_items=40, seed=3)
    return root


def base_config(root, **extra):
    config = {
        "data_path": str(root / "dataset_atomic"),
        "output_dir": str(root / "out"),
        "epochs": 1,
        "train_batch_size": 64,
        "eval_batch_size": 400,  # general models: 10 users per batch (several batches)
        "show_progress": False,
        "seed": 7,
        "metric_decimal_place": 10,
        "metrics": ["Recall", "NDCG", "MRR", "Hit", "Precision", "GAUC"],
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "n_heads": 1,
        "embedding_size": 16,
    }
    config.update(extra)
    return config


def evaluate(model, root, phase="test", **extra):
    """One training epoch, then the protocol trainer's evaluation; returns (dump, trainer, loader, dataset)."""
    config = make_config(model, "tiny", config_dict=base_config(root, **extra))
    dataset, train_data, valid_data, test_data = prepare(config)
    trainer = build_trainer(config, build_model(config, train_data))
    trainer.eval_collector.data_collect(train_data)
    trainer._train_epoch(train_data, 0, show_progress=False)  # Pop counts items here
    loader = test_data if phase == "test" else valid_data
    return crosscheck.collect_scores(trainer, loader), trainer, loader, dataset


@pytest.fixture(scope="module")
def dumps(tiny_root):
    """Test-phase dumps of the three model families (and Pop, whose popularity scores tie a lot)."""
    return {m: evaluate(m, tiny_root) for m in MODELS + ("Pop",)}


def read_part(root, part):
    path = os.path.join(root, "dataset_atomic", "tiny", f"tiny.{part}.inter")
    df = pd.read_csv(path, sep="\t", dtype=str)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def catalogue(root):
    items = set(pd.read_csv(os.path.join(root, "dataset_atomic", "tiny", "tiny.item"), sep="\t", dtype=str).iloc[:, 0])
    for part in ("train", "valid", "test"):
        items |= set(read_part(root, part)["item_id"])
    return items


def expected_candidates(root, phase):
    """user token -> set of candidate item tokens, from the files: catalogue minus earlier items."""
    earlier_parts = ["train"] if phase == "valid" else ["train", "valid"]
    earlier = pd.concat([read_part(root, p) for p in earlier_parts]).groupby("user_id")["item_id"].agg(set)
    items = catalogue(root)
    targets = read_part(root, phase)
    return {u: items - (earlier.get(u, set()) - {t}) for u, t in zip(targets["user_id"], targets["item_id"])}


def candidate_sets(dump, dataset):
    """user token -> set of item tokens with a finite score in the dumped (masked) scores."""
    user_tokens = dataset.field2id_token["user_id"]
    item_tokens = np.asarray(dataset.field2id_token["item_id"])
    return {
        user_tokens[u]: set(item_tokens[np.isfinite(row)].tolist())
        for u, row in zip(dump["users"].tolist(), dump["scores"])
    }


@pytest.mark.parametrize("phase", ["valid", "test"])
def test_same_candidates_for_bpr_sasrec_tfidf(tiny_root, dumps, phase):
    if phase == "test":
        runs = {m: (dumps[m][0], dumps[m][3]) for m in MODELS}
    else:
        runs = {m: (lambda r: (r[0], r[3]))(evaluate(m, tiny_root, phase="valid")) for m in MODELS}
    expected = expected_candidates(tiny_root, phase)
    n_items = len(catalogue(tiny_root))
    counts = {}
    for model, (dump, dataset) in runs.items():
        sets = candidate_sets(dump, dataset)
        assert sets == expected, model
        counts[model] = sorted((u, len(s)) for u, s in sets.items())
    assert counts["BPR"] == counts["SASRec"] == counts["TFIDF"]
    sizes = [n for _, n in counts["BPR"]]
    assert len(sizes) == len(expected) and max(sizes) < n_items  # the masks did remove something
    assert min(sizes) < n_items - 1


def test_masking_off_ranks_the_whole_catalogue(tiny_root):
    n_items = len(catalogue(tiny_root))
    for model in MODELS:
        dump, _, _, dataset = evaluate(model, tiny_root, mask_history=False)
        finite = np.isfinite(dump["scores"]).sum(axis=1)
        assert (finite == n_items).all(), model  # all items minus padding, history included
        assert not np.isfinite(dump["scores"][:, 0]).any()


def test_auc_is_the_fraction_of_candidates_ranked_below_the_target(dumps):
    dump = dumps["BPR"][0]  # random embeddings: continuous scores
    fractions = []
    for row, item in zip(dump["target_row"], dump["target_item"]):
        scores = dump["scores"][row]
        others = np.isfinite(scores)
        others[item] = False
        assert not np.any(scores[others] == scores[item])  # no ties in this case
        fractions.append(np.mean(scores[others] < scores[item]))
    assert len(fractions) == dump["scores"].shape[0]  # one target per user
    assert dump["result"]["auc"] == pytest.approx(np.mean(fractions), abs=1e-6)
    assert "gauc" not in dump["result"]


def test_auc_and_topk_with_ties_hand_worked(dumps):
    trainer = dumps["BPR"][1]
    collector = ProtocolCollector(trainer.config)
    inf = float("-inf")
    # row 0: target item 2 (score 0.5) tied with items 1 and 4; item 3 above; item 5 masked.
    # row 1: target item 1 alone on top; items 4, 5 masked.
    scores = torch.tensor([[inf, 0.5, 0.5, 0.9, 0.5, inf], [inf, 0.8, 0.1, 0.2, inf, inf]])
    positive_u, positive_i = torch.tensor([0, 1]), torch.tensor([2, 1])
    topk = pessimistic_topk(scores, positive_u, positive_i, 4)
    # row 0 ranking: 3, then tied non-targets 1 and 4, then the target -> rank 4
    assert topk.tolist() == [[0, 0, 0, 1, 1], [1, 0, 0, 0, 1]]
    collector.eval_batch_collect(scores, None, positive_u, positive_i)
    result = trainer.evaluator.evaluate(collector.get_data_struct())
    # AUC row 0: negatives 1, 3, 4 -> (0 below + 2 ties / 2) / 3 = 1/3; row 1: negatives 2, 3 -> 1
    assert result["gauc"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-6)
    assert result["recall@10"] == pytest.approx(1.0)
    assert result["mrr@10"] == pytest.approx((1 / 4 + 1) / 2)
    assert result["ndcg@10"] == pytest.approx((1 / np.log2(5) + 1) / 2)


def test_sort_free_mean_ranks_equal_recbole_sort(dumps):
    """The collector's counted average ranks equal RecBole's own sort-based rec.meanrank, ties included."""
    config = dumps["BPR"][1].config
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (50, 80), generator=gen).float()  # many ties
    scores[:, 0] = float("-inf")
    scores[torch.rand(50, 80, generator=gen) < 0.2] = float("-inf")  # masked candidates
    positive_u = torch.cat([torch.arange(50), torch.arange(0, 50, 3)])  # some rows with two targets
    positive_i = torch.cat([torch.full((50,), 1), torch.full((len(range(0, 50, 3)),), 2)])
    scores[positive_u, positive_i] = torch.randint(0, 6, (len(positive_u),), generator=gen).float()
    recbole = Collector(config)
    recbole.eval_batch_collect(scores, None, positive_u, positive_i)
    expected = recbole.data_struct.get("rec.meanrank")
    assert torch.allclose(mean_ranks(scores, positive_u, positive_i).float(), expected.float())


@pytest.mark.parametrize("model", MODELS + ("Pop",))
def test_numpy_crosscheck_agrees_with_recbole(dumps, tmp_path, model):
    dump = dumps[model][0]
    path = tmp_path / "scores.npz"
    crosscheck.save_scores(path, dump)
    dump = crosscheck.load_scores(path)
    computed = crosscheck.numpy_metrics(dump, topk=(10, 50))
    assert set(dump["result"]) <= set(computed)
    assert crosscheck.compare(dump["result"], computed, tol=1e-6) == {}
    if model == "Pop":  # the case that matters: targets tied with other candidates
        tied = [
            np.sum(dump["scores"][r] == dump["scores"][r, i]) > 1
            for r, i in zip(dump["target_row"], dump["target_item"])
        ]
        assert sum(tied) >= 5


def test_crosscheck_detects_a_wrong_number(dumps):
    dump = dict(dumps["BPR"][0])
    computed = crosscheck.numpy_metrics(dump)
    wrong = dict(dump["result"], **{"ndcg@10": dump["result"]["ndcg@10"] + 1e-4})
    assert list(crosscheck.compare(wrong, computed)) == ["ndcg@10"]


def test_coldstart_view_counts_and_metrics(tiny_root, dumps):
    train_items = set(read_part(tiny_root, "train")["item_id"])
    test = read_part(tiny_root, "test")
    expected_cold = {u for u, i in zip(test["user_id"], test["item_id"]) if i not in train_items}
    assert 0 < len(expected_cold) < len(test)
    for model in MODELS:
        dump, trainer, loader, dataset = dumps[model]
        views = trainer.last_views
        assert views["n_users"] == len(test)
        assert views["n_coldstart"] == len(expected_cold), model
        assert views["n_warm"] == len(test) - len(expected_cold)
        user_tokens = dataset.field2id_token["user_id"]
        cold_rows = np.array([user_tokens[u] in expected_cold for u in dump["users"]])
        for name, rows in (("coldstart", cold_rows), ("warm", ~cold_rows)):
            keep = np.isin(dump["target_row"], np.nonzero(rows)[0])
            remap = -np.ones(len(rows), dtype=np.int64)
            remap[rows] = np.arange(rows.sum())
            sub = {
                "scores": dump["scores"][rows],
                "target_row": remap[dump["target_row"][keep]],
                "target_item": dump["target_item"][keep],
            }
            assert crosscheck.compare(views[name], crosscheck.numpy_metrics(sub)) == {}, (model, name)


def test_coldstart_count_matches_converter_stats(tmp_path):
    convert = pytest.importorskip("recbole_blairclip.data.convert")
    reviews = os.path.join(SHARED_DATA, "amazon2018-appliances", "Appliances_5.json.gz")
    meta = os.path.join(SHARED_DATA, "amazon2018-appliances", "meta_Appliances_first100.json.gz")
    if not os.path.isfile(reviews):
        pytest.skip("shared Amazon sample not available")
    stats = convert.convert(reviews, meta, name="app", out=str(tmp_path / "dataset_atomic"))
    counted = {}
    for model in ("BPR", "SASRec"):
        config = make_config(model, "app", config_dict=base_config(tmp_path))
        _, train_data, valid_data, test_data = prepare(config)
        phase = getattr(test_data, PHASE_ATTR)
        from recbole_blairclip.evaluation.coldstart import coldstart_count

        counted[model] = coldstart_count(phase, test_data)
    expected = stats["cold_start"]["test_targets"]
    assert counted == {"BPR": expected, "SASRec": expected}


def test_gauc_valid_metric_maps_to_auc(tiny_root):
    config = make_config("BPR", "tiny", config_dict=base_config(tiny_root, valid_metric="GAUC"))
    _, train_data, valid_data, _ = prepare(config)
    trainer = build_trainer(config, build_model(config, train_data))
    score, result = trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    assert trainer.valid_metric == "auc" and score == result["auc"]


def test_nan_scores_rank_last_and_never_hit():
    """A diverged model (NaN scores) gets no hits and the lowest rank, not a free hit at rank k."""
    from recbole_blairclip.evaluation.protocol import pessimistic_topk, target_ranks

    scores = torch.full((2, 20), float("nan"))
    scores[:, 0] = float("-inf")  # padding
    pos_u, pos_i = torch.tensor([0, 1]), torch.tensor([3, 4])
    hits = pessimistic_topk(scores, pos_u, pos_i, 10)
    assert hits[:, :10].sum() == 0 and hits[:, 10].tolist() == [1, 1]
    pessimistic, average, n_candidates = target_ranks(scores, pos_u, pos_i)
    assert n_candidates.tolist() == [19, 19]
    assert pessimistic.tolist() == [18, 18]  # after every tied (NaN) candidate
    assert average.tolist() == [10.0, 10.0]  # all 19 tied: average rank (19 + 1) / 2
    # a partly diverged row: the finite candidates rank above the NaN target
    scores[1, 5:9] = 1.0
    assert target_ranks(scores, pos_u, pos_i)[0].tolist() == [18, 18]
    scores[1, 4] = 2.0
    assert target_ranks(scores, pos_u, pos_i)[0].tolist() == [18, 0]


def test_metric_name_is_the_one_gauc_rename():
    """Every reported dict, the valid metric and the rank recomputation share one name mapping."""
    from recbole_blairclip.evaluation.protocol import report_names
    from recbole_blairclip.evaluation.ranks import metric_name, user_values

    assert metric_name("GAUC") == "auc" and metric_name("NDCG@10") == "ndcg@10" and metric_name("auc") == "auc"
    assert list(report_names({"Recall@10": 0.5, "gauc": 0.7})) == ["recall@10", "auc"]
    table = {"rank": [1, 3], "rank_avg": [1.0, 3.0], "n_candidates": [5, 5]}
    assert user_values(table, "GAUC").tolist() == user_values(table, "auc").tolist() == [1.0, 0.5]
