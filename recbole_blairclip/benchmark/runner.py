"""Many models, one split, one table: :func:`benchmark` runs every (row, seed) in its own process.

A *row* of the table is a model name (``BPR``, ``SASRec``, ``TFIDF``, ``BLaIRCLIP``, any RecBole model) or a
*variant*: a row name mapped to a base model plus overrides in the benchmark yaml, e.g.
``BLaIRCLIP-text: {model: BLaIRCLIP, use_image: false}``.

Benchmark yaml (``configs/benchmark_sample.yaml``): a RecBole config file that may also hold these keys,
which the runner takes out (everything else is a shared config override for every row)::

    dataset: appliances-sample          # dataset when --dataset is not given
    models: [TFIDF, BPR, SASRec]        # rows in table order when --models is not given
    seeds: 3                            # a count (seed, seed+1, ...) or a list of seeds
    config_files: [sample.yaml]         # run config files, relative to this yaml's folder
    model_config_dir: tuned/            # optional: <dir>/<Model>.yaml or <dir>/<Model>/best_config.yaml
                                        # (`blairclip tune --out tuned/<Model>` writes the latter)
    model_config:                       # per model or row: extra config files and keys
      SASRec: {n_layers: 1}
    variants:                           # row name -> base model + overrides
      BLaIRCLIP-text: {model: BLaIRCLIP, use_image: false}
    reference:                          # published numbers per row, shown beside the reproduced ones
      SASRec: [{metric: ndcg@10, value: 0.2393, dataset: diginetica, protocol: "...", source: "..."}]
    timeout: 3600                       # seconds per run before it is stopped and recorded as failed
    keep_checkpoints: false             # keep each run's best checkpoint (saved/) in the run folder

Config of one row, lowest priority first: the plugin's packaged defaults; the shared config files and keys
(in the order given); ``<model_config_dir>/<Model>.yaml``; ``model_config[<Model>]``; ``model_config[<row>]``
and the variant's overrides; ``config_dict`` (the CLI's ``--set KEY=VALUE``); then the run's ``seed`` and
``output_dir``.

Output folder ``<out>/<dataset>/<run>/``: ``results.csv``, ``results.json``, ``report.md``, ``metrics.png``,
``coldstart.png`` (rewritten after every run, so an interrupted benchmark still has a valid table) and
``runs/<row>/seed<seed>/`` with ``spec.json``, ``result.json``, ``ranks.parquet`` (the test's per-user ranks),
``worker.log`` and RecBole's ``log/``.
A finished (row, seed) whose config did not change is skipped on a re-run unless ``force``.
"""
import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from recbole_blairclip import registry
from recbole_blairclip.benchmark import report
from recbole_blairclip.benchmark.reference import parse_reference
from recbole_blairclip.benchmark.worker import EVENT_PREFIX
from recbole_blairclip.io import write_json
from recbole_blairclip.config import load_yaml
from recbole_blairclip.data.atomic import check_name
from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.packaged import resolve_dataset_root

# keys of a benchmark yaml that describe the benchmark itself, not a RecBole run
BENCHMARK_KEYS = (
    "dataset",
    "models",
    "seeds",
    "config_files",
    "model_config_dir",
    "model_config",
    "variants",
    "timeout",
    "keep_checkpoints",
    "run_name",
    "reference",
)
DEFAULT_SEED = 2020  # RecBole's default seed; --seeds N runs DEFAULT_SEED .. DEFAULT_SEED + N - 1
RUN_DEFAULTS = {"show_progress": False}  # RecBole's tqdm bars would only fill worker.log


def _as_list(value, what, source):
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(",", " ").split() if v.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    raise ConfigError(f"{source}: `{what}` must be a list or a comma-separated string, got {value!r}")


def _mapping(value, what, source):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: `{what}` must be a mapping (name: {{key: value}}), got {type(value).__name__}")
    for name, entry in value.items():
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(f"{source}: `{what}.{name}` must be a mapping of config keys, got {entry!r}")
    return {str(k): dict(v or {}) for k, v in value.items()}


def _resolve(path, base_dir):
    """A config path relative to the file that names it (absolute paths and existing cwd paths as is)."""
    path = os.path.expanduser(str(path))
    if os.path.isabs(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) or not os.path.exists(path) else path


def _load_run_files(paths, base_dir, source):
    """Merge run config files (each a plain RecBole yaml) in order."""
    merged, used = {}, []
    for path in _as_list(paths, "config_files", source):
        full = _resolve(path, base_dir)
        merged.update(load_yaml(full))
        used.append(os.path.abspath(full))
    return merged, used


