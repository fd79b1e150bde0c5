"""Ray Tune hyper-parameter search on the validation metric.

:func:`tune` runs ``samples`` trials of one model on one dataset (:mod:`recbole_blairclip.tune.trial`):
each reports the **validation** metrics to Ray after every validation, so an ASHA scheduler can stop weak
trials early. The test set is touched once, at the end, for the best configuration only: it is trained
again from the written ``best_config.yaml`` (same seed) and its test metrics are written separately.

Current Ray (>= 2.40, the uv install; :func:`recbole_blairclip.compat.require_ray` stops with a one-line fix on
the Ray 2.6.3 that RecBole's own pin gives plain pip): ``ray.tune.Tuner``, ``ray.tune.report``, the
``ResultGrid`` it returns and ``Tuner.restore``; no private Ray attribute is read.

* Everything checkable is checked before Ray starts: the space (:mod:`recbole_blairclip.tune.space`),
  config files, the dataset files, the scheduler, the address.
* Local by default: ``ray.init(num_cpus=<this machine's CPUs>, include_dashboard=False)``; every Ray worker
  runs :func:`recbole_blairclip.compat.apply` first (``worker_process_setup_hook``), so RecBole's numpy
  aliases exist before anything in the worker imports RecBole. ``address``
  (``auto``, ``host:port`` or ``ray://host:port``) joins an existing cluster as it is; an address that
  does not answer is a ConfigError before any trial starts (Ray itself would retry for minutes).
  On a cluster every node needs this package and the dataset at the same absolute path. Trials run in
  their own folders, so ``data_path``, the config files and any relative path the run sets that exists
  (an encoder folder, ...) are made absolute first.
* The dataset is read once in the driver and shared with every trial through Ray's object store
  (``tune.with_parameters``), unless the space varies a key that changes how the dataset is built
  (RecBole's dataset keys such as ``MAX_ITEM_LIST_LENGTH``, BLaIRCLIP's feature tags): then each trial
  reads it itself.
* Outputs under ``out``: ``trials.csv`` / ``trials.md`` (config, best valid metric, epochs run, status,
  error), ``epochs.csv`` (every trial's validation metrics after every validation), ``best_config.yaml``
  (usable by ``run_recbole --config_files``), ``best_test.json`` (the best configuration's test metrics),
  ``search.json`` (what was searched), and Ray's experiment under ``ray/search``.
* Ctrl-C stops the search and keeps the finished trials; ``resume=True`` continues it (unfinished trials
  restart from scratch, failed ones stay failed unless ``retry_failed``). A failing trial is recorded as
  ``failed`` with its error, never as a score.
"""
import contextlib
import json
import logging
import math
import os
import socket
import warnings

from recbole_blairclip.compat import WORKER_SETUP_HOOK, require_ray
from recbole_blairclip.config import load_yaml
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.io import json_ready
from recbole_blairclip.packaged import resolve_config_file
from recbole_blairclip.tune import report
from recbole_blairclip.tune.space import (
    check_space,
    grid_size,
    is_grid_only,
    load_space,
    parse_space,
    space_to_yaml,
    to_param_space,
)
from recbole_blairclip.tune.trial import final_run, run_trial

EXPERIMENT = "search"  # Ray's experiment folder name under <out>/ray/

# Keys that change the Dataset object, so trials that vary one cannot share it: RecBole's "Dataset"
# keys, these, and a dataset class's own ``config_keys`` attribute when it declares one
_DATASET_KEYS_EXTRA = {"data_path", "dataset", "seq_len", "MAX_ITEM_LIST_LENGTH"}
_RESUME_MUST_MATCH = ("model", "dataset", "space", "samples", "scheduler", "valid_metric")


# ---------------------------------------------------------------------------------------------------
# driver-side helpers


@contextlib.contextmanager
def _driver_isolation():
    """RecBole's Config sets CUDA_VISIBLE_DEVICES (which would hide GPUs from a local Ray started
    afterwards): undo it."""
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        yield
    finally:
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda


