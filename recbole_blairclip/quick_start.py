"""Train and test one model: config -> dataset -> model -> train -> evaluate.

Mirrors ``recbole.quick_start.run`` / ``run_recbole`` with four differences: models resolve through the
plugin registry (plugin names first, then RecBole's), RecBole's ``log/``, ``log_tensorboard/`` and
``saved/`` go under the config key ``output_dir``, the best checkpoint is reloaded for the test score
on torch >= 2.6 (see :func:`recbole_blairclip.compat.load_recbole_checkpoint`), and validation and test
use the shared evaluation protocol for every model (:mod:`recbole_blairclip.evaluation`: same candidates,
``auc``, cold-start and warm views).
"""
import contextlib
import logging
import os
import time
from collections.abc import Mapping

import torch
from recbole.data import data_preparation
from recbole.utils import get_trainer, init_logger, init_seed, set_color

from recbole_blairclip.compat import load_recbole_checkpoint
from recbole_blairclip.config import Config
from recbole_blairclip.data.dataset import check_dataset_files, create_dataset
from recbole_blairclip.evaluation.protocol import attach_protocol
from recbole_blairclip.evaluation.ranks import write_ranks
from recbole_blairclip.evaluation.trainer import protocol_trainer_class
from recbole_blairclip.registry import get_model

_OWN_HANDLERS = []  # root-logger handlers the last run added (removed before the next run)


@contextlib.contextmanager
def _working_dir(path):
    """RecBole writes ./log and ./log_tensorboard relative to the current directory: point it at path."""
    os.makedirs(path, exist_ok=True)
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def init_logging(config, console_level=None):
    """RecBole's logger for one run: the log file under ``<output_dir>/log/<model>/``.

    RecBole's ``init_logger`` relies on ``logging.basicConfig``, which does nothing when the root logger
    already has handlers (pytest, Ray, a notebook): those are set aside while it runs and put back after.
    The handlers of the previous run in this process are closed first. ``console_level`` (e.g.
    ``logging.WARNING``) quiets RecBole's console output; the file keeps everything.
    """
    root = logging.getLogger()
    for handler in _OWN_HANDLERS:
        root.removeHandler(handler)
        handler.close()
    _OWN_HANDLERS.clear()
    others = list(root.handlers)
    for handler in others:
        root.removeHandler(handler)
    try:
        with _working_dir(config["output_dir"]):  # RecBole names ./log/<model>/... relative to the cwd
            init_logger(config)
    finally:
        _OWN_HANDLERS.extend(root.handlers)
        for handler in others:
            root.addHandler(handler)
    if console_level is not None:
        for handler in _OWN_HANDLERS:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(console_level)
    return root


def to_floats(result):
    """RecBole returns numpy scalars in OrderedDicts; turn them into plain floats (JSON-ready)."""
    if result is None:
        return None
    if isinstance(result, Mapping):
        return {key: to_floats(value) for key, value in result.items()}
    return float(result)


# where a run writes (RecBole's log/ and log_tensorboard/ are put under output_dir by init_logging / build_trainer)
OUTPUT_KEYS = ("output_dir", "checkpoint_dir")


