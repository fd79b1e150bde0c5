"""Search-space parsing and the checks `blairclip tune` runs before Ray starts (no Ray needed here)."""
import os

import pytest

from conftest import ROOT, write_tiny_dataset
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.tune.space import check_space, load_space, parse_space, to_param_space

SPACES = os.path.join(ROOT, "configs", "tune")


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    return {"data_path": str(tmp_path / "dataset_atomic"), "output_dir": str(tmp_path / "out"), "epochs": 2}


def _config(model, data):
    from recbole_blairclip.quick_start import make_config
    from recbole_blairclip.tune.search import _driver_isolation

    with _driver_isolation():
        return make_config(model, "tiny", None, data)


def _write(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_every_kind_becomes_the_right_ray_sampler():
    from ray.tune.search.sample import Categorical, Float, Integer

    space = parse_space(
        {
            "learning_rate": {"loguniform": [1e-4, 1e-2]},
            "hidden_dropout_prob": {"uniform": [0.1, 0.5]},
            "n_layers": {"randint": [1, 3]},
            "embedding_size": {"choice": [32, 64]},
            "loss_type": {"grid": ["CE", "BPR"]},
        }
    )
    ray_space = to_param_space(space)
    assert isinstance(ray_space["learning_rate"], Float)
    assert isinstance(ray_space["hidden_dropout_prob"], Float)
    assert isinstance(ray_space["embedding_size"], Categorical)
    assert ray_space["loss_type"] == {"grid_search": ["CE", "BPR"]}
    assert isinstance(ray_space["n_layers"], Integer)
    # randint bounds are inclusive in the yaml (Ray's upper bound is exclusive): 1, 2 and 3 all occur
    drawn = {ray_space["n_layers"].sample() for _ in range(300)}
    assert drawn == {1, 2, 3}
    lr = [ray_space["learning_rate"].sample() for _ in range(300)]
    assert all(1e-4 <= v <= 1e-2 for v in lr)
    assert sum(v < 1e-3 for v in lr) > 100  # log scale: about half the draws lie below the geometric middle


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("[1, 2]", "mapping"),
        ("learning_rate: 0.01\n", "exactly one of"),
        ("learning_rate: {normal: [0, 1]}\n", "unknown distribution 'normal'"),
        ("learning_rate: {choice: []}\n", "is empty"),
        ("learning_rate: {uniform: [0.1]}\n", "[low, high]"),
        ("learning_rate: {uniform: [0.5, 0.1]}\n", "low < high"),
        ("learning_rate: {loguniform: [0, 0.1]}\n", "low > 0"),
        ("learning_rate: {uniform: [a, 0.1]}\n", "finite numbers"),
        ("n_layers: {randint: [1, 2.5]}\n", "integers"),
        ("n_layers: {choice: 3}\n", "must be a list"),
    ],
)
def test_malformed_spaces_are_rejected_with_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_space(path)
    assert message in str(info.value)
    assert path in str(info.value)


def test_error_names_the_line_of_the_key(tmp_path):
    path = _write(tmp_path, "learning_rate:\n  loguniform: [1.0e-4, 1.0e-2]\nembedding_size:\n  uniform: [8]\n")
    with pytest.raises(ConfigError, match=r"line 3: embedding_size.uniform needs \[low, high\]"):
        load_space(path)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"learning_rat": {"choice": [0.1]}}, "unknown parameter 'learning_rat' for model BPR. Did you mean learning_rate"),
        ({"n_layers": {"choice": [1]}}, "unknown parameter 'n_layers' for model BPR"),  # a SASRec key, not BPR's
        ({"embedding_size": {"uniform": [8.0, 64.0]}}, "is an integer"),
        ({"embedding_size": {"choice": [8, 16.5]}}, "every value must be an integer"),
        ({"learning_rate": {"choice": [0.1, "fast"]}}, "every value must be a number"),
        ({"learner": {"choice": [1, 2]}}, "choice or grid of strings"),
        ({"reproducibility": {"choice": [1, 0]}}, "true/false"),
        ({"valid_metric": {"choice": ["Recall@10"]}}, "cannot be searched"),
        ({"data_path": {"choice": ["/x"]}}, "cannot be searched"),
    ],
)
def test_space_is_checked_against_the_models_config_keys(data, space, message):
    with pytest.raises(ConfigError) as info:
        check_space(parse_space(space, "s.yaml"), _config("BPR", data), "s.yaml")
    assert message in str(info.value)


def test_model_yaml_keys_are_known(data):
    """Keys from RecBole's model yaml (SASRec) and the plugin's packaged yaml (TFIDF) are accepted."""
    check_space(parse_space({"n_layers": {"randint": [1, 2]}}), _config("SASRec", data))
    check_space(parse_space({"user_profile": {"choice": ["mean", "last"]}}), _config("TFIDF", data))
    with pytest.raises(ConfigError, match="unknown parameter 'n_layers' for model TFIDF"):
        check_space(parse_space({"n_layers": {"randint": [1, 2]}}), _config("TFIDF", data))


def _shipped_spaces():
    """(model, path): configs/tune/<Model>.yaml and the per-dataset spaces configs/<dataset>/tune_<Model>_*.yaml."""
    found = [(f[: -len(".yaml")], os.path.join(SPACES, f)) for f in os.listdir(SPACES) if f.endswith(".yaml")]
    configs = os.path.dirname(SPACES)
    for folder in sorted(os.listdir(configs)):
        path = os.path.join(configs, folder)
        if os.path.isdir(path) and folder != "tune":
            found += [(f[len("tune_"):].split("_")[0].split(".")[0], os.path.join(path, f))
                      for f in os.listdir(path) if f.startswith("tune_") and f.endswith(".yaml")]
    return sorted(found)