@contextlib.contextmanager
def _ray_console(verbose):
    """verbose 0: Ray's new console output prints a header even at verbosity 0 (the legacy one does
    not), and Ray logs every failed trial's traceback (trials.csv keeps the error instead)."""
    if verbose:
        yield
        return
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    tune_logger = logging.getLogger("ray.tune")
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
    """Start a local Ray (no dashboard) or join the cluster at ``address``. Returns True when this call
    started or joined Ray (and so should shut it down), False when Ray was already initialised."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"worker_process_setup_hook": WORKER_SETUP_HOOK}
    if address is None:
        ray.init(
            num_cpus=int(num_cpus or os.cpu_count() or 1),
            include_dashboard=False,
            log_to_driver=False,  # each trial's stdout/stderr and RecBole log stay in its folder
            logging_level=logging.WARNING,
            runtime_env=runtime_env,
        )
        return True
    _check_reachable(address)
    retry_logger = logging.getLogger("ray._private.utils")  # logs a traceback per retry to a non-Ray port
    level = retry_logger.level
    retry_logger.setLevel(logging.CRITICAL)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {report.first_error_line(exc)}") from None
    finally:
        retry_logger.setLevel(level)
    return True


def dataset_keys(config):
    """Config keys that change the Dataset object built for ``config``'s model."""
    from recbole_blairclip.data.dataset import dataset_class_for
    from recbole_blairclip.registry import get_model

    keys = set(config.parameters.get("Dataset", [])) | _DATASET_KEYS_EXTRA
    keys.update(getattr(dataset_class_for(config, get_model(config["model"])), "config_keys", ()))
    return keys


# ---------------------------------------------------------------------------------------------------
# the search, in steps


def _plan(model, dataset, space, samples, scheduler, cpus_per_trial, gpus_per_trial, config_file_list,
          config_dict, out):
    """Check every input (ConfigError / DatasetError) and resolve paths; touches no Ray."""
    from recbole_blairclip.data.dataset import check_dataset_files
    from recbole_blairclip.quick_start import OUTPUT_KEYS, make_config

    if scheduler not in ("asha", "fifo"):
        raise ConfigError(f"unknown scheduler {scheduler!r}: use 'asha' or 'fifo'")
    if not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"samples must be a positive integer, got {samples!r}")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ConfigError(f"cpus per trial must be > 0 and gpus per trial >= 0, got {cpus_per_trial}, {gpus_per_trial}")
    if isinstance(space, (str, os.PathLike)):
        source = os.path.abspath(resolve_config_file(os.fspath(space)))  # configs/tune/X.yaml from any folder
        parsed = load_space(source)
    else:
        source = "<space>"
        parsed = parse_space(space, source)
    config_files = [os.path.abspath(resolve_config_file(f)) for f in (config_file_list or [])]
    for path in config_files:
        load_yaml(path)  # a missing or broken file fails here with its name and line
    base = dict(config_dict or {})
    with _driver_isolation():
        config = make_config(model, dataset, config_files, base)
    check_space(parsed, config, source)
    check_dataset_files(config)
    # trials run in their own folders: relative paths the run set (an encoder folder, ...) made absolute;
    # RecBole's config["data_path"] is <data_path>/<dataset>
    for key, value in config.external_config_dict.items():
        if key not in OUTPUT_KEYS and isinstance(value, str) and not os.path.isabs(value) and os.path.exists(value):
            base[key] = os.path.abspath(value)
    base["data_path"] = os.path.dirname(os.path.abspath(config["data_path"]))
    if config["eval_step"] is None or int(config["eval_step"]) < 1:
        raise ConfigError(f"eval_step is {config['eval_step']!r}: a search needs validation, set eval_step >= 1")
    if is_grid_only(parsed) and samples > 1:
        raise ConfigError(
            f"{source}: every key is a grid ({grid_size(parsed)} configurations), so each of the {samples} "
            "samples would repeat the same runs; use --samples 1 (or choice/uniform keys to sample)"
        )
    out = os.path.abspath(out or os.path.join(config["output_dir"], "tune", f"{config['model']}-{config['dataset']}"))
    return {
        "config": config,
        "space": parsed,
        "source": source,
        "config_files": config_files,
        "base": base,
        "out": out,
        "experiment_path": os.path.join(out, "ray", EXPERIMENT),
        "metric": str(config["valid_metric"]).lower(),
        "mode": "max" if config["valid_metric_bigger"] else "min",
        "record": {
            "model": config["model"],
            "dataset": config["dataset"],
            "space": space_to_yaml(parsed),
            "space_file": None if source == "<space>" else source,
            "config_files": config_files,
            "config_dict": json_ready(base),
            "samples": samples,
            "scheduler": scheduler,
            "valid_metric": str(config["valid_metric"]).lower(),
        },
    }