def make_config(model, dataset, config_file_list=None, config_dict=None, cmd_args=None):
    """The plugin Config with ``output_dir`` and ``checkpoint_dir`` made absolute. ``cmd_args``: command-line
    ``--key=value`` overrides (highest priority), as a list; sys.argv is never read."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict,
                    cmd_args=cmd_args)
    for key in OUTPUT_KEYS:
        config[key] = os.path.abspath(config[key])
    if config["ranks_file"]:
        config["ranks_file"] = os.path.abspath(os.path.expanduser(str(config["ranks_file"])))
    return config


def prepare(config, dataset=None):
    """Build the dataset and the train / valid / test dataloaders for ``config``, with the shared
    evaluation protocol (earlier items, training items) attached to the valid and test loaders.

    ``dataset``: an already built dataset to reuse (e.g. shared between Ray Tune trials); it is given
    this ``config``, whose dataset keys must match the ones it was built with.
    """
    if dataset is None:
        dataset = create_dataset(config, get_model(config["model"]))
    else:
        dataset.config = config
    train_data, valid_data, test_data = data_preparation(config, dataset)
    attach_protocol(config, train_data, valid_data, test_data)
    return dataset, train_data, valid_data, test_data


def build_model(config, train_data):
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    return get_model(config["model"])(config, train_data._dataset).to(config["device"])


def build_trainer(config, model, hooks=()):
    """RecBole's trainer for the model with the shared evaluation protocol mixed in
    (:func:`recbole_blairclip.evaluation.trainer.protocol_trainer_class`), its tensorboard writer under
    ``output_dir/log_tensorboard``; ``hooks``: :class:`~recbole_blairclip.evaluation.trainer.TrainerHooks`
    called after every training epoch and validation."""
    from torch.utils.tensorboard import SummaryWriter

    trainer_class = protocol_trainer_class(get_trainer(config["MODEL_TYPE"], config["model"]))
    with _working_dir(config["output_dir"]):  # RecBole names ./log_tensorboard/<run> relative to cwd
        trainer = trainer_class(config, model, hooks=hooks) if hooks else trainer_class(config, model)
        log_dir = os.path.abspath(trainer.tensorboard.log_dir)
    trainer.tensorboard.close()  # it would write relative to wherever the process stands later
    trainer.tensorboard = SummaryWriter(log_dir)
    return trainer


def load_best(trainer):
    """Reload the best checkpoint the trainer saved into its model."""
    checkpoint = load_recbole_checkpoint(trainer.saved_model_file, map_location=trainer.device)
    trainer.model.load_state_dict(checkpoint["state_dict"])
    trainer.model.load_other_parameter(checkpoint.get("other_parameter"))


def run_single(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    callback_fn=None,
    queue=None,
    cmd_args=None,
    hooks=(),
):
    """One process: train ``model`` on ``dataset`` and test it. Returns plain floats (see :func:`run`)."""
    config = make_config(model, dataset, config_file_list, config_dict, cmd_args)
    check_dataset_files(config)  # fail before any log or checkpoint folder is made
    init_seed(config["seed"], config["reproducibility"])
    logger = init_logging(config)
    if cmd_args:
        logger.info(f"command line: {' '.join(cmd_args)}")
    logger.info(config)

    dataset_obj, train_data, valid_data, test_data = prepare(config)
    logger.info(dataset_obj)
    model_obj = build_model(config, train_data)
    logger.info(model_obj)
    trainer = build_trainer(config, model_obj, hooks)

    progress = {"best_epoch": None, "epochs": 0}

    def on_valid(epoch_idx, valid_score):
        progress["epochs"] = epoch_idx + 1
        if trainer.cur_step == 0:  # early stopping just recorded a new best
            progress["best_epoch"] = epoch_idx
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"], callback_fn=on_valid
    )
    fit_seconds = time.perf_counter() - start
    if saved and os.path.isfile(trainer.saved_model_file):
        load_best(trainer)
        logger.info(set_color("Loaded best model", "blue") + f": {trainer.saved_model_file}")
    start = time.perf_counter()
    trainer.keep_ranks = bool(config["ranks_file"]) and bool(config["single_spec"])  # DDP: each rank sees a shard
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=config["show_progress"])
    test_seconds = time.perf_counter() - start
    views = trainer.last_views or {}
    ranks_file = None
    if trainer.keep_ranks and trainer.last_ranks is not None:
        ranks_file = write_ranks(config["ranks_file"], trainer.last_ranks,
                                 {"model": config["model"], "dataset": config["dataset"], "phase": "test",
                                  "seed": config["seed"]})
        logger.info(set_color("test ranks", "yellow") + f": {ranks_file}")

    logger.info(set_color("best valid ", "yellow") + f": {to_floats(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {to_floats(test_result)}")
    if views:
        logger.info(set_color("test cold-start", "yellow")
                    + f" ({views['n_coldstart']} users): {to_floats(views['coldstart'])}")
        logger.info(set_color("test warm", "yellow") + f" ({views['n_warm']} users): {to_floats(views['warm'])}")
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": float(best_valid_score),
        "valid_score_bigger": bool(config["valid_metric_bigger"]),
        "best_valid_result": to_floats(best_valid_result),
        "test_result": to_floats(test_result),
        "test_result_coldstart": to_floats(views.get("coldstart")),
        "test_result_warm": to_floats(views.get("warm")),
        "n_test_users": views.get("n_users"),
        "n_test_coldstart": views.get("n_coldstart"),
        "n_test_warm": views.get("n_warm"),
        "best_epoch": progress["best_epoch"],
        "epochs": progress["epochs"],
        "fit_seconds": fit_seconds,
        "test_seconds": test_seconds,
        "n_params": int(sum(p.numel() for p in model_obj.parameters() if p.requires_grad)),
        "device": str(config["device"]),
        "checkpoint": trainer.saved_model_file if saved else None,
        "ranks_file": ranks_file,
        "log_file": next((h.baseFilename for h in _OWN_HANDLERS if hasattr(h, "baseFilename")), None),
    }
    if not config["single_spec"]:
        torch.distributed.destroy_process_group()
    if config["local_rank"] == 0 and queue is not None:
        queue.put(result)
    return result


def _run_rank(rank, model, dataset, config_file_list, config_dict, saved, queue, cmd_args):
    config_dict = dict(config_dict or {}, local_rank=rank)
    run_single(model, dataset, config_file_list, config_dict, saved=saved, queue=queue, cmd_args=cmd_args)


def run(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
    callback_fn=None,
    cmd_args=None,
    hooks=(),
):
    """Train and test ``model`` (a plugin or RecBole model name) on ``dataset``.

    Arguments follow ``recbole.quick_start.run``; ``nproc``/``world_size``/``ip``/``port``/``group_offset``
    start RecBole's distributed training. ``callback_fn(epoch_idx, valid_score)`` is called after every
    validation (single process only); ``hooks`` (:class:`~recbole_blairclip.evaluation.trainer.TrainerHooks`)
    after every training epoch and validation (single process only). ``cmd_args``: ``--key=value``
    overrides of the highest priority, as RecBole's script takes them (a list; sys.argv is never read).
    Returns a dict of plain Python values: ``best_valid_score``,
    ``best_valid_result``, ``test_result`` (metric -> float; the full-ranking per-user AUC is ``auc``),
    ``test_result_coldstart`` / ``test_result_warm`` (the same metrics on the test users whose target never
    occurs in training / on the others; None for an empty group or a distributed run), ``n_test_users``,
    ``n_test_coldstart``, ``n_test_warm``, and ``best_epoch``, ``epochs``, ``fit_seconds``,
    ``test_seconds``, ``n_params``, ``device``, ``checkpoint``, ``log_file``, and ``ranks_file`` (the
    test's per-user ranks as Parquet when the config key ``ranks_file`` names a path, else None; see
    :mod:`recbole_blairclip.evaluation.ranks`).
    """
    if nproc == 1 and world_size <= 0:
        return run_single(model, dataset, config_file_list, config_dict, saved=saved, callback_fn=callback_fn,
                          cmd_args=cmd_args, hooks=hooks)
    import torch.multiprocessing as mp

    world_size = nproc if world_size == -1 else world_size
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = dict(config_dict or {})
    config_dict.update(world_size=world_size, ip=ip, port=port, nproc=nproc, offset=group_offset)
    mp.spawn(
        _run_rank,
        args=(model, dataset, config_file_list, config_dict, saved, queue, cmd_args),
        nprocs=nproc,
        join=True,
    )
    return None if queue.empty() else queue.get()
