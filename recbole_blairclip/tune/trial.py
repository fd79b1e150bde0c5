"""What runs inside Ray's worker processes: one trial, and the best configuration's test run.

A trial builds the plugin's Config (run config files < base ``config_dict`` < the sampled values), trains
with RecBole's trainer through :mod:`recbole_blairclip.quick_start`'s building blocks, and reports the
**validation** metrics to Ray after every validation (``ray.tune.report``, Ray >= 2.40; through the protocol
trainer's :class:`~recbole_blairclip.evaluation.trainer.TrainerHooks`). The test set is never evaluated in a trial. RecBole's log goes to ``<trial folder>/log/``; its console output is cut
to warnings.
"""
import logging
import warnings

from recbole_blairclip.evaluation.trainer import TrainerHooks
from recbole_blairclip.io import json_ready

FINISHED_KEY = "trial_finished"  # True in the last report of a trial that ran to its end


def _device_keys(gpu_ids):
    # RecBole turns gpu_id into CUDA_VISIBLE_DEVICES: pass the physical ids Ray assigned to this worker
    return {"gpu_id": ",".join(str(g) for g in gpu_ids), "use_gpu": bool(gpu_ids)}


def trial_config(setup, params, output_dir, gpu_ids=()):
    """The plugin Config of one trial: run config files < base config_dict < sampled params."""
    from recbole_blairclip.quick_start import make_config

    config_dict = dict(setup["config_dict"])
    config_dict.update(json_ready(params))
    config_dict.update(output_dir=output_dir, show_progress=False, **_device_keys(gpu_ids))
    return make_config(setup["model"], setup["dataset"], setup["config_files"], config_dict)


def _loaders(config, dataset=None):
    """Train and valid loaders as :func:`recbole_blairclip.quick_start.prepare` builds them (the shared
    evaluation protocol attached), from the driver's shared Dataset when there is one."""
    from recbole_blairclip.quick_start import prepare

    _, train_data, valid_data, _ = prepare(config, dataset)
    return train_data, valid_data


class ValidationReporter(TrainerHooks):
    """Reports every validation to Ray Tune: ``valid_score``, ``best_valid_score``, ``epoch``, ``valid_<metric>``
    for every metric, and ``trial_finished`` on a trial's last validation.

    The hook keeps each validation's metrics; RecBole's ``fit(callback_fn=reporter)`` calls it after its
    early-stopping bookkeeping, where the report is made.
    """

    def __init__(self, report_fn, bigger):
        self.report_fn, self.bigger = report_fn, bigger
        self.best = None
        self.result = {}
        self.trainer = None

    def on_valid(self, trainer, seconds, score, result):
        self.trainer, self.result = trainer, result or {}

    def __call__(self, epoch_idx, valid_score):
        trainer = self.trainer
        score = float(valid_score)
        if self.best is None or (score > self.best if self.bigger else score < self.best):
            self.best = score
        metrics = {"valid_score": score, "best_valid_score": self.best, "epoch": epoch_idx + 1}
        metrics.update({f"valid_{key}": float(value) for key, value in self.result.items()})
        early_stop = trainer.cur_step > trainer.stopping_step  # RecBole ends training after this callback
        # the last validation: a scheduler that stops the trial now (ASHA at max_t) ends a complete run
        metrics[FINISHED_KEY] = bool(early_stop or epoch_idx + 1 + trainer.eval_step > trainer.epochs)
        self.report_fn(metrics)


def run_trial(params, setup=None, dataset=None):
    """Ray Tune function trainable: train one configuration, report validation metrics per validation.

    ``setup``: model, dataset, config_files, config_dict, cpus_per_trial. ``dataset``: the driver's
    RecBole Dataset shared through the object store, or None to read it here.
    """
    import ray
    import torch
    from ray import tune
    from recbole.utils import init_seed

    from recbole_blairclip.quick_start import build_model, build_trainer, init_logging

    warnings.filterwarnings("ignore")  # RecBole / torch deprecation noise; errors still raise
    torch.set_num_threads(max(1, int(setup["cpus_per_trial"])))
    context = tune.get_context()
    config = trial_config(setup, params, context.get_trial_dir(), ray.get_gpu_ids())
    init_seed(config["seed"], config["reproducibility"])
    init_logging(config, console_level=logging.WARNING)  # quiet trials; the file keeps everything
    logger = logging.getLogger()
    logger.info(f"Ray Tune trial {context.get_trial_id()}: {json_ready(params)}")
    logger.info(config)
    train_data, valid_data = _loaders(config, dataset)
    model = build_model(config, train_data)
    logger.info(model)
    reporter = ValidationReporter(tune.report, bool(config["valid_metric_bigger"]))
    trainer = build_trainer(config, model, hooks=[reporter])
    trainer.fit(train_data, valid_data, saved=False, show_progress=False, callback_fn=reporter)


def final_run(model, dataset, config_files, config_dict):
    """Train and test one configuration with :func:`recbole_blairclip.quick_start.run` (a Ray task)."""
    import ray

    from recbole_blairclip.quick_start import run

    warnings.filterwarnings("ignore")
    config_dict = dict(config_dict, **_device_keys(ray.get_gpu_ids()))
    return run(model, dataset, config_file_list=config_files, config_dict=config_dict, saved=True)


__all__ = ["run_trial", "final_run", "trial_config", "ValidationReporter", "FINISHED_KEY"]