def _check_resume(plan, resume):
    """True when the search in ``out`` is to be continued; ConfigError when that is not what was asked."""
    from ray.tune import Tuner

    out = plan["out"]
    if not Tuner.can_restore(plan["experiment_path"]):
        return False
    if not resume:
        raise ConfigError(f"{out} already holds a search: pass --resume to continue it, or choose another --out")
    try:
        with open(os.path.join(out, "search.json"), "r", encoding="utf-8") as f:
            previous = json.load(f)
    except (OSError, ValueError):
        return True
    changed = [k for k in _RESUME_MUST_MATCH if previous.get(k) != plan["record"][k]]
    if changed:
        raise ConfigError(
            f"cannot resume the search in {out}: {', '.join(changed)} differ from the search started there; "
            "rerun with the same arguments, or choose another --out"
        )
    return True


def _scheduler(plan, scheduler, grace_period, reduction_factor):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if scheduler == "fifo":
        return FIFOScheduler()
    config, space = plan["config"], plan["space"]
    if "epochs" in space or "eval_step" in space:
        max_t = 10**6  # the number of validations varies between trials
    else:
        max_t = max(1, math.ceil(int(config["epochs"]) / int(config["eval_step"])))
    return ASHAScheduler(
        time_attr="training_iteration",  # = validations reported so far
        max_t=max_t,
        grace_period=max(1, min(int(grace_period), max_t)),
        reduction_factor=reduction_factor,
    )


