"""Ray Tune hyper-parameter search on the validation metric.

:func:`tune` runs ``samples`` trials of one model on one dataset. Each trial builds the plugin's config
(run config files < base ``config_dict`` < the trial's sampled values), trains with RecBole's trainer and
reports the **validation** metrics to Ray after every validation, so an ASHA scheduler can stop weak
trials early. The test set is touched once, at the end, for the best configuration only: it is trained
again from the written ``best_config.yaml`` (same seed) and its test metrics are written separately.

Ray 2.6.3 (the newest RecBole 1.2.1 allows): ``ray.tune.Tuner`` + ``ray.air.session.report``.

* Local by default: ``ray.init(num_cpus=<this machine's CPUs>, include_dashboard=False)``. ``address``
  (``auto``, ``host:port`` or ``ray://host:port``) joins an existing cluster as it is; an address that
  cannot be reached is a ConfigError before any trial starts (Ray itself would retry for minutes).
  On a cluster every node needs this package and the dataset at the same absolute path.
* The dataset is read once in the driver and shared with every trial through Ray's object store
  (``tune.with_parameters``), unless the space varies a key that changes how the dataset is built
  (RecBole's dataset keys such as ``MAX_ITEM_LIST_LENGTH``): then each trial reads it itself.
* Outputs under ``out``: ``trials.csv`` / ``trials.md`` (config, best valid metric, epochs run, status,
  error), ``epochs.csv`` (validation metrics of every trial after every validation), ``best_config.yaml``
  (usable by ``run_recbole --config_files``), ``best_test.json`` (the best configuration's test metrics),
  ``search.json`` (what was searched), and Ray's experiment under ``ray/search``.
* Ctrl-C stops the search and keeps the finished trials; ``resume=True`` continues it (unfinished trials
  restart from scratch, failed ones stay failed unless ``retry_failed``). A failing trial is recorded as
  ``failed`` with its error, never as a score.
"""
import contextlib
import csv
import io
import json
import logging
import math
import os
import socket
import sys
import warnings

import yaml

from recbole_blairclip.config import load_yaml
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.tune.space import (
    check_space,
    grid_size,
    is_grid_only,
    load_space,
    parse_space,
    space_to_yaml,
    to_param_space,
)

EXPERIMENT = "search"  # Ray's experiment folder name under <out>/ray/
FINISHED = "finished.json"  # written in a trial's folder when its training ran to its end

# Keys that change the Dataset object (so it cannot be shared between trials that vary them): RecBole's
# "Dataset" keys, these, the plugin MultimodalDataset's, and a dataset class's own ``config_keys``
_DATASET_KEYS_EXTRA = {
    "data_path", "dataset", "seq_len", "MAX_ITEM_LIST_LENGTH",
    # recbole_blairclip.data.multimodal.MultimodalDataset (BLaIRCLIP's dataset) reads these
    "text_features", "image_features", "use_image", "text_mode", "train_rows", "text_field",
}

STATUS_COMPLETED = "completed"  # trained until its last epoch or RecBole's early stopping
STATUS_STOPPED = "stopped early"  # stopped by the scheduler (ASHA) on its validation metric
STATUS_FAILED = "failed"  # raised an error (recorded, never scored)
STATUS_UNFINISHED = "unfinished"  # interrupted (Ctrl-C) or not started: resume to run it


# ---------------------------------------------------------------------------------------------------
# small helpers


def _plain(value):
    """numpy scalars / tuples -> plain Python values (yaml / json ready)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


@contextlib.contextmanager
def _driver_isolation():
    """RecBole's Config reads ``--key=value`` from sys.argv and sets CUDA_VISIBLE_DEVICES: undo both."""
    saved_argv, saved_cuda = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = saved_argv
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda


@contextlib.contextmanager
def _quiet_ray_output(verbose):
    """Ray 2.6's new console output prints a header even at verbosity 0; the legacy one does not."""
    if verbose:
        yield
        return
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    tune_logger = logging.getLogger("ray.tune")  # failed trials: their errors go to trials.csv instead
    level = tune_logger.level
    tune_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        tune_logger.setLevel(level)
        if saved is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved


