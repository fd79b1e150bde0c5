"""Ray Tune searches on tiny data in local mode (Ray started once for the module, 2 CPUs)."""
import csv
import glob
import json
import os

import pytest

from conftest import table_rows, write_tiny_dataset
from recbole_blairclip.errors import ConfigError

ray = pytest.importorskip("ray")
CURRENT_RAY = tuple(int(p) for p in ray.__version__.split(".")[:2]) >= (2, 40)
needs_current_ray = pytest.mark.skipif(not CURRENT_RAY, reason="blairclip tune needs Ray >= 2.40 (the uv install)")


def test_old_ray_stops_with_one_line_saying_how_to_get_the_new_one(tiny, monkeypatch, capsys):
    """The Ray 2.6.3 of RecBole's own pin (plain pip): `blairclip tune` prints one line with the fix, exit 2,
    before it reads anything or starts Ray."""
    from recbole_blairclip.cli import main

    monkeypatch.setattr(ray, "__version__", "2.6.3")
    code = main(["tune", "--model", "BPR", "--dataset", "tiny", "--space", str(tiny / "missing.yaml"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not ray.is_initialized()
    assert len(err.splitlines()) == 1
    assert "needs Ray >= 2.40 (found ray 2.6.3" in err and "uv sync --locked" in err


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    write_tiny_dataset(str(root / "dataset_atomic"))
    return root


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@needs_current_ray
def test_cli_search_reports_validation_per_epoch_and_writes_best_config(local_ray, tiny, monkeypatch, capsys):
    """2 SASRec trials through `blairclip tune`: per-epoch validation rows, tables, best config, test of the
    best; the reported scores equal a plain run's (same data, same shared evaluation protocol)."""
    from recbole_blairclip.cli import main
    from recbole_blairclip.quick_start import make_config, run

    monkeypatch.chdir(tiny)
    run_yaml = tiny / "run.yaml"
    run_yaml.write_text(
        f"data_path: {tiny / 'dataset_atomic'}\nepochs: 3\nstopping_step: 100\ntrain_batch_size: 16\n"
        "eval_batch_size: 256\nseed: 7\n",
        encoding="utf-8",
    )
    space = tiny / "space.yaml"
    space.write_text("learning_rate:\n  choice: [0.01, 0.003]\nn_layers:\n  randint: [1, 2]\n", encoding="utf-8")
    out = tiny / "search1"
    code = main(["tune", "--model", "SASRec", "--dataset", "tiny", "--space", str(space), "--samples", "2",
                 "--scheduler", "fifo", "--max-concurrent", "1", "--config_files", str(run_yaml), "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "best valid ndcg@10" in printed and "best config test result" in printed

    trials = _read_csv(out / "trials.csv")
    assert len(trials) == 2
    assert {t["status"] for t in trials} == {"completed"}
    assert all(t["epochs_run"] == "3" and t["validations"] == "3" for t in trials)
    epochs = _read_csv(out / "epochs.csv")
    for t in trials:
        rows = [r for r in epochs if r["trial_id"] == t["trial_id"]]
        assert [r["epoch"] for r in rows] == ["1", "2", "3"]  # one report per validation
        assert {"ndcg@10", "recall@10", "mrr@10", "auc"} <= set(rows[0])
        assert float(t["best_valid"]) == pytest.approx(max(float(r["ndcg@10"]) for r in rows))
        assert glob.glob(os.path.join(t["trial_dir"], "log", "SASRec", "*.log"))  # RecBole's log, in the trial
        with open(os.path.join(t["trial_dir"], "stderr"), encoding="utf-8") as f:
            assert "no shared protocol" not in f.read()  # trials evaluate exactly as run_recbole does
    assert not os.path.exists(tiny / "log") and not os.path.exists(tiny / "saved")  # nothing in the cwd
    assert float(trials[0]["best_valid"]) >= float(trials[1]["best_valid"])  # sorted best first
    md_rows = table_rows((out / "trials.md").read_text(encoding="utf-8"))
    assert [r[0] for r in md_rows[1:]] == [t["trial_id"] for t in trials]  # same trials, same order as the csv
    assert [r[md_rows[0].index("status")] for r in md_rows[1:]] == ["completed", "completed"]

    # the best config loads back through run_recbole's Config and holds the best trial's values
    best_yaml = str(out / "best_config.yaml")
    config = make_config("SASRec", "tiny", [best_yaml], {"output_dir": str(tiny / "rerun")})
    assert config["learning_rate"] == pytest.approx(float(trials[0]["learning_rate"]))
    assert config["n_layers"] == int(trials[0]["n_layers"])
    assert config["epochs"] == 3 and config["train_batch_size"] == 16

    # independent check: a plain run of that config reproduces the reported per-epoch validation scores
    seen = {}
    result = run("SASRec", "tiny", config_file_list=[best_yaml], config_dict={"output_dir": str(tiny / "rerun")},
                 callback_fn=lambda epoch, score: seen.setdefault(epoch + 1, score))
    best_rows = [r for r in epochs if r["trial_id"] == trials[0]["trial_id"]]
    for row in best_rows:
        assert seen[int(row["epoch"])] == pytest.approx(float(row["ndcg@10"]), abs=1e-4)

    test = json.loads((out / "best_test.json").read_text(encoding="utf-8"))
    assert test["trial_id"] == trials[0]["trial_id"]
    assert test["best_valid_score"] == pytest.approx(float(trials[0]["best_valid"]), abs=1e-4)
    assert test["test_result"]["ndcg@10"] == pytest.approx(result["test_result"]["ndcg@10"], abs=1e-4)
    assert set(test["test_result"]) >= {"recall@10", "recall@50", "ndcg@10", "mrr@10", "auc"}


@needs_current_ray
def test_asha_stops_a_bad_trial_and_a_failing_trial_is_recorded(local_ray, tiny, monkeypatch):
    """learning_rate 1e-12 never improves: ASHA stops it at its first rung; a negative one fails the config check."""
    from recbole_blairclip.tune.search import tune

    monkeypatch.chdir(tiny)
    config_dict = {"data_path": str(tiny / "dataset_atomic"), "epochs": 4, "stopping_step": 100,
                   "train_batch_size": 16, "seed": 7}
    space = {"learning_rate": {"grid": [0.05, 1e-12, -1.0]}}
    out = str(tiny / "search2")
    kwargs = dict(samples=1, scheduler="asha", grace_period=1, config_dict=config_dict, out=out,
                  max_concurrent_trials=1, test_best=False)  # one at a time: the good trial sets the rungs
    result = tune("BPR", "tiny", space, **kwargs)
    by_lr = {t["learning_rate"]: t for t in result["trials"]}
    good, flat, broken = by_lr[0.05], by_lr[1e-12], by_lr[-1.0]
    assert good["status"] == "completed" and good["epochs_run"] == 4
    assert flat["status"] == "stopped early" and flat["epochs_run"] == 1
    assert flat["best_valid"] < good["best_valid"]
    assert broken["status"] == "failed" and broken["best_valid"] is None
    assert "learning_rate" in broken["error"] and "-1.0" in broken["error"]
    assert result["best"]["trial_id"] == good["trial_id"]
    rows = {r["trial_id"]: r for r in _read_csv(os.path.join(out, "trials.csv"))}
    assert rows[broken["trial_id"]]["best_valid"] == "" and rows[broken["trial_id"]]["status"] == "failed"

    # the finished search is kept: a second start needs --resume, and resuming reruns nothing
    with pytest.raises(ConfigError, match="already holds a search"):
        tune("BPR", "tiny", space, **kwargs)
    with pytest.raises(ConfigError, match="space differ"):
        tune("BPR", "tiny", {"learning_rate": {"grid": [0.05]}}, resume=True, **kwargs)
    again = tune("BPR", "tiny", space, resume=True, **kwargs)  # failed trials stay failed, nothing reruns
    assert [(t["trial_id"], t["status"], t["epochs_run"]) for t in again["trials"]] == [
        (t["trial_id"], t["status"], t["epochs_run"]) for t in result["trials"]
    ]


@needs_current_ray
def test_interrupted_search_keeps_finished_trials_and_resumes(local_ray, tiny, monkeypatch):
    """SIGUSR1 (Ray treats it like Ctrl-C) once the 2nd trial has started; resume runs what is left."""
    import signal
    import threading

    from recbole_blairclip.tune.search import tune

    monkeypatch.chdir(tiny)
    out = tiny / "search3"
    config_dict = {"data_path": str(tiny / "dataset_atomic"), "stopping_step": 100, "train_batch_size": 8,
                   "seed": 7}
    space = {"epochs": {"grid": [2, 12]}}
    kwargs = dict(samples=1, scheduler="fifo", config_dict=config_dict, out=str(out), max_concurrent_trials=1,
                  test_best=False)

    def interrupt_when_second_trial_starts():
        while len(glob.glob(str(out / "ray" / "search" / "trial_*"))) < 2:
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGUSR1)

    watcher = threading.Thread(target=interrupt_when_second_trial_starts, daemon=True)
    watcher.start()
    first = tune("BPR", "tiny", space, **kwargs)
    watcher.join(timeout=5)
    assert first["interrupted"]
    done = [t for t in first["trials"] if t["status"] == "completed"]
    assert [t["epochs_run"] for t in done] == [2]
    assert all(t["status"] == "unfinished" for t in first["trials"] if t not in done)
    assert first["best"]["trial_id"] == done[0]["trial_id"]

    second = tune("BPR", "tiny", space, resume=True, **kwargs)
    assert not second["interrupted"]
    assert sorted((t["epochs"], t["status"], t["epochs_run"]) for t in second["trials"]) == [
        (2, "completed", 2), (12, "completed", 12)
    ]
    assert {t["trial_id"]: t["best_valid"] for t in second["trials"]}[done[0]["trial_id"]] == done[0]["best_valid"]
    rows = _read_csv(out / "epochs.csv")
    assert sorted(int(r["epoch"]) for r in rows) == sorted([1, 2] + list(range(1, 13)))  # no stale rows
