"""TFIDF: a lexical content baseline. Item text -> TF-IDF (scikit-learn), user profile from the history,
cosine score against every item.

A non-trainable RecBole model in the Pop / ItemKNN pattern: ``type = ModelType.TRADITIONAL`` (one pass
through RecBole's TraditionalTrainer), a dummy parameter for the optimizer, a zero loss that has a
gradient, and all state in buffers (saved with the checkpoint, moved with ``.to(device)``).

Scoring is :class:`~recbole_blairclip.model.lexical.LexicalIndex` (the item matrix as CSR buffers, unit
profiles, cosines by a head GEMM, a mid sparse x dense and a rare sparse x sparse product on CPU
(``lexical_cpu``), SpMM on CUDA; memory O(non-zeros)).

The history of a user is the ``item_id_list`` / ``item_length`` of the evaluation row when present (the
shared evaluation protocol hands every earlier interaction to models with ``uses_eval_history``: train
items, plus the validation item at test time, as sequential models see them); otherwise the user's
training interactions stored at construction time, in time order.

Items with empty text have a zero vector and score 0 (never NaN); so does every item for a user whose
history has no text.
"""
import os

import numpy as np
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import FeatureSource, FeatureType, InputType, ModelType

from recbole_blairclip.errors import ConfigError, DatasetError
from recbole_blairclip.io import field_name, read_atomic_header
from recbole_blairclip.model.lexical import PROFILES, LexicalIndex, fit_item_matrix, history_weights


def _item_file_columns(dataset):
    """Column names in the dataset's ``.item`` file header (empty when there is no such file)."""
    path = os.path.join(dataset.dataset_path, f"{dataset.dataset_name}.item")
    if not os.path.isfile(path):
        return path, []
    return path, [field_name(field) for field in read_atomic_header(path, DatasetError)]


def item_documents(dataset, fields):
    """One string per item id (row 0 = padding = ""): the tokens of ``fields`` joined by spaces.

    RecBole stores ``token_seq`` fields as padded id matrices; ``dataset.field2id_token`` maps the ids
    back to the original tokens. Raises DatasetError naming the missing field and the fields that exist.
    """
    item_fields = [] if dataset.item_feat is None else list(dataset.item_feat.columns)
    columns = []
    for field in fields:
        loaded = (
            dataset.item_feat is not None
            and field in dataset.item_feat.columns
            and dataset.field2source.get(field) == FeatureSource.ITEM
        )
        if not loaded:
            path, in_file = _item_file_columns(dataset)
            where = f"columns in {path}: {in_file}" if in_file else f"no item file {path}"
            hint = (
                f"add {field!r} to load_col: item"
                if field in in_file
                else "convert the dataset with item text, or set text_fields to a field that exists"
            )
            raise DatasetError(
                f"TFIDF needs the item text field {field!r} (config text_fields={list(fields)}), but dataset "
                f"{dataset.dataset_name!r} has no such item field. Item fields loaded: {item_fields}; "
                f"{where}. Fix: {hint}."
            )
        ftype = dataset.field2type[field]
        if ftype not in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
            raise DatasetError(
                f"TFIDF text field {field!r} has type {ftype.value}; it needs a token or token_seq field "
                f"(item fields: {item_fields})"
            )
        ids = dataset.item_feat[field].cpu().numpy()
        tokens = np.asarray(dataset.field2id_token[field], dtype=object)
        if ftype == FeatureType.TOKEN:
            columns.append(["" if i == 0 else str(tokens[i]) for i in ids])
        else:
            columns.append([" ".join(tokens[row[row > 0]]) for row in ids])
    docs = [" ".join(part for part in parts if part) for parts in zip(*columns)]
    docs[0] = ""  # padding item
    return docs


