"""Reproduction check: BPR and SASRec through the plugin, with RecBole's own candidates, give the metrics of
RecBole run directly (its own Config, dataset, trainer and evaluator) on the same split and seed.

Real data: a slice (the first users) of the Amazon 2014 Toys and Games RecBole atomic dataset in
../shared/data (skipped when absent), converted with `convert --inter`.
"""
import os

import pytest
import torch

import recbole_blairclip
from recbole_blairclip.benchmark.recbole_direct import protocol_config, recbole_protocol_mask, run_direct
from recbole_blairclip.data.recbole_atomic import convert_recbole

TOYS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "amazon2014-toys-recbole", "toys.inter")
N_USERS = 200
SMALL = {"train_batch_size": 256, "embedding_size": 16, "hidden_size": 16, "inner_size": 32, "n_layers": 1,
         "n_heads": 1, "MAX_ITEM_LIST_LENGTH": 20, "seed": 7, "stopping_step": 10}
EPOCHS = {"BPR": 2, "SASRec": 1}

pytestmark = pytest.mark.skipif(not os.path.isfile(TOYS), reason="../shared/data/amazon2014-toys-recbole absent")


@pytest.fixture(scope="module")
def toys_slice(tmp_path_factory):
    root = tmp_path_factory.mktemp("toys")
    with open(TOYS, encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    users = sorted({r.split("\t", 1)[0] for r in rows}, key=int)[:N_USERS]
    keep = set(users)
    with open(root / "slice.inter", "w", encoding="utf-8") as f:
        f.write(header + "\n" + "\n".join(r for r in rows if r.split("\t", 1)[0] in keep) + "\n")
    convert_recbole(str(root / "slice.inter"), name="toys_slice", out=str(root / "ds"), max_item_list_length=20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared CI machine: one thread is faster and the numbers do not change
    yield root
    torch.set_num_threads(threads)


def same(plugin, direct):
    """Every metric equal; RecBole's float32 ``gauc`` is the plugin's ``auc``."""
    assert set(plugin) == {("auc" if k == "gauc" else k) for k in direct}
    for key, value in direct.items():
        assert plugin["auc" if key == "gauc" else key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_plugin_with_recbole_protocol_equals_recbole_direct(toys_slice, model, monkeypatch):
    monkeypatch.chdir(toys_slice)
    config = protocol_config(model, str(toys_slice / "ds"), epochs=EPOCHS[model], **SMALL)
    direct = run_direct(model, "toys_slice", config, str(toys_slice / f"direct_{model}"))
    plugin = recbole_blairclip.run(model=model, dataset="toys_slice", config_dict=dict(
        config, mask_history=recbole_protocol_mask(model), output_dir=str(toys_slice / f"plugin_{model}")))
    same(plugin["test_result"], direct["test_result"])
    same(plugin["best_valid_result"], direct["best_valid_result"])
    assert plugin["test_result"]["recall@50"] > 0  # a trained model, not all zeros compared with zeros
    assert plugin["n_test_users"] == N_USERS