@pytest.mark.parametrize("model, path", _shipped_spaces(), ids=lambda v: os.path.basename(str(v)))
def test_shipped_spaces_are_valid_for_their_model(data, model, path):
    space = load_space(path)
    check_space(space, _config(model, data), path)
    assert len(to_param_space(space)) == len(space) >= 3


def test_bad_input_is_rejected_before_ray_starts(data, tmp_path):
    import ray

    from recbole_blairclip.tune.search import tune

    assert not ray.is_initialized()
    bad = _write(tmp_path, "embedding_sise: {choice: [8, 16]}\n")
    with pytest.raises(ConfigError, match="unknown parameter 'embedding_sise'"):
        tune("BPR", "tiny", bad, samples=2, config_dict=data, out=str(tmp_path / "t"))
    with pytest.raises(ConfigError, match="empty"):
        tune("BPR", "tiny", {}, samples=2, config_dict=data, out=str(tmp_path / "t"))
    with pytest.raises(ConfigError, match="use --samples 1"):
        tune("BPR", "tiny", {"embedding_size": {"grid": [8, 16]}}, samples=3, config_dict=data)
    with pytest.raises(ConfigError, match="eval_step"):
        tune("BPR", "tiny", {"embedding_size": {"choice": [8]}}, config_dict=dict(data, eval_step=0))
    with pytest.raises(ConfigError, match="unknown scheduler"):
        tune("BPR", "tiny", {"embedding_size": {"choice": [8]}}, scheduler="hyperband", config_dict=data)
    from recbole_blairclip.errors import DatasetError

    with pytest.raises(DatasetError, match="not found"):
        tune("BPR", "nope", {"embedding_size": {"choice": [8]}}, config_dict=data)
    assert not ray.is_initialized()
    assert not (tmp_path / "t").exists()  # nothing written for a rejected search


def test_unreachable_cluster_address_fails_fast(data):
    import socket

    import ray

    from recbole_blairclip.tune.search import tune

    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):  # Ray alone would retry for minutes
        with pytest.raises(ConfigError, match="cannot reach the Ray cluster"):
            tune("BPR", "tiny", {"embedding_size": {"choice": [8]}}, config_dict=data, address=address)
    with pytest.raises(ConfigError, match="not 'auto', 'host:port'"):
        tune("BPR", "tiny", {"embedding_size": {"choice": [8]}}, config_dict=data, address="nowhere")
    assert not ray.is_initialized()


def test_cli_reports_bad_space_in_one_line(data, tmp_path, capsys):
    from recbole_blairclip.cli import main

    bad = _write(tmp_path, "learning_rate: {uniform: [1, 0]}\n")
    cfg = _write(tmp_path, f"data_path: {data['data_path']}\n", name="run.yaml")
    code = main(["tune", "--model", "BPR", "--dataset", "tiny", "--space", bad, "--samples", "2",
                 "--config_files", cfg])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("blairclip tune: error: ") and "low < high" in err and len(err.strip().splitlines()) == 1


def test_trial_config_priority_devices_and_paths(data, tmp_path, monkeypatch):
    """A trial's config: files < base config_dict < sampled values; Ray's GPU ids become RecBole's gpu_id."""
    from recbole_blairclip.tune.trial import trial_config

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")  # restored after the test
    run_yaml = _write(tmp_path, "learning_rate: 0.1\nepochs: 7\nembedding_size: 16\n", name="run.yaml")
    setup = {"model": "BPR", "dataset": "tiny", "config_files": [run_yaml],
             "config_dict": dict(data, learning_rate=0.2, epochs=3)}
    out = str(tmp_path / "trial_x")
    config = trial_config(setup, {"learning_rate": 0.3}, out, gpu_ids=[3])
    assert (config["learning_rate"], config["epochs"], config["embedding_size"]) == (0.3, 3, 16)
    assert config["output_dir"] == out and config["show_progress"] is False
    assert config["gpu_id"] == "3" and config["use_gpu"] is True
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"  # the device Ray gave the worker, not RecBole's default 0
    config = trial_config(setup, {}, out, gpu_ids=())
    assert config["gpu_id"] == "" and str(config["device"]) == "cpu"


def test_search_plan_resolves_paths_and_leaves_the_driver_environment_alone(data, tmp_path, monkeypatch):
    import sys

    from recbole_blairclip.tune.search import _plan

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setattr(sys, "argv", ["blairclip", "tune", "--epochs=99"])  # not a RecBole override here
    (tmp_path / "encoder").mkdir()
    plan = _plan("BPR", "tiny", {"learning_rate": {"loguniform": [1e-4, 1e-2]}}, 4, "asha", 1, 0, None,
                 {"data_path": "dataset_atomic", "epochs": 2, "text_encoder": "encoder", "learner": "adam"}, None)
    assert plan["base"]["text_encoder"] == str(tmp_path / "encoder")  # a relative folder, made absolute
    assert plan["base"]["learner"] == "adam"  # not a path here
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and sys.argv[-1] == "--epochs=99"
    assert plan["base"]["data_path"] == str(tmp_path / "dataset_atomic")  # absolute for trials
    assert plan["config"]["epochs"] == 2
    assert plan["out"] == os.path.join(os.path.abspath("outputs"), "tune", "BPR-tiny")
    assert (plan["metric"], plan["mode"]) == ("ndcg@10", "max")
