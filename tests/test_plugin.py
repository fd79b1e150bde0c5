"""The installable plugin: run() and run_recbole for built-in and plugin models, config priority, errors."""
import os
import pickle
import sys

import pytest
import torch
import yaml
from recbole.model.general_recommender.pop import Pop

import recbole_blairclip
from recbole_blairclip import config as config_module
from recbole_blairclip import registry
from recbole_blairclip.cli import main as blairclip_main
from recbole_blairclip.cli.run_recbole import main as run_recbole_main
from recbole_blairclip.compat import load_recbole_checkpoint
from recbole_blairclip.config import Config
from recbole_blairclip.errors import ConfigError, DatasetError

SASREC_SMALL = {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1}
METRICS = {"recall@10", "recall@50", "ndcg@10", "mrr@10"}


def _assert_plain_result(result):
    assert isinstance(result["best_valid_score"], float)
    for part in ("best_valid_result", "test_result"):
        assert METRICS <= set(result[part])
        for value in result[part].values():
            assert type(value) is float and 0.0 <= value <= 1.0


@pytest.mark.parametrize("model,extra", [("BPR", {}), ("SASRec", SASREC_SMALL)])
@pytest.mark.parametrize("saved", [True, False])
def test_run_builtin_models(tiny_data, tmp_path, model, extra, saved):
    result = recbole_blairclip.run(model=model, dataset="tiny", config_dict={**tiny_data, **extra}, saved=saved)
    _assert_plain_result(result)
    assert result["epochs"] == 2
    out = tmp_path / "out"
    assert (out / "log" / model).is_dir() and (out / "log_tensorboard").is_dir()
    assert not (tmp_path / "log").exists() and not (tmp_path / "log_tensorboard").exists()
    assert not (tmp_path / "saved").exists()
    # the log file exists even though pytest's own handlers sit on the root logger
    assert result["log_file"].startswith(str(out / "log" / model)) and os.path.getsize(result["log_file"]) > 0
    with open(result["log_file"], encoding="utf-8") as f:
        test_lines = [line for line in f if "test result" in line or "test warm" in line]
    # the test metrics are logged as plain floats, not numpy reprs
    assert test_lines and not any("np.float" in line for line in test_lines)
    assert f"'ndcg@10': {result['test_result']['ndcg@10']}" in "".join(test_lines)
    if saved:
        assert os.path.dirname(result["checkpoint"]) == str(out / "saved")
        # the checkpoint pickles RecBole's Config: torch's default safe loading refuses it
        with pytest.raises(pickle.UnpicklingError):
            torch.load(result["checkpoint"])
        checkpoint = load_recbole_checkpoint(result["checkpoint"])
        assert checkpoint["config"]["model"] == model
    else:
        assert result["checkpoint"] is None
        assert not (out / "saved").exists() or not os.listdir(out / "saved")


def test_saved_reloads_best_epoch(tiny_data):
    """With saved=True the test score comes from the best validation epoch, not the last one."""
    seen = []
    config = {**tiny_data, "epochs": 4, "learning_rate": 0.05, **SASREC_SMALL}
    result = recbole_blairclip.run("SASRec", "tiny", config_dict=config, callback_fn=lambda e, s: seen.append(s))
    assert len(seen) == 4
    assert result["best_valid_score"] == pytest.approx(max(seen))
    assert seen[result["best_epoch"]] == pytest.approx(max(seen))
    checkpoint = load_recbole_checkpoint(result["checkpoint"])
    assert checkpoint["epoch"] == result["best_epoch"]


def test_same_seed_same_metrics(tiny_data):
    a = recbole_blairclip.run("BPR", "tiny", config_dict=tiny_data, saved=False)
    b = recbole_blairclip.run("BPR", "tiny", config_dict=tiny_data, saved=False)
    assert a["test_result"] == b["test_result"]


def test_run_recbole_cli_in_process(tiny_data, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({k: v for k, v in tiny_data.items()}))
    argv = ["--model=SASRec", "--dataset=tiny", f"--config_files={cfg}", "--epochs=1", "--hidden_size=8",
            "--inner_size=16", "--n_heads=1", "--n_layers=1", "--json"]
    assert run_recbole_main(argv) == 0
    import json

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "SASRec" and result["epochs"] == 1  # --epochs=1 beat the file's 2
    _assert_plain_result(result)


class DummyPlugin(Pop):
    """A plugin model registered by the test: Pop under another name."""


def test_plugin_model_resolves_first(tiny_data, monkeypatch):
    monkeypatch.setitem(registry.PLUGIN_MODELS, "DummyPlugin", DummyPlugin)
    monkeypatch.setitem(registry.PLUGIN_MODELS, "Pop", DummyPlugin)  # shadows RecBole's Pop
    assert registry.get_model("Pop") is DummyPlugin
    assert "DummyPlugin" in registry.plugin_model_names()
    result = recbole_blairclip.run("DummyPlugin", "tiny", config_dict=tiny_data)
    _assert_plain_result(result)
    assert result["model"] == "DummyPlugin"


