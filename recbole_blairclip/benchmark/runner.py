"""Many models, one split, one table: :func:`benchmark` runs every (row, seed) in its own process.

The benchmark yaml is read by :mod:`~recbole_blairclip.benchmark.config`, its rows are resolved to a model
and config by :mod:`~recbole_blairclip.benchmark.plan`, each run is a worker process supervised by
:mod:`~recbole_blairclip.benchmark.supervise` and shown by :mod:`~recbole_blairclip.benchmark.progress`;
:mod:`~recbole_blairclip.benchmark.report` writes the outputs. This module holds the loop.

Output folder ``<out>/<dataset>/<run>/``: ``results.csv``, ``results.json``, ``report.md``, ``metrics.png``,
``coldstart.png`` (rewritten after every run, so an interrupted benchmark still has a valid table) and
``runs/<row>/seed<seed>/`` with ``spec.json``, ``result.json``, ``ranks.parquet`` (the test's per-user ranks),
``worker.log`` and RecBole's ``log/``.
A finished (row, seed) whose config did not change is skipped on a re-run unless ``force``.
"""
import json
import os
import time

from recbole_blairclip.benchmark import report
from recbole_blairclip.benchmark.config import DEFAULT_SEED, BenchmarkConfig, as_list, seed_list
from recbole_blairclip.benchmark.plan import check_model, plan_rows, plugin_targets, row_folder, run_spec
from recbole_blairclip.benchmark.progress import Progress
from recbole_blairclip.benchmark.summary import load_ranks, ranks_path, summarize
from recbole_blairclip.benchmark.supervise import (BenchmarkInterrupted, clean_checkpoints, failure_text, run_worker,
                                                   stop_signals)
from recbole_blairclip.data.atomic import check_name
from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.io import write_json
from recbole_blairclip.packaged import resolve_dataset_root


def _read_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _unfinished(spec, status, error):
    """The record of a run that left no result of its own (``failed`` or ``interrupted``)."""
    return {"row": spec["row"], "model": spec["model"], "dataset": spec["dataset"], "seed": spec["seed"],
            "spec_hash": spec["spec_hash"], "status": status, "error": error,
            "run_dir": spec["run_dir"], "worker_log": spec["worker_log"]}


def _record_interrupted(spec, exc, display, label, records, run_dir, meta):
    """An interrupted run: recorded as ``interrupted`` (rerun next time), its checkpoints removed."""
    record = _read_json(spec["result_path"])
    if not (record and record.get("status") == "ok"):  # unless it finished just before the signal
        why = str(exc) if isinstance(exc, BenchmarkInterrupted) else "interrupted (Ctrl-C)"
        record = _unfinished(spec, "interrupted", why)
        write_json(spec["result_path"], record)
        clean_checkpoints(spec)
    display.say(f"{label}: {record.get('error') or 'finished'}; run the same command again to resume")
    records.append(record)
    report.write_all(run_dir, records, meta)