class BenchmarkConfig:
    """The benchmark keys and shared run config read from ``--config_files`` (see module doc)."""

    def __init__(self, config_files=None):
        self.shared = {}  # shared config keys for every row, merged in file order
        self.sources = []  # every config file read (absolute paths)
        self.bench = {"model_config": {}, "variants": {}, "reference": {}}
        self.benchmark_files = []  # the files that held benchmark keys
        for path in config_files or []:
            self._add(path)

    def _add(self, path):
        path = os.path.abspath(os.path.expanduser(str(path)))
        data = load_yaml(path)
        self.sources.append(path)
        if not any(key in data for key in BENCHMARK_KEYS if key != "dataset"):
            if "dataset" in data:  # the runner passes the dataset itself
                self.bench["dataset"] = data.pop("dataset")
            self.shared.update(data)  # a plain run config
            return
        self.benchmark_files.append(path)
        base_dir = os.path.dirname(path)
        included, used = _load_run_files(data.pop("config_files", None), base_dir, path)
        self.sources.extend(used)
        self.shared.update(included)
        for key in ("dataset", "models", "seeds", "timeout", "keep_checkpoints", "run_name"):
            if key in data:
                self.bench[key] = data.pop(key)
        if "model_config_dir" in data:
            self.bench["model_config_dir"] = _resolve(data.pop("model_config_dir"), base_dir)
        for key in ("model_config", "variants"):
            for name, entry in _mapping(data.pop(key, None), key, path).items():
                if "config_files" in entry:  # per-model files resolve against this yaml's folder
                    entry["config_files"] = [
                        os.path.abspath(_resolve(p, base_dir)) for p in _as_list(entry["config_files"], key, path)
                    ]
                self.bench[key].setdefault(name, {}).update(entry)
        self.bench["reference"].update(parse_reference(data.pop("reference", None), path))
        self.shared.update(data)  # what is left is a shared run config

    def get(self, key, default=None):
        return self.bench.get(key, default)


def seed_list(seeds, base_seed=DEFAULT_SEED):
    """``3`` -> [base, base+1, base+2]; a list (or "1,2,3") stays as given."""
    if seeds is None:
        return [base_seed]
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}")
        return [base_seed + i for i in range(seeds)]
    values = _as_list(seeds, "seeds", "seeds") if not isinstance(seeds, (list, tuple)) else list(seeds)
    if isinstance(seeds, str) and len(values) == 1:
        return seed_list(int(values[0]), base_seed)
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}") from None
    if not out or len(set(out)) != len(out):
        raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    return out


def row_folder(row):
    """A file-system safe folder name for a row (never ``.``/``..`` or hidden)."""
    folder = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(row))
    return "_" + folder if folder.startswith(".") or not folder else folder


def _plugin_targets():
    """The registry's plugin models in a form a fresh process can import."""
    targets = {}
    for name, target in registry.PLUGIN_MODELS.items():
        if isinstance(target, str):
            targets[name] = target
        elif getattr(target, "__module__", "__main__") != "__main__":
            targets[name] = f"{target.__module__}:{target.__qualname__}"
    return targets


def _check_model(name, row):
    """Fail early on a misspelt model name; any other import problem is the run's own failure."""
    try:
        registry.get_model(name)
    except ConfigError as exc:
        raise ConfigError(f"row {row!r}: {exc}") from None
    except Exception:  # noqa: BLE001 - a broken model module fails its own runs, recorded in the table
        pass


def _tuned_files(config_dir, model):
    """``<dir>/<Model>.yaml`` or ``<dir>/<Model>/best_config.yaml`` (``blairclip tune --out <dir>/<Model>``)."""
    if not config_dir:
        return []
    for path in (os.path.join(config_dir, f"{model}.yaml"), os.path.join(config_dir, model, "best_config.yaml")):
        if os.path.isfile(path):
            return [path]
    return []


class RowPlan:
    """How one row of the table is run: base model and its merged config (without seed/output_dir)."""

    def __init__(self, row, model, config, sources):
        self.row, self.model, self.config, self.sources = row, model, config, sources


