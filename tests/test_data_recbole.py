"""RecBole runs BPR and SASRec on a converted dataset, on the same test targets, through the plugin."""
import os

import pytest

import recbole_blairclip
from recbole_blairclip.data.atomic import read_columns
from recbole_blairclip.data.convert import convert
from recbole_blairclip.data.synth import synthesize
from recbole_blairclip.quick_start import make_config, prepare

SMALL = {"epochs": 1, "show_progress": False, "train_batch_size": 256, "eval_batch_size": 512,
         "embedding_size": 16, "hidden_size": 16, "inner_size": 16, "n_layers": 1, "n_heads": 1, "seed": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("recbole")
    s = synthesize(str(root / "raw"), users=2500, items=150, seed=0, images=False)
    convert(s["paths"]["reviews"], s["paths"]["meta"], name="syn", out=str(root / "ds"))
    convert(s["paths"]["reviews"], s["paths"]["meta"], name="syn2", out=str(root / "ds"), two_way=True)
    return root


def targets(data):
    ds = data._dataset
    users = ds.id2token(ds.uid_field, ds.inter_feat[ds.uid_field].numpy())
    items = ds.id2token(ds.iid_field, ds.inter_feat[ds.iid_field].numpy())
    return sorted(zip(users.tolist(), items.tolist()))


def test_bpr_and_sasrec_run_on_the_same_targets(dataset, monkeypatch):
    monkeypatch.chdir(dataset)
    cfg = dict(SMALL, data_path=str(dataset / "ds"), output_dir=str(dataset / "out"))
    test_file = read_columns(str(dataset / "ds" / "syn" / "syn.test.inter"))
    want = sorted(zip(test_file["user_id"], test_file["item_id"]))
    for model in ("BPR", "SASRec"):
        result = recbole_blairclip.run(model=model, dataset="syn", config_dict=cfg)
        metrics = result["test_result"]
        assert {"recall@10", "ndcg@10", "mrr@10"} <= set(metrics), model
        assert all(0.0 <= v <= 1.0 for v in metrics.values()), metrics
        assert result["best_valid_result"] is not None
        _, _, valid_data, test_data = prepare(make_config(model, "syn", config_dict=cfg))
        assert targets(test_data) == want, model
        assert len(targets(valid_data)) == len(read_columns(str(dataset / "ds" / "syn" / "syn.valid.inter"))["user_id"])
    assert not os.path.exists(dataset / "log")  # RecBole's folders went under output_dir


def test_two_way_and_item_columns_load(dataset, monkeypatch):
    monkeypatch.chdir(dataset)
    cfg = dict(SMALL, data_path=str(dataset / "ds"), output_dir=str(dataset / "out2"))
    result = recbole_blairclip.run(model="BPR", dataset="syn2", config_dict=cfg)  # header-only valid file
    assert result["best_valid_result"] is None and result["test_result"]["recall@10"] >= 0
    # every .item column loads in RecBole (empty text cells, token_seq text, urls)
    cfg["load_col"] = {"inter": ["user_id", "item_id", "rating", "timestamp"],
                       "item": ["item_id", "item_text", "title", "categories", "store", "image_url"]}
    ds, *_ = prepare(make_config("BPR", "syn", config_dict=cfg))
    item = read_columns(str(dataset / "ds" / "syn" / "syn.item"))
    assert ds.item_num == len(item["item_id"]) + 1  # + padding
    assert "item_text" in ds.item_feat and ds.item_feat["item_text"].shape[1] > 10