def _write_atomic(path, text):
    """Write text to path through a temporary file in the same folder (never half-written)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def _first_error_line(error):
    """The most telling line of a trial's error (the last 'SomethingError: ...' line)."""
    text = str(error or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Interrupt")) and " " not in head:
            return line[:300]
    return (lines[-1] if lines else type(error).__name__)[:300]


# ---------------------------------------------------------------------------------------------------
# Ray connection


def _check_reachable(address, timeout=5.0):
    """Fail fast (ConfigError) when a ``host:port`` / ``ray://host:port`` address does not answer."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"--address {address!r} is not 'auto', 'host:port' or 'ray://host:port' "
            "(e.g. ray://head-node:10001 for Ray client, head-node:6379 from a cluster node)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address!r} ({host}:{port}: {exc}). Start one with "
            "`ray start --head`, check the address and firewall, or drop --address to run locally."
        ) from None


def connect(address=None, num_cpus=None):
    """Start a local Ray (no dashboard) or join the cluster at ``address``. Returns True if this call
    started or joined Ray (and so should shut it down), False when Ray was already initialised."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        ray.init(
            num_cpus=int(num_cpus or os.cpu_count() or 1),
            include_dashboard=False,
            log_to_driver=False,  # trial output goes to each trial's folder, RecBole logs too
            configure_logging=True,
            logging_level=logging.WARNING,
        )
        return True
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {_first_error_line(exc)}") from None
    return True


# ---------------------------------------------------------------------------------------------------
# one trial (runs in a Ray worker process)


_TRIAL_HANDLERS = []  # root-logger handlers the previous trial in this worker added


def _trial_logging(config):
    """RecBole's logger writing to <output_dir>/log/..., console only from WARNING up (quiet trials)."""
    from recbole.utils import init_logger

    root = logging.getLogger()
    for handler in _TRIAL_HANDLERS:
        root.removeHandler(handler)
        handler.close()
    _TRIAL_HANDLERS.clear()
    others = list(root.handlers)
    for handler in others:  # logging.basicConfig (used by RecBole) only acts on a handler-less root
        root.removeHandler(handler)
    previous = os.getcwd()
    os.makedirs(config["output_dir"], exist_ok=True)
    os.chdir(config["output_dir"])  # RecBole names ./log/<model>/... relative to cwd
    try:
        init_logger(config)
    finally:
        os.chdir(previous)
    _TRIAL_HANDLERS.extend(root.handlers)
    for handler in root.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    for handler in others:
        root.addHandler(handler)


def trial_config(setup, params, output_dir, gpu_ids=()):
    """The plugin Config of one trial: run config files < base config_dict < sampled params."""
    from recbole_blairclip.quick_start import make_config

    config_dict = dict(setup["config_dict"])
    config_dict.update(_plain(params))
    config_dict.update(output_dir=output_dir, show_progress=False)
    # Ray assigns the devices: RecBole's gpu_id becomes CUDA_VISIBLE_DEVICES, so pass Ray's physical ids
    config_dict["gpu_id"] = ",".join(str(g) for g in gpu_ids)
    config_dict["use_gpu"] = bool(gpu_ids)
    saved_argv = sys.argv
    sys.argv = sys.argv[:1]  # a Ray worker's own --flags must not become RecBole config keys
    try:
        return make_config(setup["model"], setup["dataset"], setup["config_files"], config_dict)
    finally:
        sys.argv = saved_argv


def run_trial(params, setup=None, dataset=None):
    """Ray Tune function trainable: train one configuration, report validation metrics per validation."""
    import ray
    import torch
    from ray.air import session
    from recbole.data import data_preparation
    from recbole.utils import init_seed

    from recbole_blairclip.quick_start import build_model, build_trainer, prepare

    warnings.filterwarnings("ignore")  # RecBole / torch deprecation noise; errors still raise
    torch.set_num_threads(max(1, int(setup["cpus_per_trial"])))
    config = trial_config(setup, params, session.get_trial_dir(), ray.get_gpu_ids())
    init_seed(config["seed"], config["reproducibility"])
    _trial_logging(config)
    logger = logging.getLogger()
    logger.info(f"Ray Tune trial {session.get_trial_id()}: {_plain(params)}")
    logger.info(config)
    if dataset is None:
        _, train_data, valid_data, _ = prepare(config)
    else:
        dataset.config = config  # the driver's copy: same dataset keys, this trial's other keys
        train_data, valid_data, _ = data_preparation(config, dataset)
    model = build_model(config, train_data)
    logger.info(model)
    trainer = build_trainer(config, model)

    last = {}
    valid_epoch = trainer._valid_epoch

    def capture_valid(*args, **kwargs):  # the callback only gets the score: keep every metric too
        score, result = valid_epoch(*args, **kwargs)
        last["result"] = result
        return score, result

    trainer._valid_epoch = capture_valid
    bigger = config["valid_metric_bigger"]
    best = {"score": None}

    def report(epoch_idx, valid_score):
        score = float(valid_score)
        if best["score"] is None or (score > best["score"] if bigger else score < best["score"]):
            best["score"] = score
        metrics = {"valid_score": score, "best_valid_score": best["score"], "epoch": epoch_idx + 1}
        for key, value in (last.get("result") or {}).items():
            metrics[f"valid_{key}"] = float(value)
        early_stop = trainer.cur_step > trainer.stopping_step  # RecBole ends training after this callback
        if early_stop or epoch_idx + 1 + trainer.eval_step > trainer.epochs:  # no validation follows
            # written before the last report: a scheduler may end the trial inside session.report
            # (ASHA stops every trial that reaches max_t), which is still a complete run
            mark_finished(epoch_idx + 1, early_stop)
        session.report(metrics)

    def mark_finished(epochs_run, early_stop):
        path = os.path.join(session.get_trial_dir(), FINISHED)
        if os.path.exists(path):
            return
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"epochs": epochs_run, "recbole_early_stopping": bool(early_stop)}, f)

    trainer.fit(train_data, valid_data, saved=False, show_progress=False, callback_fn=report)
    mark_finished(trainer.epochs, trainer.cur_step > trainer.stopping_step)  # neither scheduler nor error ended it


