"""One benchmark run, in its own process: ``python -m recbole_blairclip.benchmark.worker SPEC.json``.

The runner (:mod:`recbole_blairclip.benchmark.runner`) writes a spec (model, dataset, seed, the merged
config, where to write) and starts this module once per (row, seed), so one crash, hang or leak never
touches the other runs. The worker

* trains and tests through :func:`recbole_blairclip.quick_start.run` with a per-epoch callback;
* prints progress events, one JSON object per line prefixed with ``@@``, on its standard output; every
  other output (RecBole's logger, warnings, tracebacks) is moved to standard error, which the runner sends
  to ``worker.log`` in the run folder;
* writes ``result.json`` (atomically): status, every test metric overall and in the cold-start / warm
  views when the evaluation provides them, the best epoch, training seconds per epoch, evaluation seconds,
  parameters, peak memory, device, package versions and the exact final config; the test's per-user ranks
  go to the spec's ``ranks_file`` (``ranks.parquet``), from which the report recomputes every metric.

Re-running a spec by hand reproduces one cell of the benchmark table.
"""
import json
import os
import platform
import resource
import sys
import time
import traceback
from importlib import metadata

from recbole_blairclip.evaluation.trainer import TrainerHooks
from recbole_blairclip.io import json_ready, write_json

EVENT_PREFIX = "@@"
_PACKAGES = ("recbole-blairclip", "recbole", "torch", "numpy", "pandas", "scikit-learn", "transformers", "ray")


def package_versions():
    """Installed versions of the packages a result depends on (read from metadata, nothing imported)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions["recbole-blairclip"] is None:  # a source checkout that is not pip-installed
        from recbole_blairclip import __version__

        versions["recbole-blairclip"] = __version__
    return versions


def peak_memory_mb():
    """Peak resident memory of this process (MB; Linux reports ru_maxrss in KB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class Events:
    """Progress events for the runner: ``@@{json}`` lines on the original standard output."""

    def __init__(self, stream):
        self.stream = stream

    def emit(self, event, **fields):
        if self.stream is None:
            return
        self.stream.write(EVENT_PREFIX + json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()


def _loss_value(loss):
    """RecBole's ``_train_epoch`` returns a float or a tuple of per-term losses."""
    try:
        if isinstance(loss, (tuple, list)):
            return [float(x) for x in loss]
        return float(loss)
    except (TypeError, ValueError):
        return None


class EpochTimer(TrainerHooks):
    """Times every training epoch and validation (the protocol trainer's hooks) and emits a ``train``
    progress event per epoch."""

    def __init__(self, events):
        self.events = events
        self.train, self.valid = [], []

    def on_train_epoch(self, trainer, epoch_idx, seconds, loss):
        self.train.append(seconds)
        self.events.emit("train", epoch=int(epoch_idx), seconds=seconds, loss=_loss_value(loss))

    def on_valid(self, trainer, seconds, score, result):
        self.valid.append(seconds)


def _views(result):
    """Test metrics per view: ``overall`` plus every ``test_result_<view>`` dict the evaluation returned."""
    views = {"overall": result.get("test_result") or {}}
    for key, value in result.items():
        if key.startswith("test_result_") and isinstance(value, dict):
            views[key[len("test_result_"):]] = value
    return views


def run_spec(spec, events=None):
    """Train and test one (row, seed) described by ``spec``; return the result record (never raises)."""
    events = events or Events(None)
    record = {
        "row": spec["row"],
        "model": spec["model"],
        "dataset": spec["dataset"],
        "seed": spec["seed"],
        "spec_hash": spec.get("spec_hash"),
        "status": "failed",
        "error": None,
        "run_dir": spec["run_dir"],
        "worker_log": spec.get("worker_log"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": package_versions(),
        "hostname": platform.node(),
    }
    start = time.perf_counter()
    try:
        from recbole_blairclip import quick_start, registry

        for name, target in (spec.get("plugin_models") or {}).items():
            if ":" in target:  # "module:Class" for a class registered directly
                import importlib

                module, _, qualname = target.partition(":")
                obj = importlib.import_module(module)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
                target = obj
            registry.register_model(name, target)

        config = quick_start.make_config(spec["model"], spec["dataset"], None, dict(spec["config"]))
        record["config"] = json_ready(dict(config.final_config_dict))
        record["device"] = str(config["device"])
        events.emit("start", epochs=int(config["epochs"]), valid_metric=str(config["valid_metric"]))
        timer = EpochTimer(events)

        def on_valid(epoch_idx, valid_score):
            events.emit("valid", epoch=int(epoch_idx), score=float(valid_score))

        result = quick_start.run(
            model=spec["model"],
            dataset=spec["dataset"],
            config_dict=dict(spec["config"]),
            saved=True,
            callback_fn=on_valid,
            hooks=[timer],
        )
        record.update(
            status="ok",
            metrics=_views(result),
            view_users={
                view: result[key]
                for view, key in (("overall", "n_test_users"), ("coldstart", "n_test_coldstart"), ("warm", "n_test_warm"))
                if result.get(key) is not None
            },
            valid=result.get("best_valid_result") or {},
            best_valid_score=result.get("best_valid_score"),
            best_epoch=result.get("best_epoch"),
            epochs=result.get("epochs"),
            epoch_train_seconds=timer.train,
            epoch_valid_seconds=timer.valid,
            train_seconds_per_epoch=(sum(timer.train) / len(timer.train)) if timer.train else None,
            fit_seconds=result.get("fit_seconds"),
            eval_seconds=result.get("test_seconds"),
            n_params=result.get("n_params"),
            device=result.get("device", record.get("device")),
            log_file=result.get("log_file"),
            checkpoint=result.get("checkpoint"),
            ranks_file=result.get("ranks_file"),
        )
        # anything else the evaluation adds (e.g. cold-start user counts) travels along as plain values
        known = {"test_result", "best_valid_result", "model", "dataset"}
        record["extra"] = {
            k: v
            for k, v in result.items()
            if k not in known and k not in record and not k.startswith("test_result_") and isinstance(v, (int, float, str))
        }
        if not spec.get("keep_checkpoints", False) and record.get("checkpoint") and os.path.isfile(record["checkpoint"]):
            os.remove(record["checkpoint"])
            record["checkpoint"] = None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure of one run is recorded, never raised
        message = str(exc).strip().splitlines()
        record["error"] = f"{type(exc).__name__}: {message[0] if message else ''}".strip()
        traceback.print_exc(file=sys.stderr)
    record["wall_seconds"] = time.perf_counter() - start
    record["peak_memory_mb"] = peak_memory_mb()
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            record["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / (1024 * 1024)
    except Exception:  # noqa: BLE001 - memory statistics are best effort
        pass
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return record


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m recbole_blairclip.benchmark.worker SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0], "r", encoding="utf-8") as f:
        spec = json.load(f)
    # progress events keep the real stdout; everything else printed goes to stderr (the run's worker.log)
    events = Events(os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1))
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    record = run_spec(spec, events)
    write_json(spec["result_path"], record)
    events.emit("end", status=record["status"], error=record["error"])
    return 0 if record["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
