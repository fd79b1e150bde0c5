"""Config keys RecBole and the plugin models read are checked for type and range (issue 13, item 3)."""
import pytest
from conftest import write_tiny_dataset

from recbole_blairclip.config_checks import check_config
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.quick_start import make_config


@pytest.fixture
def base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pytest"])
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    return {"data_path": str(tmp_path / "dataset_atomic"), "output_dir": str(tmp_path / "out"),
            "show_progress": False}


@pytest.mark.parametrize("key, value, expected", [
    ("epochs", 0, "whole number >= 1"),
    ("epochs", -1, "whole number >= 1"),
    ("epochs", 2.5, "whole number >= 1"),
    ("learning_rate", "abc", "number > 0"),
    ("learning_rate", -0.01, "number > 0"),
    ("learning_rate", float("nan"), "number > 0"),
    ("train_batch_size", 0, "whole number >= 1"),
    ("eval_batch_size", "big", "whole number >= 1"),
    ("embedding_size", True, "whole number >= 1"),
    ("weight_decay", -1e-4, "number >= 0"),
    ("topk", [10, 0], "list of them"),
    ("mask_history", "yes", "true or false"),
])
def test_bad_common_values_name_key_value_and_expectation(base, key, value, expected):
    with pytest.raises(ConfigError) as info:
        make_config("BPR", "tiny", None, {**base, key: value})
    message = str(info.value)
    assert "\n" not in message
    assert repr(key) in message and repr(value) in message and expected in message


def test_command_line_strings_are_checked_after_parsing(base, capsys):
    from recbole_blairclip.cli.run_recbole import main

    for arg, key in (("--epochs=0", "epochs"), ("--epochs=-1", "epochs"), ("--learning_rate=abc", "learning_rate")):
        rc = main(["--model=BPR", "--dataset=tiny", f"--data_path={base['data_path']}",
                   f"--output_dir={base['output_dir']}", arg])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and repr(key) in err[0], (arg, err)


def test_plugin_model_keys_are_checked_for_their_model_only(base):
    with pytest.raises(ConfigError, match="'train_rows' = 'rows'"):
        check_config({"train_rows": "rows"}, "BLaIRCLIP")
    with pytest.raises(ConfigError, match="'clip_weight' = -1"):
        check_config({"clip_weight": -1}, "BLaIRCLIP")
    with pytest.raises(ConfigError, match="'user_profile' = 'median'"):
        check_config({"user_profile": "median"}, "TFIDF")
    check_config({"train_rows": "rows"}, "BPR")  # another model's meaning of the key is not judged
    with pytest.raises(ConfigError, match="'tfidf_max_features' = 0"):
        make_config("TFIDF", "tiny", None, {**base, "tfidf_max_features": 0})


def test_kd_dagfm_teacher_is_a_class_name_not_code(tmp_path):
    # RecBole's KD_DAGFM runs eval(config["teacher"]): only its two teacher classes may get there
    with pytest.raises(ConfigError, match="'teacher'"):
        check_config({"teacher": "__import__('os').getcwd"}, "KD_DAGFM")
    check_config({"teacher": "CIN"}, "KD_DAGFM")


def test_defaults_and_sample_configs_pass(base):
    for model in ("BPR", "SASRec", "Pop", "TFIDF", "BLaIRCLIP", "LightGCN", "GRU4Rec"):
        make_config(model, "tiny", None, dict(base))
    make_config("SASRec", "tiny", None,
                {**base, "epochs": 1, "learning_rate": 1, "weight_decay": None, "topk": 10})