# ---------------------------------------------------------------------------------------------------
# the best configuration's test run (a Ray task with the trial's resources)


def _final_run(model, dataset, config_files, config_dict):
    import ray

    from recbole_blairclip.quick_start import run

    warnings.filterwarnings("ignore")
    gpu_ids = ray.get_gpu_ids()
    config_dict = dict(config_dict, gpu_id=",".join(str(g) for g in gpu_ids), use_gpu=bool(gpu_ids))
    saved_argv = sys.argv
    sys.argv = sys.argv[:1]
    try:
        return run(model, dataset, config_file_list=config_files, config_dict=config_dict, saved=True)
    finally:
        sys.argv = saved_argv


# ---------------------------------------------------------------------------------------------------
# results -> tables


def saved_statuses(experiment_path):
    """trial_id -> status as Ray last checkpointed the experiment (on Ctrl-C: before it stopped the
    running trials, which it then marks TERMINATED in memory although a resume will rerun them)."""
    from ray.tune import ExperimentAnalysis

    try:
        return {t.trial_id: t.status for t in ExperimentAnalysis(experiment_path).trials}
    except Exception:  # no readable checkpoint: fall back to the in-memory statuses
        return {}


def _last_run(rows):
    """A trial resumed without a checkpoint starts again at epoch 1 and appends to its progress file."""
    start = 0
    for i in range(1, len(rows)):
        if rows[i]["epoch"] <= rows[i - 1]["epoch"]:
            start = i
    return rows[start:]


def _trial_status(trial, result, saved_status=None):
    if trial.status == "ERROR" or result.error is not None:
        return STATUS_FAILED
    if saved_status is not None and saved_status not in ("TERMINATED", "ERROR"):
        return STATUS_UNFINISHED
    if trial.status == "TERMINATED":
        # Ray marks a trial the scheduler stopped "done" too: only the trial itself knows it ran to its end
        finished = os.path.isfile(os.path.join(str(result.log_dir or trial.local_path), FINISHED))
        return STATUS_COMPLETED if finished else STATUS_STOPPED
    return STATUS_UNFINISHED


def collect_trials(results, param_names, mode, saved=None):
    """One record per trial (dict), plus the per-validation rows, from a Ray ResultGrid
    (``saved``: :func:`saved_statuses`)."""
    trials = results._experiment_analysis.trials  # same order as the ResultGrid's results
    saved = saved or {}
    records, epochs = [], []
    for trial, result in zip(trials, results):
        status = _trial_status(trial, result, saved.get(trial.trial_id))
        frame = result.metrics_dataframe
        rows = []
        if frame is not None and "valid_score" in frame:
            frame = frame[frame["valid_score"].notna()]
            valid_cols = [c for c in frame.columns if c.startswith("valid_") and c != "valid_score"]
            for _, row in frame.iterrows():
                rows.append(
                    {"trial_id": trial.trial_id, "epoch": int(row["epoch"]), "valid_score": float(row["valid_score"]),
                     **{c[len("valid_"):]: float(row[c]) for c in valid_cols}}
                )
        rows = _last_run(rows)
        epochs.extend(rows)
        best_row = None
        if rows:
            pick = max if mode == "max" else min
            best_row = pick(rows, key=lambda r: r["valid_score"])
        record = {"trial_id": trial.trial_id, "status": status}
        record.update({name: _plain(trial.config.get(name)) for name in param_names})
        record.update(
            best_valid=best_row["valid_score"] if best_row else None,
            best_epoch=best_row["epoch"] if best_row else None,
            epochs_run=rows[-1]["epoch"] if rows else 0,
            validations=len(rows),
            error=_first_error_line(result.error) if status == STATUS_FAILED else "",
            trial_dir=str(result.log_dir or trial.local_path or ""),
        )
        records.append(record)
    return records, epochs