def plan_rows(rows, bench, config_dict=None):
    """Resolve every row name to a :class:`RowPlan` (see the module doc for the priority order)."""
    plans = []
    variants, model_config = bench.get("variants", {}), bench.get("model_config", {})
    config_dir = bench.get("model_config_dir")
    for row in rows:
        variant = dict(variants.get(row, {}))
        model = str(variant.pop("model", row))
        if model in variants and model != row:
            raise ConfigError(f"variant {row!r}: its model {model!r} is itself a variant; name a model")
        config, sources = dict(RUN_DEFAULTS), []
        config.update(bench.shared)
        for path in _tuned_files(config_dir, model):
            config.update(load_yaml(path))
            sources.append(os.path.abspath(path))
        layers = [model_config.get(model, {})]
        if row != model:
            layers.append(model_config.get(row, {}))
        layers.append(variant)
        for layer in layers:
            layer = dict(layer)
            for path in layer.pop("config_files", None) or []:
                config.update(load_yaml(path))
                sources.append(path)
            config.update(layer)
        config.update(config_dict or {})
        plans.append(RowPlan(row, model, config, sources))
    return plans


def spec_hash(spec):
    """Identity of a run: model, dataset, seed and config (a re-run with the same hash is skipped)."""
    key = {k: spec[k] for k in ("model", "dataset", "seed", "config")}
    key["plugin"] = spec.get("plugin_models", {}).get(spec["model"])
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _subprocess_env():
    """The worker sees the same modules as this process (source checkouts, test folders)."""
    env = dict(os.environ)
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    paths = [p for p in dict.fromkeys(paths) if os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _read_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _log_tail(path, lines=3):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            tail = [line.rstrip() for line in f.readlines()[-lines:] if line.strip()]
    except OSError:
        return ""
    return " | ".join(tail)


class Progress:
    """Terminal progress: which run, which epoch, loss, validation score, elapsed time.

    ``mode``: ``bar`` (a tqdm bar per run), ``lines`` (one line per epoch, for logs and CI), ``none``, or
    ``auto`` (bar on a terminal, lines otherwise). Written to standard error.
    """

    def __init__(self, mode="auto", stream=None):
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ConfigError(f"progress must be auto, bar, lines or none, got {mode!r}")
        self.mode = mode
        self.bar = None

    def say(self, text):
        if self.mode == "none":
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def begin(self, label):
        self.label, self.start, self.epochs, self.metric = label, time.perf_counter(), None, "valid"
        self.loss = None
        self.say(f"{label}: starting")

    def event(self, event):
        kind = event.get("event")
        elapsed = time.perf_counter() - self.start
        if kind == "start":
            self.epochs, self.metric = event.get("epochs"), event.get("valid_metric", "valid")
            if self.mode == "bar":
                from tqdm import tqdm

                self.bar = tqdm(total=self.epochs, desc=self.label, unit="epoch", file=self.stream, leave=False)
        elif kind == "train":
            loss = event.get("loss")
            self.loss = sum(loss) if isinstance(loss, list) else loss
        elif kind == "valid":
            epoch = event["epoch"] + 1
            of = f"/{self.epochs}" if self.epochs else ""
            loss = f" loss {self.loss:.4f}" if isinstance(self.loss, (int, float)) else ""
            if self.bar is not None:
                self.bar.n = epoch
                self.bar.set_postfix_str(f"{loss.strip()} {self.metric} {event['score']:.4f}".strip())
            elif self.mode == "lines":
                self.say(f"{self.label}: epoch {epoch}{of}{loss} {self.metric} {event['score']:.4f} "
                         f"({elapsed:.1f}s)")

    def end(self, record):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elapsed = time.perf_counter() - self.start
        if record["status"] == "ok":
            overall = report.normalize(record.get("metrics", {}).get("overall", {}))
            shown = "  ".join(f"{report.display_name(k)} {overall[k]:.4f}" for k in report.ordered(overall)[:4])
            self.say(f"{self.label}: done in {elapsed:.1f}s, best epoch {record.get('best_epoch')}: {shown}")
        else:
            self.say(f"{self.label}: FAILED after {elapsed:.1f}s: {record['error']} (log: {record.get('worker_log')})")


class BenchmarkInterrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived during a benchmark (handled like Ctrl-C: the run is stopped, recorded
    as interrupted, and the next run of the same command resumes)."""

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@contextlib.contextmanager
def _stop_signals():
    """While a benchmark runs, SIGTERM and SIGHUP raise :class:`BenchmarkInterrupted` (once) in the main
    thread; the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:  # a second signal must not cut the clean-up short
            fired.append(signum)
            raise BenchmarkInterrupted(signum)

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _stop_group(proc, grace=10.0):
    """Stop the worker and everything it started (its own process group): SIGTERM, then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is left of the group (the worker's own children included)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _clean_checkpoints(spec):
    """Remove the checkpoints an interrupted run left in its own folder."""
    if "checkpoint_dir" in spec["config"]:
        return  # a checkpoint folder the user chose may hold other runs' files
    saved = os.path.join(spec["run_dir"], "saved")
    if os.path.isdir(saved):
        shutil.rmtree(saved, ignore_errors=True)


def _run_worker(spec_path, log_path, progress, timeout=None):
    """Start the worker for one spec; relay its progress events; return (exit status, timed out)."""
    open(log_path, "w").close()
    with open(log_path, "a", encoding="utf-8") as log:  # append mode: parent and child never overwrite
        proc = subprocess.Popen(
            [sys.executable, "-m", "recbole_blairclip.benchmark.worker", spec_path],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=_subprocess_env(),
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,  # its own process group: stopped as a whole, never orphaned
        )
        lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout if timeout else None
        timed_out = False
        try:
            while True:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    if deadline is not None and time.monotonic() > deadline:
                        timed_out = True
                        _stop_group(proc, grace=0)
                        break
                    continue
                if line is None:
                    break
                if line.startswith(EVENT_PREFIX):
                    try:
                        progress.event(json.loads(line[len(EVENT_PREFIX):]))
                    except ValueError:
                        log.write(line)
                else:
                    log.write(line)
                    log.flush()
            returncode = proc.wait()
        except BaseException:  # Ctrl-C, SIGTERM, SIGHUP: stop the run, keep what is finished
            _stop_group(proc)
            raise
    return returncode, timed_out


def _record_interrupted(spec, exc, display, label, records, run_dir, meta):
    """An interrupted run: recorded as ``interrupted`` (rerun next time), its checkpoints removed."""
    record = _read_json(spec["result_path"])
    if not (record and record.get("status") == "ok"):  # unless it finished just before the signal
        why = str(exc) if isinstance(exc, BenchmarkInterrupted) else "interrupted (Ctrl-C)"
        record = {"row": spec["row"], "model": spec["model"], "dataset": spec["dataset"], "seed": spec["seed"],
                  "spec_hash": spec["spec_hash"], "status": "interrupted", "error": why,
                  "run_dir": spec["run_dir"], "worker_log": spec["worker_log"]}
        write_json(spec["result_path"], record)
        _clean_checkpoints(spec)
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
    rows = _as_list(models, "models", "--models") if models is not None else _as_list(
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
        _check_model(plan.model, plan.row)
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
    targets = _plugin_targets()
    records, counts = [], {"ran": 0, "skipped": 0, "failed": 0}
    total = len(plans) * len(seeds)
    index = 0
    for plan in plans:
        for seed in seeds:
            index += 1
            folder = os.path.join(run_dir, "runs", row_folder(plan.row), f"seed{seed}")
            os.makedirs(folder, exist_ok=True)
            spec = {
                "row": plan.row,
                "model": plan.model,
                "dataset": dataset,
                "seed": seed,
                "config": dict(plan.config, seed=seed, output_dir=folder,
                               ranks_file=os.path.join(folder, "ranks.parquet")),
                "config_sources": bench.sources + plan.sources,
                "plugin_models": targets,
                "keep_checkpoints": keep,
                "run_dir": folder,
                "result_path": os.path.join(folder, "result.json"),
                "worker_log": os.path.join(folder, "worker.log"),
            }
            spec["spec_hash"] = spec_hash(spec)
            label = f"[{index}/{total}] {plan.row} seed {seed}"
            previous = _read_json(spec["result_path"])
            if previous and previous.get("status") == "ok" and not force and report.ranks_path(previous):
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
                with _stop_signals():
                    returncode, timed_out = _run_worker(spec_path, spec["worker_log"], display, timeout)
            except KeyboardInterrupt as exc:
                _record_interrupted(spec, exc, display, label, records, run_dir, meta)
                raise
            record = _read_json(spec["result_path"])
            if record is None or timed_out:
                if timed_out:
                    why = f"timed out after {timeout}s"
                elif returncode < 0:
                    why = f"worker killed by signal {-returncode}" + (" (out of memory?)" if returncode == -9 else "")
                else:
                    why = f"worker exited with status {returncode}"
                tail = _log_tail(spec["worker_log"])
                record = {
                    "row": plan.row, "model": plan.model, "dataset": dataset, "seed": seed,
                    "spec_hash": spec["spec_hash"], "status": "failed",
                    "error": f"{why}" + (f": {tail}" if tail and not timed_out else ""),
                    "run_dir": folder, "worker_log": spec["worker_log"],
                }
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
        "summary": report.summarize(records, report.load_ranks(records)),
        "files": files,
        **counts,
    }
