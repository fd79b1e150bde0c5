"""No config value is ever run as code (issue 13, item 1).

Every entry point gets a value that would run ``touch MARKER`` if it were evaluated; the MARKER file must
never appear, and the value must come through as a plain string or stop with a one-line ConfigError.
"""
import json
import os
import textwrap

import pytest
from conftest import write_tiny_dataset

from recbole_blairclip.config import literal_value
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.quick_start import make_config


def _payload(marker):
    return f"__import__('os').system('touch {marker}') or 64"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["pytest"])
    write_tiny_dataset(str(tmp_path / "dataset_atomic"))
    marker = tmp_path / "MARKER"
    base = {"data_path": str(tmp_path / "dataset_atomic"), "output_dir": str(tmp_path / "out"),
            "show_progress": False}
    yield {"root": tmp_path, "marker": marker, "payload": _payload(marker), "base": base}
    assert not marker.exists(), "a config value was run as code"


def test_literal_value_parses_literals_and_never_runs_code(tmp_path):
    marker = tmp_path / "MARKER"
    assert literal_value("64") == 64
    assert literal_value("1e-3") == 0.001
    assert literal_value("-2") == -2
    assert literal_value("[10, 50]") == [10, 50]
    assert literal_value("{'a': [1, 2], 'b': None}") == {"a": [1, 2], "b": None}
    assert literal_value("True") is True and literal_value("false") is False
    assert literal_value("None") is None
    assert literal_value("'quoted'") == "quoted"
    assert literal_value("CE") == "CE"
    assert literal_value("1+2j") == "1+2j"  # not a config type: kept as text
    assert literal_value("[" * 5000) == "[" * 5000  # too deep for the parser: kept as text, no crash
    payload = _payload(marker)
    assert literal_value(payload) == payload
    assert literal_value("(lambda: __import__('os').system('touch %s'))()" % marker).startswith("(lambda")
    assert not marker.exists()


def test_config_dict_values_are_not_evaluated(planted):
    config = make_config("BPR", "tiny", None, {**planted["base"], "note": planted["payload"],
                                               "topk": "[5, 10]", "learning_rate": "0.01"})
    assert config["note"] == planted["payload"]  # a plain string
    assert config["topk"] == [5, 10] and config["learning_rate"] == 0.01  # literals still parsed


def test_config_dict_payload_in_a_validated_key_is_a_clear_error(planted):
    with pytest.raises(ConfigError, match="embedding_size"):
        make_config("BPR", "tiny", None, {**planted["base"], "embedding_size": planted["payload"]})


def test_command_line_payload_in_a_validated_key_is_a_clear_error(planted, capsys):
    from recbole_blairclip.cli.run_recbole import main

    rc = main(["--model=BPR", "--dataset=tiny", f"--data_path={planted['base']['data_path']}",
               f"--output_dir={planted['base']['output_dir']}", f"--embedding_size={planted['payload']}"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "embedding_size" in err[0]


def test_command_line_values_are_not_evaluated(planted, capsys):
    from recbole_blairclip.cli.run_recbole import main

    rc = main(["--model=Pop", "--dataset=tiny", f"--data_path={planted['base']['data_path']}",
               f"--output_dir={planted['base']['output_dir']}", "--epochs=1", "--json",
               f"--note={planted['payload']}"])
    assert rc == 0
    assert "test_result" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_config_file_values_are_not_evaluated(planted):
    # e.g. a best_config.yaml written by `blairclip tune`, read back through --config_files
    best = planted["root"] / "best_config.yaml"
    best.write_text(f'note: "{planted["payload"]}"\n')
    assert make_config("BPR", "tiny", [str(best)], planted["base"])["note"] == planted["payload"]


def test_tune_trial_values_are_not_evaluated(planted):
    # what a Ray trial builds from its sampled values (recbole_blairclip.tune.trial), without starting Ray
    from recbole_blairclip.tune.space import check_space, parse_space
    from recbole_blairclip.tune.trial import trial_config

    setup = {"model": "BPR", "dataset": "tiny", "config_files": None, "config_dict": planted["base"]}
    with pytest.raises(ConfigError, match="embedding_size"):
        trial_config(setup, {"embedding_size": planted["payload"]}, str(planted["root"] / "trial"))
    config = trial_config(setup, {"note": planted["payload"]}, str(planted["root"] / "trial"))
    assert config["note"] == planted["payload"]
    # a space whose choice holds the payload stops before Ray with a ConfigError, nothing run
    space = parse_space({"embedding_size": {"choice": [planted["payload"]]}})
    with pytest.raises(ConfigError, match="embedding_size"):
        check_space(space, make_config("BPR", "tiny", None, planted["base"]))


def test_benchmark_set_and_yaml_values_are_not_evaluated(planted):
    from recbole_blairclip.benchmark.runner import benchmark
    from recbole_blairclip.cli.benchmark import _overrides

    root = planted["root"]
    bench_yaml = root / "bench.yaml"
    bench_yaml.write_text(textwrap.dedent(f"""
        dataset: tiny
        models: [BPR, Pop]
        seeds: [7]
        data_path: {root / "dataset_atomic"}
        epochs: 1
        model_config:
          BPR: {{embedding_size: "{planted['payload']}"}}
    """))
    overrides = _overrides([f"note={planted['payload']}"])
    assert overrides == {"note": planted["payload"]}
    result = benchmark(config_files=[str(bench_yaml)], config_dict=overrides, out=str(root / "results"),
                       progress="lines")
    records = {r["row"]: r for r in result["records"]}
    assert records["BPR"]["status"] == "failed"
    assert "embedding_size" in records["BPR"]["error"]
    assert records["Pop"]["status"] == "ok"  # the payload in --set is a harmless string for Pop
    spec = json.loads((root / "results" / "tiny" / "bench" / "runs" / "Pop" / "seed7" / "spec.json").read_text())
    assert planted["payload"] in json.dumps(spec)
    assert not os.path.exists(planted["marker"])