def _sort_key(mode):
    def key(record):
        score = record["best_valid"]
        if score is None:
            return (1, 0.0)
        return (0, -score if mode == "max" else score)

    return key


def _csv_text(rows, columns):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buffer.getvalue()


def _md_cell(value):
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def trials_markdown(records, param_names, metric_name, title):
    columns = ["trial_id", *param_names, "best_valid", "best_epoch", "epochs_run", "status", "error"]
    header = ["trial", *param_names, f"best valid {metric_name}", "best epoch", "epochs run", "status", "error"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        lines.append("| " + " | ".join(_md_cell(record.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def best_config_yaml(model, dataset, config_files, config_dict, params, metric_name, score):
    """The best configuration as one self-contained yaml for ``run_recbole --config_files``."""
    merged = {}
    for path in config_files:
        merged.update(load_yaml(path))
    merged.update({k: v for k, v in config_dict.items() if k not in ("output_dir", "gpu_id", "use_gpu")})
    merged.update(_plain(params))
    body = yaml.safe_dump(_plain(merged), sort_keys=False, default_flow_style=False, allow_unicode=True)
    header = (
        f"# Best configuration of a Ray Tune search: {model} on {dataset}, best valid {metric_name} = {score:.6g}.\n"
        f"# Searched keys: {', '.join(params)}. Run it with:\n"
        f"#   run_recbole --model={model} --dataset={dataset} --config_files=<this file>\n"
    )
    return header + body


# ---------------------------------------------------------------------------------------------------
# the search


def dataset_keys(config):
    """Config keys that change the Dataset object built for ``config``'s model."""
    from recbole_blairclip.data.dataset import dataset_class_for
    from recbole_blairclip.registry import get_model

    keys = set(config.parameters.get("Dataset", [])) | _DATASET_KEYS_EXTRA
    keys.update(getattr(dataset_class_for(config, get_model(config["model"])), "config_keys", ()))
    return keys


def _shareable(space_keys, config):
    """True when no searched key changes how the Dataset object is built."""
    return not (set(space_keys) & dataset_keys(config))


def tune(
    model,
    dataset,
    space,
    samples=10,
    scheduler="asha",
    address=None,
    cpus_per_trial=1,
    gpus_per_trial=0,
    config_file_list=None,
    config_dict=None,
    out=None,
    resume=False,
    retry_failed=False,
    grace_period=1,
    reduction_factor=2,
    max_concurrent_trials=None,
    num_cpus=None,
    test_best=True,
    share_dataset="auto",
    verbose=0,
):
    """Search ``space`` for ``model`` on ``dataset`` with Ray Tune; see the module doc.

    Args:
        space: a space yaml path, or a mapping in the same form (see :mod:`recbole_blairclip.tune.space`).
        samples: Ray's ``num_samples`` (with grid keys, every sample runs the whole grid).
        scheduler: ``"asha"`` (stop weak trials on the validation metric) or ``"fifo"`` (run all fully).
        address: None (local Ray), ``"auto"``, ``"host:port"`` or ``"ray://host:port"``.
        config_file_list / config_dict: the run's config, as for :func:`recbole_blairclip.run`.
        out: output folder (default ``<output_dir>/tune/<model>-<dataset>``).
        resume: continue the search already in ``out``; ``retry_failed`` reruns its failed trials.
        num_cpus: CPUs of a local Ray (default: all of this machine's).
        test_best: train the best configuration again and report its test metrics.
        share_dataset: "auto" (share unless a searched key changes the dataset), True or False.
        verbose: Ray Tune's console verbosity (0 silent, 1 progress table).

    Returns a dict: ``out``, ``metric`` (e.g. ``ndcg@10``), ``mode``, ``trials`` (records as in
    trials.csv), ``best`` (the best record or None), ``test`` (best_test.json content or None),
    ``interrupted``, ``shared_dataset``, ``experiment_path``, ``files``.
    """
    from recbole_blairclip.data.dataset import check_dataset_files, create_dataset
    from recbole_blairclip.quick_start import make_config
    from recbole_blairclip.registry import get_model

    # ---- everything that can be wrong is checked before Ray starts
    if scheduler not in ("asha", "fifo"):
        raise ConfigError(f"unknown scheduler {scheduler!r}: use 'asha' or 'fifo'")
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive integer, got {samples!r}")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ConfigError(f"cpus per trial must be > 0 and gpus per trial >= 0, got {cpus_per_trial}, {gpus_per_trial}")
    if isinstance(space, (str, os.PathLike)):
        source = os.path.abspath(os.fspath(space))
        parsed = load_space(source)
    else:
        source = "<space>"
        parsed = parse_space(space, source)
    config_files = [os.path.abspath(f) for f in (config_file_list or [])]
    for path in config_files:
        load_yaml(path)  # missing / broken files fail here with their name and line
    base = dict(config_dict or {})
    with _driver_isolation():
        config = make_config(model, dataset, config_files, base)
        check_space(parsed, config, source)
    check_dataset_files(config)
    # RecBole's config["data_path"] is <data_path>/<dataset>; trials run in their own folders
    base["data_path"] = os.path.dirname(os.path.abspath(config["data_path"]))
    if config["eval_step"] is None or int(config["eval_step"]) < 1:
        raise ConfigError(f"eval_step is {config['eval_step']!r}: a search needs validation, set eval_step >= 1")
    if is_grid_only(parsed) and samples > 1:
        raise ConfigError(
            f"{source}: every key is a grid ({grid_size(parsed)} configurations), so each of the {samples} "
            "samples would repeat the same runs; use --samples 1 (or choice/uniform keys to sample)"
        )
    metric_name = str(config["valid_metric"]).lower()
    mode = "max" if config["valid_metric_bigger"] else "min"
    param_names = list(parsed)
    out = os.path.abspath(out or os.path.join(config["output_dir"], "tune", f"{config['model']}-{config['dataset']}"))
    storage = os.path.join(out, "ray")
    experiment_path = os.path.join(storage, EXPERIMENT)
    record = {
        "model": config["model"],
        "dataset": config["dataset"],
        "space": space_to_yaml(parsed),
        "space_file": source if source != "<space>" else None,
        "config_files": config_files,
        "config_dict": _plain(base),
        "samples": samples,
        "scheduler": scheduler,
        "valid_metric": metric_name,
        "mode": mode,
    }
    search_json = os.path.join(out, "search.json")

    from ray.tune import Tuner

    restoring = Tuner.can_restore(experiment_path)
    if restoring and not resume:
        raise ConfigError(
            f"{out} already holds a search: pass --resume to continue it, or choose another --out"
        )
    if restoring:
        try:
            with open(search_json, "r", encoding="utf-8") as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
        same = ("model", "dataset", "space", "samples", "scheduler", "valid_metric")
        if previous is not None and any(previous.get(k) != record[k] for k in same):
            changed = [k for k in same if previous.get(k) != record[k]]
            raise ConfigError(
                f"cannot resume the search in {out}: {', '.join(changed)} differ from the search started "
                "there; rerun with the same arguments, or choose another --out"
            )
    os.makedirs(out, exist_ok=True)
    _write_atomic(search_json, json.dumps(record, indent=2) + "\n")

    share = _shareable(param_names, config) if share_dataset == "auto" else bool(share_dataset)

    # ---- Ray
    started = connect(address, num_cpus)
    try:
        import ray
        from ray import tune as ray_tune
        from ray.air import FailureConfig, RunConfig
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
        from ray.tune.search import BasicVariantGenerator

        setup = {
            "model": config["model"],
            "dataset": config["dataset"],
            "config_files": config_files,
            "config_dict": base,
            "cpus_per_trial": cpus_per_trial,
        }
        shared = None
        if share:
            with _driver_isolation(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shared = create_dataset(config, get_model(config["model"]))
        trainable = ray_tune.with_parameters(run_trial, setup=setup, dataset=shared)
        trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})

        if restoring:
            tuner = Tuner.restore(
                experiment_path,
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=False,
                restart_errored=bool(retry_failed),
            )
        else:
            if scheduler == "asha":
                if "epochs" in parsed or "eval_step" in parsed:
                    max_t = 10**6  # the number of validations varies between trials
                else:
                    max_t = max(1, math.ceil(int(config["epochs"]) / int(config["eval_step"])))
                chosen = ASHAScheduler(
                    time_attr="training_iteration",  # = validations reported so far
                    max_t=max_t,
                    grace_period=min(int(grace_period), max_t),
                    reduction_factor=reduction_factor,
                )
            else:
                chosen = FIFOScheduler()
            tuner = Tuner(
                trainable,
                param_space=to_param_space(parsed),
                tune_config=ray_tune.TuneConfig(
                    metric="valid_score",
                    mode=mode,
                    scheduler=chosen,
                    search_alg=BasicVariantGenerator(
                        random_state=int(config["seed"]), max_concurrent=int(max_concurrent_trials or 0)
                    ),
                    num_samples=samples,
                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
                ),
                run_config=RunConfig(
                    name=EXPERIMENT,
                    storage_path=storage,
                    failure_config=FailureConfig(max_failures=0),
                    log_to_file=True,  # each trial's stdout/stderr in its folder
                    verbose=verbose,
                ),
            )
        with _quiet_ray_output(verbose):
            results = tuner.fit()
        records, epochs = collect_trials(results, param_names, mode, saved_statuses(experiment_path))
        records.sort(key=_sort_key(mode))
        # Ctrl-C: a trial was running, or the search had not yet created all its trials
        expected = samples * grid_size(parsed)
        interrupted = any(r["status"] == STATUS_UNFINISHED for r in records) or len(records) < expected

        # ---- tables
        files = {
            "trials_csv": os.path.join(out, "trials.csv"),
            "trials_md": os.path.join(out, "trials.md"),
            "epochs_csv": os.path.join(out, "epochs.csv"),
        }
        columns = ["trial_id", *param_names, "best_valid", "best_epoch", "epochs_run", "validations", "status",
                   "error", "trial_dir"]
        _write_atomic(files["trials_csv"], _csv_text(records, columns))
        title = f"Ray Tune search: {config['model']} on {config['dataset']}, valid {metric_name} ({mode})"
        _write_atomic(files["trials_md"], trials_markdown(records, param_names, metric_name, title))
        metric_cols = sorted({k for row in epochs for k in row} - {"trial_id", "epoch", "valid_score"})
        _write_atomic(files["epochs_csv"], _csv_text(epochs, ["trial_id", "epoch", "valid_score", *metric_cols]))

        # the best of the trials that ran to their end or were stopped by the scheduler
        scored = [r for r in records if r["best_valid"] is not None and r["status"] in (STATUS_COMPLETED, STATUS_STOPPED)]
        best = scored[0] if scored else None
        test = None
        if best is not None:
            params = {name: best[name] for name in param_names}
            files["best_config"] = os.path.join(out, "best_config.yaml")
            _write_atomic(
                files["best_config"],
                best_config_yaml(config["model"], config["dataset"], config_files, base, params, metric_name,
                                 best["best_valid"]),
            )
            if test_best and not interrupted:
                final = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(_final_run)
                final_dict = {"output_dir": os.path.join(out, "best_run"), "show_progress": False}
                result = ray.get(
                    final.remote(config["model"], config["dataset"], [files["best_config"]], final_dict)
                )
                test = {
                    "model": config["model"],
                    "dataset": config["dataset"],
                    "valid_metric": metric_name,
                    "params": params,
                    "trial_id": best["trial_id"],
                    "search_best_valid": best["best_valid"],
                    "best_valid_score": result["best_valid_score"],
                    "best_valid_result": result["best_valid_result"],
                    "test_result": result["test_result"],
                    "best_epoch": result["best_epoch"],
                    "epochs": result["epochs"],
                    "fit_seconds": result["fit_seconds"],
                    "device": result["device"],
                }
                files["best_test"] = os.path.join(out, "best_test.json")
                _write_atomic(files["best_test"], json.dumps(_plain(test), indent=2) + "\n")
        return {
            "out": out,
            "metric": metric_name,
            "mode": mode,
            "trials": records,
            "epochs": epochs,
            "best": best,
            "test": test,
            "interrupted": interrupted,
            "shared_dataset": shared is not None,
            "experiment_path": experiment_path,
            "files": files,
        }
    finally:
        if started:
            import ray

            ray.shutdown()


__all__ = ["tune", "connect", "run_trial", "collect_trials", "STATUS_COMPLETED", "STATUS_STOPPED",
           "STATUS_FAILED", "STATUS_UNFINISHED"]