def test_builtin_names_resolve_to_recbole():
    from recbole.model.general_recommender.lightgcn import LightGCN
    from recbole.model.sequential_recommender.gru4rec import GRU4Rec

    assert registry.get_model("LightGCN") is LightGCN
    assert registry.get_model("GRU4Rec") is GRU4Rec
    assert {"BPR", "SASRec", "LightGCN", "GRU4Rec"} <= set(registry.recbole_model_names())


def test_packaged_yaml_priority(tiny_data, tmp_path, monkeypatch):
    """packaged model yaml < config files < config_dict < --key=value."""
    monkeypatch.setitem(registry.PLUGIN_MODELS, "DummyPlugin", DummyPlugin)
    packaged = tmp_path / "DummyPlugin.yaml"
    packaged.write_text("a: packaged\nb: packaged\nc: packaged\nd: packaged\n")
    real = config_module.packaged_yaml
    monkeypatch.setattr(
        config_module, "packaged_yaml", lambda rel: str(packaged) if rel == "model/DummyPlugin.yaml" else real(rel)
    )
    file_cfg = tmp_path / "f.yaml"
    file_cfg.write_text("b: file\nc: file\nd: file\n")
    cfg = Config("DummyPlugin", "tiny", config_file_list=[str(file_cfg)], config_dict={**tiny_data, "c": "dict", "d": "dict"},
                 cmd_args=["--d=cmd"])
    assert (cfg["a"], cfg["b"], cfg["c"], cfg["d"]) == ("packaged", "file", "dict", "cmd")
    # the plugin's protocol defaults apply, and a config file still beats them
    assert cfg["benchmark_filename"] == ["train", "valid", "test"]
    seq = Config("SASRec", "tiny", config_dict={**tiny_data, "MAX_ITEM_LIST_LENGTH": 7})
    assert seq["benchmark_filename"] == ["train_seq", "valid", "test"]
    assert seq["MAX_ITEM_LIST_LENGTH"] == 7 and seq["train_neg_sample_args"]["distribution"] == "none"


def test_history_lists_keep_most_recent_items(tiny_data):
    from recbole_blairclip.quick_start import make_config, prepare

    config = make_config("SASRec", "tiny", config_dict={**tiny_data, "MAX_ITEM_LIST_LENGTH": 2})
    dataset, _, _, test_data = prepare(config)
    ids = dataset.field2id_token["item_id"]
    test = test_data._dataset.inter_feat
    lengths = test["item_length"].numpy()
    assert lengths.max() == 2
    raw = {}
    with open(os.path.join(tiny_data["data_path"], "tiny", "tiny.test.inter")) as f:
        next(f)
        for line in f:
            user, _, _, _, hist = line.rstrip("\n").split("\t")
            raw[user] = hist.split()
    users = dataset.field2id_token["user_id"]
    for row in range(len(test)):
        user = users[int(test["user_id"][row])]
        kept = [ids[int(i)] for i in test["item_id_list"][row][: lengths[row]]]
        assert kept == raw[user][-2:]