class TFIDF(GeneralRecommender):
    """TF-IDF item vectors, a history profile (mean, recency-weighted or last item), cosine scores."""

    input_type = InputType.POINTWISE
    type = ModelType.TRADITIONAL
    uses_eval_history = True  # the evaluation protocol passes every earlier item as item_id_list

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        fields = config["text_fields"] or []
        self.text_fields = [fields] if isinstance(fields, str) else list(fields)
        if not self.text_fields:
            raise ConfigError("TFIDF needs at least one item text field in text_fields (e.g. [item_text])")
        self.user_profile = config["user_profile"]
        if self.user_profile not in PROFILES:
            raise ConfigError(f"user_profile must be one of {list(PROFILES)}, got {self.user_profile!r}")
        self.recency_decay = float(config["recency_decay"])
        if not 0.0 < self.recency_decay <= 1.0:
            raise ConfigError(f"recency_decay must be in (0, 1], got {self.recency_decay}")
        self.ITEM_SEQ = self.ITEM_ID + config["LIST_SUFFIX"]
        self.ITEM_SEQ_LEN = config["ITEM_LIST_LENGTH_FIELD"]
        self.TIME = config["TIME_FIELD"]
        self.fake_loss = torch.nn.Parameter(torch.zeros(1))

        ptr, items = self._training_histories(dataset)
        self.register_buffer("user_ptr", ptr)
        self.register_buffer("user_items", items)
        lengths = torch.diff(ptr)
        mean_history = float(lengths[lengths > 0].float().mean()) if (lengths > 0).any() else 1.0
        docs = item_documents(dataset, self.text_fields)
        self.lexical = LexicalIndex(fit_item_matrix(docs, config, source=f"TFIDF text_fields {self.text_fields}"),
                                    mean_history)

    # ----------------------------------------------------------------------------------------- build
    def _training_histories(self, dataset):
        """Every user's training items in time order, as a CSR pair (pointer, items)."""
        inter = dataset.inter_feat
        users = inter[self.USER_ID].cpu().numpy()
        items = inter[self.ITEM_ID].cpu().numpy()
        times = inter[self.TIME].cpu().numpy() if self.TIME in inter.columns else np.zeros(len(users))
        order = np.lexsort((np.arange(len(users)), times, users))
        counts = np.bincount(users, minlength=self.n_users)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return torch.from_numpy(ptr), torch.from_numpy(items[order].astype(np.int64))

    def extra_repr(self):
        return f"fields={self.text_fields}, profile={self.user_profile}"

    # --------------------------------------------------------------------------------------- helpers
    def _stored_history(self, users):
        """Padded training histories (oldest first, 0 = padding) and their lengths for ``users``."""
        starts, ends = self.user_ptr[users], self.user_ptr[users + 1]
        lengths = ends - starts
        width = max(int(lengths.max()) if len(users) else 0, 1)
        offsets = torch.arange(width, device=users.device)
        valid = offsets[None, :] < lengths[:, None]
        index = (starts[:, None] + offsets[None, :]).clamp_max(max(len(self.user_items) - 1, 0))
        hist = self.user_items[index] if len(self.user_items) else torch.zeros_like(index)
        return torch.where(valid, hist, torch.zeros_like(hist)), lengths

    def history(self, interaction):
        """(item_id_list, item_length) of the interaction, else the stored training history."""
        if self.ITEM_SEQ in interaction.columns:
            hist = interaction[self.ITEM_SEQ]
            lengths = interaction[self.ITEM_SEQ_LEN] if self.ITEM_SEQ_LEN in interaction.columns else (hist > 0).sum(1)
            return hist, lengths
        return self._stored_history(interaction[self.USER_ID])

    def history_weights(self, hist, lengths):
        """Weight of each history position (:func:`~recbole_blairclip.model.lexical.history_weights`)."""
        return history_weights(hist, lengths, self.user_profile, self.recency_decay)

    # ------------------------------------------------------------------------------- RecBole model API
    def forward(self):
        pass

    def calculate_loss(self, interaction):
        """Nothing to learn: a zero loss that still has a gradient (RecBole's trainer calls backward)."""
        return self.fake_loss * 0.0

    def full_sort_predict(self, interaction):
        hist, lengths = self.history(interaction)
        weights = self.history_weights(hist, lengths)
        return self.lexical.scores(hist, weights).view(-1)

    def predict(self, interaction):
        items = interaction[self.ITEM_ID]
        scores = self.full_sort_predict(interaction).view(len(items), -1)
        return scores.gather(1, items.to(scores.device)[:, None]).squeeze(1)
