"""The features-aware sequential dataset of BLaIRCLIP.

:class:`MultimodalDataset` is RecBole's sequential dataset (histories trimmed to the most recent items)
plus the item features next to the atomic files, verified with
:func:`recbole_blairclip.features.store.load_features` (ids, ``.item`` hash, shapes, NaN rows) and
re-ordered to RecBole's internal item ids (row 0 = padding, a zero row without image). Every problem is
a :class:`~recbole_blairclip.errors.DatasetError` raised while the dataset is built, before training.

It also builds the training rows BLaIRCLIP learns from (``train_rows``):

* ``prefix``: RecBole's own rows, one per training prefix (what SASRec reads);
* ``user``: one row per user, the longest training prefix and its target; the model computes the
  next-item loss at every position of it. Users with more training targets than ``MAX_ITEM_LIST_LENGTH``
  keep one row per window of that many targets, so every target is still trained on.
"""
import os

import numpy as np
import torch

from recbole_blairclip.data.dataset import RecentHistoryDataset
from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.features.store import load_features, read_items

TRAIN_ROWS = ("user", "prefix")


class MultimodalDataset(RecentHistoryDataset):
    """RecBole sequential dataset with text / image features aligned to internal item ids.

    Attributes (after construction): ``text_features`` float32 tensor [n_items, d_text] (None in
    ``text_mode: finetune`` without features), ``image_features`` [n_items, d_image] or None,
    ``image_mask`` bool [n_items] or None, ``item_texts`` list of str per internal id (finetune mode or a lexical channel),
    ``features_meta`` the parsed features.json.
    """

    # config keys that change what this dataset builds: trials that vary one cannot share a built dataset
    config_keys = ("text_features", "image_features", "use_image", "text_mode", "train_rows", "text_field",
                   "lexical_weight")

    def __init__(self, config):
        self.text_tag = config["text_features"]
        self.image_tag = config["image_features"]
        self.use_image = bool(config["use_image"])
        self.text_mode = config["text_mode"] or "frozen"
        self.read_texts = self.text_mode == "finetune" or bool(config["lexical_weight"])  # the model reads them
        self.train_rows = config["train_rows"] or "prefix"
        if self.train_rows not in TRAIN_ROWS:
            raise ConfigError(f"train_rows '{self.train_rows}' is unknown; use one of {', '.join(TRAIN_ROWS)}")
        if self.text_mode not in ("frozen", "finetune"):
            raise ConfigError(f"text_mode '{self.text_mode}' is unknown; use frozen or finetune")
        super().__init__(config)
        self._load_item_features()

    # ------------------------------------------------------------------ features
    def _dataset_dir(self):
        return self.config["data_path"]

    def _load_item_features(self):
        folder = self._dataset_dir()
        need_text = self.text_mode == "frozen"
        json_path = os.path.join(folder, f"{self.dataset_name}.features.json")
        if not need_text and not self.use_image and not os.path.isfile(json_path):
            features = None
        else:
            features = load_features(folder, self.dataset_name, require_text=need_text, require_image=self.use_image)
        self.features_meta = features.meta if features is not None else None
        tokens = list(self.field2id_token[self.iid_field])
        text = image = mask = None
        if features is not None:
            self._check_tag(features, "text", self.text_tag, json_path, need_text)
            if self.use_image:
                self._check_tag(features, "image", self.image_tag, json_path, True)
            text, image, mask = features.aligned(tokens)
        self.text_features = torch.from_numpy(np.ascontiguousarray(text, dtype=np.float32)) \
            if (text is not None and need_text) else None
        if self.use_image:
            self.image_features = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
            self.image_mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
        else:
            self.image_features = self.image_mask = None
        self.item_texts = self._read_item_texts(tokens) if self.read_texts else None

    def _check_tag(self, features, section, wanted, json_path, required):
        info = features.meta.get(section) or {}
        have = info.get("tag")
        if required and wanted and have != wanted:
            key = "text_features" if section == "text" else "image_features"
            raise DatasetError(
                f"{json_path}: the {section} features were extracted with encoder tag '{have}', but the config asks "
                f"for {key}: {wanted}; set {key}: {have} or extract features with that encoder "
                f"(`blairclip features --dataset {self._dataset_dir()}`)"
            )

    def _read_item_texts(self, tokens):
        table = read_items(os.path.join(self._dataset_dir(), f"{self.dataset_name}.item"))
        text_of = dict(zip(table.item_ids, table.column(self.config["text_field"] or "item_text")))
        return [text_of.get(token, "") if k else "" for k, token in enumerate(tokens)]

    # ------------------------------------------------------------------ training rows
    def build(self):
        datasets = super().build()
        if self.train_rows == "user" and self.benchmark_filename_list is not None:
            train = datasets[0]
            train.inter_feat = train.inter_feat[self.user_row_index(train.inter_feat)]
        return datasets

    def user_row_index(self, inter_feat):
        """Rows of the per-prefix training table kept in ``user`` mode (sorted by user, then prefix length).

        A user with ``n`` prefix rows (k = 1..n earlier items) keeps rows ``k = n, n - L, n - 2L, ...``
        (L = MAX_ITEM_LIST_LENGTH): each kept row's history covers the targets of the L prefixes before it.
        """
        users = inter_feat[self.uid_field].numpy()
        times = inter_feat[self.time_field].numpy() if self.time_field in inter_feat.interaction else np.zeros(len(users))
        order = np.lexsort((np.arange(len(users)), times, users))
        sorted_users = users[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
        counts = np.diff(np.r_[starts, len(users)])
        rank = np.arange(len(users)) - np.repeat(starts, counts)  # 0-based prefix index within the user
        from_end = np.repeat(counts, counts) - 1 - rank
        keep = from_end % max(int(self.max_item_list_len), 1) == 0
        return torch.from_numpy(np.sort(order[keep]))


__all__ = ["MultimodalDataset", "TRAIN_ROWS"]