def benchmark(
    dataset=None,
    models=None,
    seeds=None,
    config_files=None,
    config_dict=None,
    out="results",
    run_name=None,
    force=False,
    progress="auto",
    timeout=None,
    keep_checkpoints=None,
    command=None,
):
    """Run every (row, seed) in its own process and write the table, JSON, CSV and plots.

    Args:
        dataset: dataset name under ``data_path`` (default: the benchmark yaml's ``dataset``).
        models: row names, a list or ``"TFIDF,BPR,SASRec"`` (default: the benchmark yaml's ``models``).
        seeds: a count or a list of seeds (default: the yaml's ``seeds``, else 1 seed, 2020).
        config_files: run config files and/or benchmark yaml files (see the module doc).
        config_dict: overrides applied to every row, above everything else (the CLI's ``--set KEY=VALUE``).
        out: results root; the run folder is ``<out>/<dataset>/<run_name>``.
        run_name: default: the benchmark yaml's ``run_name``, else its file name, else ``default``.
        force: re-run (row, seed) pairs that already finished.
        progress: ``auto`` | ``bar`` | ``lines`` | ``none`` (standard error).
        timeout: seconds per run (default: the yaml's ``timeout``, else none).
        keep_checkpoints: keep each run's best checkpoint (default: the yaml's value, else False).
        command: the command line to record in the report.

    Returns a dict: ``run_dir``, ``records`` (one per row and seed, in table order), ``summary`` (mean / std
    per row), ``files`` (paths written), ``ran`` / ``skipped`` / ``failed`` counts.
    """
    bench = BenchmarkConfig(config_files)
    dataset = dataset or bench.get("dataset")
    if not dataset:
        raise ConfigError("no dataset given: pass --dataset NAME or set `dataset:` in the benchmark yaml")
    if not isinstance(dataset, str):
        raise ConfigError(f"dataset must be a name, got {dataset!r}")
    check_name(dataset)  # a plain folder name, as `convert --name` requires: nothing written outside --out
    rows = as_list(models, "models", "--models") if models is not None else as_list(
        bench.get("models"), "models", bench.benchmark_files[-1] if bench.benchmark_files else "config")
    if not rows:
        raise ConfigError("no models given: pass --models A,B,... or set `models:` in the benchmark yaml")
    if len(set(rows)) != len(rows):
        raise ConfigError(f"a model is listed twice in {rows}")
    config_dict = dict(config_dict or {})
    base_seed = int(config_dict.get("seed", bench.shared.get("seed", DEFAULT_SEED)))
    seeds = seed_list(seeds if seeds is not None else bench.get("seeds"), base_seed)
    timeout = timeout if timeout is not None else bench.get("timeout")
    keep = bool(keep_checkpoints if keep_checkpoints is not None else bench.get("keep_checkpoints", False))
    if run_name is None:
        run_name = bench.get("run_name") or (
            os.path.splitext(os.path.basename(bench.benchmark_files[-1]))[0] if bench.benchmark_files else "default"
        )

    plans = plan_rows(rows, bench, config_dict)
    for plan in plans:
        check_model(plan.model, plan.row)
    explicit = "data_path" in plans[0].config
    data_path = resolve_dataset_root(plans[0].config.get("data_path", "dataset_atomic/"), dataset, explicit)
    if not os.path.isdir(os.path.join(data_path, dataset)):
        raise DatasetError(
            f"dataset folder {os.path.join(data_path, dataset)} not found: convert a dataset into "
            f"{data_path} (`blairclip convert`) or set data_path"
        )
    for plan in plans:
        plan.config["data_path"] = os.path.abspath(data_path if not explicit else plan.config["data_path"])

    run_dir = os.path.abspath(os.path.join(out, dataset, row_folder(run_name)))
    os.makedirs(run_dir, exist_ok=True)
    display = Progress(progress)
    meta = {
        "dataset": dataset,
        "run": run_name,
        "run_dir": run_dir,
        "rows": rows,
        "models": {p.row: p.model for p in plans},
        "seeds": seeds,
        "config_files": bench.sources,
        "overrides": config_dict,
        "command": command or f"benchmark(dataset={dataset!r}, models={rows!r}, seeds={seeds!r}, "
        f"config_files={list(config_files or [])!r}, config_dict={config_dict!r})",
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "reference": {row: bench.get("reference", {})[row] for row in rows if row in bench.get("reference", {})},
    }
    targets = plugin_targets()
    records, counts = [], {"ran": 0, "skipped": 0, "failed": 0}
    total = len(plans) * len(seeds)
    index = 0
    for plan in plans:
        for seed in seeds:
            index += 1
            folder = os.path.join(run_dir, "runs", row_folder(plan.row), f"seed{seed}")
            os.makedirs(folder, exist_ok=True)
            spec = run_spec(plan, seed, dataset, folder, bench.sources, targets, keep)
            label = f"[{index}/{total}] {plan.row} seed {seed}"
            previous = _read_json(spec["result_path"])
            if previous and previous.get("status") == "ok" and not force and ranks_path(previous):
                if previous.get("spec_hash") == spec["spec_hash"]:
                    display.say(f"{label}: finished earlier, skipped (--force re-runs it)")
                    records.append(previous)
                    counts["skipped"] += 1
                    continue
                display.say(f"{label}: config changed since the finished run, running again")
            spec_path = os.path.join(folder, "spec.json")
            write_json(spec_path, spec)
            if os.path.exists(spec["result_path"]):
                os.remove(spec["result_path"])
            display.begin(label)
            try:
                with stop_signals():
                    returncode, timed_out = run_worker(spec_path, spec["worker_log"], display, timeout)
            except KeyboardInterrupt as exc:
                _record_interrupted(spec, exc, display, label, records, run_dir, meta)
                raise
            record = _read_json(spec["result_path"])
            if record is None or timed_out:
                record = _unfinished(spec, "failed", failure_text(returncode, timed_out, timeout, spec["worker_log"]))
                write_json(spec["result_path"], record)
            counts["ran"] += 1
            counts["failed"] += record["status"] != "ok"
            display.end(record)
            records.append(record)
            report.write_all(run_dir, records, meta)  # an interrupted benchmark still has its table
    files = report.write_all(run_dir, records, meta)  # every row, skipped ones after the last run included
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "run_dir": run_dir,
        "records": records,
        "summary": summarize(records, load_ranks(records)),
        "files": files,
        **counts,
    }
