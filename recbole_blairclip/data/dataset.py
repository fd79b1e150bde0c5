"""Dataset construction: file checks with clear errors, and a sequential dataset that trims histories.

RecBole's ``seq_len`` keeps the *first* tokens of a list; a history must keep its *most recent* items,
so :class:`RecentHistoryDataset` trims ``item_id_list`` to the last ``MAX_ITEM_LIST_LENGTH`` items
after loading (longer lists would overflow SASRec's position embedding).
"""
import importlib
import os

from recbole.data.dataset import SequentialDataset
from recbole.utils import ModelType

from recbole_blairclip.errors import DatasetError


class RecentHistoryDataset(SequentialDataset):
    """RecBole's SequentialDataset reading leave-one-out files, histories cut to the most recent items."""

    def _load_inter_feat(self, token, dataset_path):
        super()._load_inter_feat(token, dataset_path)
        list_field = self.iid_field + self.config["LIST_SUFFIX"]
        max_len = self.config["MAX_ITEM_LIST_LENGTH"]
        if list_field in self.inter_feat and max_len:
            self.inter_feat[list_field] = [
                seq[-max_len:] if len(seq) > max_len else seq for seq in self.inter_feat[list_field].values
            ]
            self.field2seqlen[list_field] = min(self.field2seqlen[list_field], max_len)


def required_files(config):
    """The atomic files RecBole will read for this config (interaction files only)."""
    name = config["dataset"]
    parts = config["benchmark_filename"]
    if parts:
        return [f"{name}.{part}.inter" for part in parts]
    return [f"{name}.inter"]


def check_dataset_files(config):
    """Raise DatasetError naming the folder searched when the dataset or one of its files is missing."""
    folder = os.path.abspath(config["data_path"])
    if not os.path.isdir(folder):
        raise DatasetError(
            f"dataset {config['dataset']!r} not found: searched {folder}. "
            "Convert one with `blairclip convert`, or point --data_path at the folder holding it."
        )
    missing = [f for f in required_files(config) if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DatasetError(
            f"dataset folder {folder} lacks {', '.join(missing)} "
            f"(benchmark_filename={config['benchmark_filename']}); re-run `blairclip convert` for it."
        )


def dataset_class_for(config, model_class):
    """The dataset class a model needs: its own ``dataset_class``, RecBole's ``<Model>Dataset``, or by type."""
    own = getattr(model_class, "dataset_class", None)
    if own is not None:
        return own
    recbole_datasets = importlib.import_module("recbole.data.dataset")
    if hasattr(recbole_datasets, config["model"] + "Dataset"):
        return getattr(recbole_datasets, config["model"] + "Dataset")
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        return RecentHistoryDataset
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        return recbole_datasets.KnowledgeBasedDataset
    return recbole_datasets.Dataset


def create_dataset(config, model_class):
    """Check the files, then build the dataset the model needs (never a stale pickled copy)."""
    check_dataset_files(config)
    return dataset_class_for(config, model_class)(config)


__all__ = ["RecentHistoryDataset", "check_dataset_files", "create_dataset", "dataset_class_for"]