def _tuner(plan, trainable, restoring, retry_failed, scheduler, samples, max_concurrent_trials, verbose):
    from ray import tune as ray_tune
    from ray.tune import FailureConfig, RunConfig, SyncConfig, Tuner
    from ray.tune.search import BasicVariantGenerator

    if restoring:
        return Tuner.restore(plan["experiment_path"], trainable=trainable, resume_unfinished=True,
                             resume_errored=False, restart_errored=bool(retry_failed))
    return Tuner(
        trainable,
        param_space=to_param_space(plan["space"]),
        tune_config=ray_tune.TuneConfig(
            metric="valid_score",
            mode=plan["mode"],
            scheduler=scheduler,
            search_alg=BasicVariantGenerator(
                random_state=int(plan["config"]["seed"]), max_concurrent=int(max_concurrent_trials or 0)
            ),
            num_samples=samples,
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=RunConfig(
            name=EXPERIMENT,
            storage_path=os.path.dirname(plan["experiment_path"]),
            failure_config=FailureConfig(max_failures=0),  # a failing trial is recorded, not retried
            log_to_file=True,  # each trial's stdout/stderr, copied to its folder (sync_artifacts)
            sync_config=SyncConfig(sync_artifacts=True),
            verbose=verbose,
        ),
    )


def _test_best(plan, best, params, best_yaml, cpus_per_trial, gpus_per_trial):
    """Train the best configuration from its yaml (a Ray task with a trial's resources) and test it."""
    import ray

    config = plan["config"]
    task = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial, max_retries=0)(final_run)
    overrides = {"output_dir": os.path.join(plan["out"], "best_run"), "show_progress": False}
    result = ray.get(task.remote(config["model"], config["dataset"], [best_yaml], overrides))
    return json_ready({
        "model": config["model"],
        "dataset": config["dataset"],
        "valid_metric": plan["metric"],
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
    })


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
        config_file_list / config_dict: the run's config, as for :func:`recbole_blairclip.run`; the
            sampled values override both.
        out: output folder (default ``<output_dir>/tune/<model>-<dataset>``).
        resume: continue the search already in ``out``; ``retry_failed`` reruns its failed trials.
        grace_period / reduction_factor: ASHA's, counted in validations.
        num_cpus: CPUs of a local Ray (default: all of this machine's); ignored when Ray is running.
        test_best: train the best configuration again and report its test metrics.
        share_dataset: "auto" (share unless a searched key changes the dataset), True or False.
        verbose: Ray Tune's console verbosity (0 silent, 1 progress).

    Returns a dict: ``out``, ``metric`` (e.g. ``ndcg@10``), ``mode``, ``trials`` (records as in
    trials.csv, best first), ``epochs`` (rows of epochs.csv), ``best`` (the best record or None),
    ``test`` (best_test.json's content or None), ``interrupted``, ``shared_dataset``, ``cluster`` (the
    Ray cluster it ran on: ``gcs_address``, ``nodes``, ``cpus``, ``ray_version``), ``experiment_path``, ``files``.
    """
    require_ray("blairclip tune")
    plan = _plan(model, dataset, space, samples, scheduler, cpus_per_trial, gpus_per_trial, config_file_list,
                 config_dict, out)
    restoring = _check_resume(plan, resume)
    config, out, param_names = plan["config"], plan["out"], list(plan["space"])
    os.makedirs(out, exist_ok=True)
    report.write_atomic(os.path.join(out, "search.json"), json.dumps(plan["record"], indent=2) + "\n")
    share = share_dataset if share_dataset != "auto" else not (set(param_names) & dataset_keys(config))

    started = connect(address, num_cpus)
    try:
        import ray
        from ray import tune as ray_tune

        cluster = {"gcs_address": ray.get_runtime_context().gcs_address, "nodes": len(ray.nodes()),
                   "cpus": ray.cluster_resources().get("CPU", 0), "ray_version": ray.__version__}

        shared = None
        if share:
            from recbole_blairclip.data.dataset import create_dataset
            from recbole_blairclip.registry import get_model

            with _driver_isolation(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                shared = create_dataset(config, get_model(config["model"]))
        setup = {"model": config["model"], "dataset": config["dataset"], "config_files": plan["config_files"],
                 "config_dict": plan["base"], "cpus_per_trial": cpus_per_trial}
        trainable = ray_tune.with_parameters(run_trial, setup=setup, dataset=shared)  # one object-store copy
        trainable = ray_tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        tuner = _tuner(plan, trainable, restoring, retry_failed, _scheduler(plan, scheduler, grace_period,
                       reduction_factor), samples, max_concurrent_trials, verbose)
        with _ray_console(verbose):
            results = tuner.fit()

        records, epochs = report.collect_trials(results, param_names, plan["mode"],
                                                report.saved_statuses(plan["experiment_path"]))
        # Ctrl-C: a trial was running, or the search had not created all its trials yet
        interrupted = (any(r["status"] == report.STATUS_UNFINISHED for r in records)
                       or len(records) < samples * grid_size(plan["space"]))
        files = {name: os.path.join(out, name.replace("_", ".")) for name in ("trials_csv", "trials_md", "epochs_csv")}
        report.write_atomic(files["trials_csv"], report.trials_csv(records, param_names))
        title = f"Ray Tune search: {config['model']} on {config['dataset']}, valid {plan['metric']} ({plan['mode']})"
        report.write_atomic(files["trials_md"], report.trials_markdown(records, param_names, plan["metric"], title))
        report.write_atomic(files["epochs_csv"], report.epochs_csv(epochs))

        best, test = report.best_record(records), None
        if best is not None:
            params = {name: best[name] for name in param_names}
            files["best_config"] = os.path.join(out, "best_config.yaml")
            report.write_atomic(files["best_config"], report.best_config_yaml(
                config["model"], config["dataset"], plan["config_files"], plan["base"], params, plan["metric"],
                best["best_valid"]))
            if test_best and not interrupted:
                test = _test_best(plan, best, params, files["best_config"], cpus_per_trial, gpus_per_trial)
                files["best_test"] = os.path.join(out, "best_test.json")
                report.write_atomic(files["best_test"], json.dumps(test, indent=2) + "\n")
        return {
            "out": out,
            "metric": plan["metric"],
            "mode": plan["mode"],
            "trials": records,
            "epochs": epochs,
            "best": best,
            "test": test,
            "interrupted": interrupted,
            "shared_dataset": shared is not None,
            "cluster": cluster,
            "experiment_path": plan["experiment_path"],
            "files": files,
        }
    finally:
        if started:
            import ray

            ray.shutdown()


__all__ = ["tune", "connect", "dataset_keys"]
