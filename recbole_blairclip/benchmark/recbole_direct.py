"""RecBole run directly on a converted dataset: the reference the plugin's numbers are checked against.

:func:`run_direct` follows ``recbole.quick_start.run_recbole`` step by step with RecBole's own classes
only (``recbole.config.Config``, ``recbole.data.create_dataset`` / ``data_preparation``, RecBole's model
and trainer, RecBole's candidates and metrics): no plugin Config, dataset, trainer or evaluation. Two
steps differ, neither touching what is measured: RecBole's FLOPs count is skipped (it runs the model
once on a copy, which draws random numbers for dropout and would shift every later draw), and the best
checkpoint is reloaded through :func:`recbole_blairclip.compat.load_recbole_checkpoint` (RecBole's own
``torch.load`` call fails on torch >= 2.6).

:func:`protocol_config` is the config both sides get for a leave-one-out dataset written by
``blairclip convert``: RecBole reads the split files through ``benchmark_filename`` (general models
``[train, valid, test]``, sequential models ``[train_seq, valid, test]`` with ``item_id_list``).

RecBole's own protocol is: general models rank every item but the user's earlier ones (training items at
validation, training + validation items at test), sequential models rank every item. The plugin's
``mask_history: true`` is RecBole's protocol for general models and ``mask_history: false`` for sequential
ones (see :func:`recbole_protocol_mask`).
"""

import os

from recbole.utils import ModelType

from recbole_blairclip.quick_start import _working_dir

GENERAL_FILES = {"benchmark_filename": ["train", "valid", "test"],
                 "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}}
SEQUENTIAL_FILES = {"benchmark_filename": ["train_seq", "valid", "test"],
                    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp", "item_id_list"]},
                    "alias_of_item_id": ["item_id_list"],
                    "train_neg_sample_args": None}  # CE loss: RecBole's leaderboard yaml sets it to ~


def model_type(model):
    """RecBole's ModelType of a built-in model name."""
    from recbole.utils import get_model

    return get_model(model).type


def protocol_config(model, data_path, **overrides):
    """The shared config of a leave-one-out dataset for ``model`` (RecBole built-in), plus ``overrides``."""
    config = {
        "data_path": os.path.abspath(data_path),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "RATING_FIELD": "rating", "TIME_FIELD": "timestamp",
        "eval_args": {"order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG", "MRR", "GAUC"], "topk": [10, 50], "valid_metric": "NDCG@10",
        "reproducibility": True, "show_progress": False,
        "metric_decimal_place": 12,  # RecBole rounds to 4 places by default: compare the real numbers
    }
    sequential = model_type(model) == ModelType.SEQUENTIAL
    config.update(SEQUENTIAL_FILES if sequential else GENERAL_FILES)
    config["eval_batch_size"] = 256 if sequential else 16777216
    config.update(overrides)
    return config


def recbole_protocol_mask(model):
    """The plugin's ``mask_history`` value that equals RecBole's own candidates for ``model``."""
    return model_type(model) != ModelType.SEQUENTIAL



def run_direct(model, dataset, config_dict, work_dir):
    """Train and test ``model`` on ``dataset`` with RecBole alone; returns ``{best_valid_result, test_result,
    best_valid_score}`` as plain floats (metric names as RecBole prints them: ``recall@10``, ``gauc``)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_blairclip.compat import load_recbole_checkpoint

    work_dir = os.path.abspath(work_dir)
    config_dict = dict(config_dict, checkpoint_dir=os.path.join(work_dir, "saved"))
    with _working_dir(work_dir):  # RecBole writes ./log_tensorboard relative to the current folder
        config = Config(model=model, dataset=dataset, config_dict=config_dict)
        init_seed(config["seed"], config["reproducibility"])
        data = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, data)
        init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
        net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
        checkpoint = load_recbole_checkpoint(trainer.saved_model_file, map_location=trainer.device)
        net.load_state_dict(checkpoint["state_dict"])
        net.load_other_parameter(checkpoint.get("other_parameter"))
        test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    floats = lambda d: {k: float(v) for k, v in (d or {}).items()}  # noqa: E731
    return {"best_valid_score": float(best_score), "best_valid_result": floats(best_valid), "test_result": floats(test)}