def test_unknown_model_error(tiny_data, capsys):
    with pytest.raises(ConfigError, match="SASRec.*blairclip models"):
        recbole_blairclip.run("SASrecc", "tiny", config_dict=tiny_data)
    assert run_recbole_main(["--model=BRP", "--dataset=tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("run_recbole: error: unknown model 'BRP'") and "BPR" in err[-1]


def test_unknown_dataset_error(tiny_data, tmp_path):
    with pytest.raises(DatasetError, match=str(tmp_path / "dataset_atomic" / "nope")):
        recbole_blairclip.run("BPR", "nope", config_dict=tiny_data)
    os.remove(tmp_path / "dataset_atomic" / "tiny" / "tiny.valid.inter")
    with pytest.raises(DatasetError, match=r"tiny\.valid\.inter"):
        recbole_blairclip.run("BPR", "tiny", config_dict=tiny_data)
    assert not (tmp_path / "out").exists()  # failed before any log folder was made


def test_broken_yaml_names_file_and_line(tiny_data, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 3\nlearning_rate: [0.1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml line \d+"):
        Config("BPR", "tiny", config_file_list=[str(bad)], config_dict=tiny_data)
    assert run_recbole_main(["--model=BPR", "--dataset=tiny", f"--config_files={bad}"]) == 2
    assert "bad.yaml line" in capsys.readouterr().err


def test_yaml_loader_is_safe(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("x: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="evil.yaml"):
        config_module.load_yaml(evil)
    ok = tmp_path / "ok.yaml"
    ok.write_text("learning_rate: 1e-3\nweight_decay: .5\n")
    assert config_module.load_yaml(ok) == {"learning_rate": 0.001, "weight_decay": 0.5}


def test_blairclip_models_lists_both(capsys):
    assert blairclip_main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plugin models:")
    builtin = out.split("RecBole models:")[1].split()
    assert {"BPR", "SASRec", "LightGCN", "GRU4Rec"} <= set(builtin)


def test_graph_models_run_on_current_scipy(tiny_data):
    """LightGCN builds its adjacency with dok_matrix._update (gone from recent scipy; compat restores it)."""
    import numpy as np
    import scipy.sparse as sp

    m = sp.dok_matrix((3, 3), dtype=np.float32)
    m._update({(0, 1): 1.0, (2, 0): 2.0})
    assert m.toarray().tolist() == [[0, 1, 0], [0, 0, 0], [2, 0, 0]]
    result = recbole_blairclip.run("LightGCN", "tiny", config_dict={**tiny_data, "embedding_size": 8}, saved=False)
    _assert_plain_result(result)


def test_scipy_patch_waits_for_scipy_import():
    """Importing the package does not import scipy.sparse (convert never needs it); the dok_matrix patch
    is applied when scipy.sparse is first imported, however it is imported."""
    import subprocess
    import sys

    code = ("import sys, recbole_blairclip; before = 'scipy.sparse' in sys.modules\n"
            "from scipy import sparse\n"
            "m = sparse.dok_matrix((2, 2)); m._update({(1, 0): 3.0})\n"
            "print(before, m.toarray().tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False [[0.0, 0.0], [3.0, 0.0]]"


def test_auc_metric_name_runs_in_full_sort(tiny_data):
    """`metrics: [AUC]` (RecBole's value metric, impossible in full sort) means the per-user AUC."""
    config = {**tiny_data, "metrics": ["Recall", "AUC"], "topk": [10], "valid_metric": "AUC"}
    result = recbole_blairclip.run("BPR", "tiny", config_dict=config, saved=False)
    assert set(result["test_result"]) == {"recall@10", "auc"}
    assert result["best_valid_score"] == result["best_valid_result"]["auc"]


def test_python_api_mirrors_the_cli():
    from recbole_blairclip.data.check import check_split
    from recbole_blairclip.data.convert import convert
    from recbole_blairclip.features.store import load_features

    assert recbole_blairclip.convert is convert
    assert recbole_blairclip.check_split is check_split
    assert recbole_blairclip.load_features is load_features
    with pytest.raises(AttributeError):
        recbole_blairclip.no_such_function


def test_config_never_reads_sys_argv(tiny_data, monkeypatch):
    """The command line is an explicit argument: sys.argv is ignored, cmd_args win over config_dict."""
    from recbole_blairclip.quick_start import make_config

    monkeypatch.setattr(sys, "argv", ["pytest", "--epochs=99", "--learning_rate=0.5"])
    config = make_config("BPR", "tiny", None, dict(tiny_data))
    assert config["epochs"] == 2 and config["learning_rate"] != 0.5
    config = make_config("BPR", "tiny", None, dict(tiny_data), cmd_args=["--epochs=5", "--model", "BPR"])
    assert config["epochs"] == 5
    with pytest.raises(ConfigError, match="--epochs is given twice"):
        make_config("BPR", "tiny", None, dict(tiny_data), cmd_args=["--epochs=5", "--epochs=6"])


def test_trainer_hooks_see_every_epoch_and_validation(tiny_data):
    """The protocol trainer's hooks: one call per training epoch (its loss), one per validation with every
    metric; the validation scores equal what RecBole's own callback receives."""
    from recbole_blairclip.evaluation.trainer import TrainerHooks
    from recbole_blairclip.quick_start import run

    class Recorder(TrainerHooks):
        def __init__(self):
            self.train, self.valid = [], []

        def on_train_epoch(self, trainer, epoch_idx, seconds, loss):
            self.train.append((epoch_idx, seconds, float(loss)))

        def on_valid(self, trainer, seconds, score, result):
            self.valid.append((float(score), dict(result)))

    recorder, scores = Recorder(), []
    result = run("BPR", "tiny", config_dict=dict(tiny_data, epochs=3), hooks=[recorder],
                 callback_fn=lambda epoch, score: scores.append(float(score)))
    assert [e for e, _, _ in recorder.train] == [0, 1, 2]
    assert all(s > 0 and loss > 0 for _, s, loss in recorder.train)
    assert [s for s, _ in recorder.valid] == scores and len(scores) == 3
    assert all(set(r) >= {"ndcg@10", "recall@10", "auc"} for _, r in recorder.valid)
    assert result["best_valid_score"] == pytest.approx(max(scores))


def test_pandas_3_is_refused_from_its_metadata_without_importing_it(monkeypatch):
    """compat.apply reads pandas' version from the installed metadata (importing pandas would cost every CLI
    command ~1.4 s) and refuses pandas >= 3 with the fix."""
    import subprocess
    import sys

    from recbole_blairclip import compat

    monkeypatch.setattr(compat, "_installed_version", lambda name: "3.0.1" if name == "pandas" else None)
    with pytest.raises(ImportError, match=r"pandas < 3 \(found 3.0.1\).*pip install 'pandas<3'"):
        compat.apply()
    monkeypatch.setattr(compat, "_installed_version", lambda name: "2.3.3")
    compat.apply()
    code = "import sys, recbole_blairclip; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
