"""BLaIRCLIP: a sequential recommender over items that are read (text) and seen (image).

References:
    Yupeng Hou, Jiacheng Li, Zhankui He, An Yan, Xiusi Chen, Julian McAuley. "Bridging Language and Items
    for Retrieval and Recommendation" (BLaIR), arXiv:2403.03952, 2024: the text tower, CLS pooling with
    the SimCSE MLP (``pooler_type``).
    Alec Radford et al. "Learning Transferable Visual Models From Natural Language Supervision" (CLIP),
    ICML 2021: image features, the symmetric contrastive loss and its learnable temperature.
    Wang-Cheng Kang, Julian McAuley. "Self-Attentive Sequential Recommendation" (SASRec), ICDM 2018:
    the causal transformer sequence encoder and the full-catalogue next-item cross-entropy.

Item embedding = fusion(text_projection(pooled text), image_projection(image feature)) [+ item-id
embedding]; items without an image use the text alone, so every item, even one never seen in
training, has a content embedding. User = sequence encoder over the history's item embeddings;
score = dot product with every item [+ ``lexical_scale`` x the TF-IDF cosine of the history's words with the
item's (``lexical_weight`` > 0: exact words such as part numbers and brands, which pooled sentence embeddings
blur; :class:`~recbole_blairclip.model.lexical.LexicalIndex`, a constant input whose weight is learned)]. Loss = next-item cross-entropy + ``clip_weight`` x CLIP loss
between the text and image embeddings of the batch's items, returned as a tuple so RecBole logs both.

Training rows (``train_rows``, built by :class:`~recbole_blairclip.data.multimodal.MultimodalDataset`):
``user`` gives one row per user and the loss is taken at every position of it (causal: position j only
sees items 0..j), in length-sorted groups trimmed to their longest sequence; ``prefix`` is RecBole's
one row per prefix. Evaluation is the same either way.
"""
import math
from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_blairclip.data.multimodal import MultimodalDataset
from recbole_blairclip.errors import ConfigError
from recbole_blairclip.model.item_tower import ItemTower
from recbole_blairclip.model.layers import SEQ_ENCODERS, MeanSeqEncoder, TransformerSeqEncoder
from recbole_blairclip.model.lexical import PROFILES, LexicalIndex, fit_item_matrix, history_weights
from recbole_blairclip.model.loss import clamp_logit_scale, clip_contrastive_loss

TrainingTable = namedtuple("TrainingTable", ["table", "text", "image", "has_image", "item_seq", "targets", "batch_rows",
                                             "has_id"])
TrainingTable.__doc__ = (
    "One training batch's item table: table / text / image [rows, d] (image None without images), has_image "
    "[rows] (None without images), item_seq and targets remapped to table rows, batch_rows (the table rows of "
    "the batch's distinct items), has_id [rows] (the rows scored with their own id embedding; None: all or no ids).")


class BLaIRCLIP(SequentialRecommender):
    """BLaIR text tower + CLIP image features, contrastively aligned, ranking the next item (see module doc)."""

    input_type = InputType.POINTWISE
    dataset_class = MultimodalDataset

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        if not isinstance(dataset, MultimodalDataset):
            raise ConfigError("BLaIRCLIP needs its MultimodalDataset (BLaIRCLIP.dataset_class); "
                              "build the dataset with recbole_blairclip.data.dataset.create_dataset")
        # ---- configuration (every key read once, here)
        self.embedding_size = int(config["embedding_size"])
        self.text_mode = config["text_mode"]
        self.pooler_type = config["pooler_type"]
        self.fusion_mode = config["fusion"]
        self.use_image = bool(config["use_image"])
        self.use_item_id = bool(config["use_item_id"])
        self.item_id_dropout = float(config["item_id_dropout"] or 0.0)
        self.unseen_item_id = bool(config["unseen_item_id"] if config["unseen_item_id"] is not None else True)
        self.missing_id = bool(config["missing_id"])
        self.id_neighbours = int(config["id_neighbours"] or 0)
        self.clip_weight = float(config["clip_weight"])
        self.clip_max_items = int(config["clip_max_items"])
        self.seq_encoder_type = config["seq_encoder"]
        self.train_rows = config["train_rows"]
        self.length_groups = max(int(config["length_groups"]), 1)
        self.trim_batches = bool(config["trim_batches"])
        self.item_chunk_size = int(config["item_chunk_size"])
        self.lexical_weight = float(config["lexical_weight"] or 0.0)
        self.lexical_profile = config["lexical_profile"] or "mean"
        self.lexical_decay = float(config["lexical_decay"] if config["lexical_decay"] is not None else 0.7)
        self.cold_lexical_weight = float(config["cold_lexical_weight"] or 0.0)
        self.unseen_negatives = bool(config["unseen_negatives"] if config["unseen_negatives"] is not None else True)
        self.initializer_range = float(config["initializer_range"])
        temperature = float(config["temperature"])
        self.max_logit_scale = math.log(float(config["max_logit_scale"]))
        loss_type = config["loss_type"]
        n_layers, n_heads, inner_size = config["n_layers"], config["n_heads"], config["inner_size"]
        hidden_dropout, attn_dropout = config["hidden_dropout_prob"], config["attn_dropout_prob"]
        hidden_act, layer_norm_eps = config["hidden_act"], config["layer_norm_eps"]
        text_encoder, text_max_length = config["text_encoder"], config["text_max_length"]
        finetune_layers, text_batch_size = config["finetune_layers"], config["text_batch_size"]

        if loss_type != "CE":
            raise ConfigError(f"BLaIRCLIP trains with loss_type: CE (full-catalogue softmax), got {loss_type!r}")
        if self.seq_encoder_type not in SEQ_ENCODERS:
            raise ConfigError(f"seq_encoder '{self.seq_encoder_type}' is unknown; use one of {', '.join(SEQ_ENCODERS)}")
        if not 0.0 < temperature <= 1.0:
            raise ConfigError(f"temperature {temperature} must be in (0, 1]")
        if self.lexical_profile not in PROFILES:
            raise ConfigError(f"lexical_profile must be one of {list(PROFILES)}, got {self.lexical_profile!r}")
        if self.id_neighbours > 0 and not (self.use_item_id and self.text_mode == "frozen"):
            raise ConfigError("id_neighbours > 0 needs use_item_id: true and text_mode: frozen (neighbours by the "
                              "frozen text features); set id_neighbours: 0")
        if self.cold_lexical_weight > 0.0 and not self.use_item_id:
            raise ConfigError("cold_lexical_weight > 0 needs use_item_id: true (it weighs the items scored without "
                              "their id); set cold_lexical_weight: 0 or use_item_id: true")
        if (self.lexical_weight > 0.0 or self.cold_lexical_weight > 0.0) and self.text_mode != "frozen":
            raise ConfigError("lexical_weight / cold_lexical_weight > 0 need text_mode: frozen (the fine-tuned tower "
                              "trains on in-batch items only); set them to 0 or text_mode: frozen")
        if not self.unseen_negatives and self.text_mode != "frozen":
            raise ConfigError("unseen_negatives: false needs text_mode: frozen (the fine-tuned tower's softmax is "
                              "over in-batch items only, so there is no catalogue to leave items out of); set "
                              "unseen_negatives: true or text_mode: frozen")

        # ---- item tower (text, image, fusion, id) and the contrastive temperature
        text_tower = None
        if self.text_mode == "finetune":
            from recbole_blairclip.model.text_tower import FinetuneTextTower

            if not text_encoder:
                raise ConfigError("text_mode: finetune needs text_encoder: <folder, alias or hub id>")
            text_tower = FinetuneTextTower(text_encoder, dataset.item_texts, pooler_type=self.pooler_type,
                                           max_length=int(text_max_length), trainable_layers=int(finetune_layers),
                                           batch_size=int(text_batch_size))
        elif self.text_mode != "frozen":
            raise ConfigError(f"text_mode '{self.text_mode}' is unknown; use frozen or finetune")
        seen = self.training_items(dataset)
        self.item_tower = ItemTower(
            self.n_items, self.embedding_size, self.pooler_type, self.fusion_mode,
            text_features=dataset.text_features if text_tower is None else None, text_tower=text_tower,
            image_features=dataset.image_features if self.use_image else None,
            image_mask=dataset.image_mask if self.use_image else None, use_item_id=self.use_item_id,
            id_items=None if self.unseen_item_id else seen,
            item_id_dropout=self.item_id_dropout, missing_id=self.missing_id, id_neighbours=self.id_neighbours,
        )
        if self.use_image:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

        # ---- lexical channel: TF-IDF cosine of history and item words, its weights learned: lexical_scale for
        # every item, plus cold_lexical_scale for the items scored without their id (unseen in training, or their
        # id dropped in this step, which is where it learns)
        self.lexical = None
        if self.lexical_weight > 0.0 or self.cold_lexical_weight > 0.0:
            self.lexical = LexicalIndex(fit_item_matrix(dataset.item_texts, config, source="the item text of "
                                                        f"{dataset.dataset_name}.item"),
                                        mean_history=float(dataset.inter_feat[self.ITEM_SEQ_LEN].float().mean()))
            self.lexical_scale = nn.Parameter(torch.tensor(self.lexical_weight))
            self.cold_lexical_scale = nn.Parameter(torch.tensor(self.cold_lexical_weight)) \
                if self.cold_lexical_weight > 0.0 else None
        # ``unseen_negatives: false``: the items without training interactions leave the training softmax
        self.register_buffer("train_unseen", ~seen, persistent=False)

        # ---- sequence encoder
        if self.seq_encoder_type == "transformer":
            self.seq_encoder = TransformerSeqEncoder(
                self.max_seq_length, self.embedding_size, n_layers, n_heads, inner_size, hidden_dropout,
                attn_dropout, hidden_act, layer_norm_eps,
            )
        else:
            self.seq_encoder = MeanSeqEncoder()
        self.seq_encoder.apply(self._init_weights)
        if self.item_tower.item_embedding is not None:
            self._init_weights(self.item_tower.item_embedding)
        self._item_cache = None  # item matrix of the current evaluation

    def training_items(self, dataset):
        """bool [n_items]: the items in the training rows (a history or a target), padding excluded."""
        seen = torch.zeros(self.n_items, dtype=torch.bool)
        seen[dataset.inter_feat[self.ITEM_ID].long()] = True
        seen[dataset.inter_feat[self.ITEM_SEQ].long().flatten()] = True
        seen[0] = False
        return seen

    def _init_weights(self, module):
        """SASRec / BERT initialisation for the sequence encoder and the item-id embedding."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # ------------------------------------------------------------------ evaluation cache
    def train(self, mode=True):
        """Entering training or a new evaluation drops the cached item matrix."""
        self._item_cache = None
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, **kwargs):
        self._item_cache = None
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    # ------------------------------------------------------------------ item tower
    def item_parts(self, item_ids):
        """:class:`~recbole_blairclip.model.item_tower.ItemParts` (fused, text, image) of ``item_ids``."""
        return self.item_tower(item_ids)

    @torch.no_grad()
    def item_matrix(self):
        """Every item's embedding [n_items, embedding_size], computed in chunks; cached for one evaluation."""
        if self._item_cache is None or self.training:
            ids = torch.arange(self.n_items, device=self._device())
            chunks = [self.item_parts(chunk)[0] for chunk in ids.split(self.item_chunk_size)]
            matrix = torch.cat(chunks)
            if self.training:
                return matrix
            self._item_cache = matrix
        return self._item_cache

    def _device(self):
        return self.item_tower.text_projection.weight.device

    # ------------------------------------------------------------------ sequence encoder
    def sequence_states(self, item_seq, table):
        """Encoder output at every position [B, L, d]; ``table`` maps the ids in ``item_seq`` to embeddings."""
        return self.seq_encoder(table[item_seq], item_seq)

    def grouped_states(self, item_seq, lengths, table, reduce):
        """``reduce(states, rows)`` of every row, the rows encoded in ``length_groups`` length-sorted groups,
        each cut to its longest sequence (``lengths`` >= 1 items); returned in the rows' own order.

        The same states as one padded pass: the mask is causal and positions are absolute from 0.
        """
        order = torch.argsort(lengths)
        outputs = []
        for group in order.tensor_split(min(self.length_groups, len(order))):
            if len(group):
                width = int(lengths[group].max())
                outputs.append(reduce(self.sequence_states(item_seq[group, :width], table), group))
        return torch.cat(outputs)[torch.argsort(order)]

    def forward(self, item_seq, item_seq_len, table=None):
        """User state after the whole history [B, d] (the last real position).

        With ``trim_batches`` the rows are encoded in length groups (:meth:`grouped_states`; used for evaluation).
        """
        table = self.item_matrix() if table is None else table
        last = (item_seq_len - 1).clamp(min=0)
        if not self.trim_batches:
            return self.gather_indexes(self.sequence_states(item_seq, table), last)
        return self.grouped_states(item_seq, last + 1, table,
                                   lambda states, rows: self.gather_indexes(states, last[rows]))

    def position_states(self, item_seq, item_seq_len, table):
        """States at every real position, rows in order then positions in order: [sum(item_seq_len), d].

        With ``trim_batches`` the rows are encoded in length groups (:meth:`grouped_states`), each padded
        back to the batch's longest sequence.
        """
        lengths = item_seq_len.clamp(min=1)
        if not self.trim_batches:
            states = self.sequence_states(item_seq, table)
        else:
            width = int(lengths.max())
            states = self.grouped_states(item_seq, lengths, table,
                                         lambda out, rows: F.pad(out, (0, 0, 0, width - out.shape[1])))
        valid = torch.arange(states.shape[1], device=states.device).unsqueeze(0) < item_seq_len.unsqueeze(1)
        return states[valid]

    # ------------------------------------------------------------------ training
    def _training_table(self, item_seq, targets):
        """:class:`TrainingTable` of this batch: the item table and the batch's ids remapped into it.

        Frozen text: the whole catalogue (full softmax). Fine-tuned text: the batch's own items (in-batch
        softmax; encoding the whole catalogue through a transformer at every step would not fit), row 0 =
        padding.
        """
        batch_items = torch.unique(torch.cat([item_seq.flatten(), targets]))
        batch_items = batch_items[batch_items != 0]
        if self.item_tower.text_tower is None:
            fused, text, image, has_id = self.item_parts(torch.arange(self.n_items, device=item_seq.device))
            has_image = self.item_tower.image_mask if self.use_image else None
            return TrainingTable(fused, text, image, has_image, item_seq, targets, batch_items, has_id)
        fused, text, image, _ = self.item_parts(batch_items)

        def pad_row(x):
            return None if x is None else torch.cat([x[:1] * 0, x])

        has_image = None
        if self.use_image:
            mask = self.item_tower.image_mask
            has_image = torch.cat([mask.new_zeros(1), mask[batch_items]])
        local_seq = torch.where(item_seq > 0, torch.searchsorted(batch_items, item_seq) + 1, 0)
        return TrainingTable(pad_row(fused), pad_row(text), pad_row(image), has_image, local_seq,
                             torch.searchsorted(batch_items, targets) + 1,
                             torch.arange(1, len(batch_items) + 1, device=item_seq.device), None)

    def next_item_losses(self, item_seq, lengths, targets, table, per_position=None, has_id=None):
        """Next-item cross-entropy per target (no reduction); ``table`` maps ids to item embeddings, ``has_id``
        (bool [table rows] or None) says which of them carry their id (for ``cold_lexical_scale``).

        ``per_position`` (default: ``train_rows == 'user'``): each row is a user's sequence (``item_seq`` =
        history, ``targets`` = the item after it) and every position predicts the next item; losses come in
        row, then position order. Otherwise one loss per row (RecBole's per-prefix rows).
        """
        per_position = (self.train_rows == "user") if per_position is None else per_position
        if self.trim_batches:
            item_seq = item_seq[:, : max(int(lengths.max()), 1)]
        if per_position:
            next_items = torch.zeros_like(item_seq)
            next_items[:, :-1] = item_seq[:, 1:]
            rows = torch.arange(len(item_seq), device=item_seq.device)
            next_items[rows, (lengths - 1).clamp(min=0)] = targets
            valid = torch.arange(item_seq.shape[1], device=item_seq.device).unsqueeze(0) < lengths.unsqueeze(1)
            output = self.position_states(item_seq, lengths, table)
            labels = next_items[valid]
        else:
            output = self.gather_indexes(self.sequence_states(item_seq, table), (lengths - 1).clamp(min=0))
            labels = targets
        logits = output @ table.t()
        if self.lexical is not None:
            if per_position:  # position j's profile: the items up to j
                width = item_seq.shape[1]
                prefixes = item_seq.unsqueeze(1).expand(-1, width, -1)[valid]
                prefix_lengths = (torch.arange(width, device=item_seq.device) + 1).expand(len(item_seq), -1)[valid]
                logits = logits + self.lexical_scores(prefixes, prefix_lengths) * self.lexical_weights(has_id)
            else:
                logits = logits + self.lexical_scores(item_seq, lengths) * self.lexical_weights(has_id)
        if not self.unseen_negatives and len(table) == self.n_items:
            logits = logits.masked_fill(self.train_unseen, float("-inf"))
        logits[:, 0] = float("-inf")  # never predict padding
        return F.cross_entropy(logits, labels, reduction="none")

    def contrastive_term(self, text, image, has_image, batch_rows):
        """CLIP loss over the batch's distinct items that have an image (at most ``clip_max_items``)."""
        if not self.use_image or self.clip_weight == 0.0:
            return torch.zeros((), device=self._device())
        rows = batch_rows[has_image[batch_rows]]
        if len(rows) > self.clip_max_items:
            rows = rows[torch.randperm(len(rows), device=rows.device)[: self.clip_max_items]]
        if len(rows) < 2:
            return self.logit_scale * 0.0
        loss = clip_contrastive_loss(text[rows], image[rows], self.logit_scale)
        return self.clip_weight * loss

    def calculate_loss(self, interaction):
        """(next-item cross-entropy, clip_weight x contrastive loss): RecBole sums them and logs each."""
        batch = self._training_table(interaction[self.ITEM_SEQ], interaction[self.POS_ITEM_ID])
        rec_loss = self.next_item_losses(batch.item_seq, interaction[self.ITEM_SEQ_LEN], batch.targets,
                                         batch.table, has_id=batch.has_id).mean()
        clip_term = self.contrastive_term(batch.text, batch.image, batch.has_image, batch.batch_rows)
        return rec_loss, clip_term

    @torch.no_grad()
    def after_optimizer_step(self):
        """Clamp the learned logit scale to [0, log(max_logit_scale)], once after every optimiser step (as
        open_clip does). The protocol trainer calls it through a post-step hook on its optimizer
        (:class:`~recbole_blairclip.evaluation.trainer.ProtocolTrainerMixin`); a custom loop calls it itself."""
        if self.use_image:
            self.logit_scale.copy_(clamp_logit_scale(self.logit_scale, self.max_logit_scale))

    # ------------------------------------------------------------------ lexical channel
    def lexical_weights(self, has_id):
        """The lexical channel's weight of every item: ``lexical_scale``, plus ``cold_lexical_scale`` where the
        item is scored without its id (``has_id`` False; None = every item has its id)."""
        if self.cold_lexical_scale is None or has_id is None:
            return self.lexical_scale
        return self.lexical_scale + self.cold_lexical_scale * (~has_id).to(self.lexical_scale.dtype)

    def evaluation_has_id(self):
        """bool [n_items] of the items scored with their id outside training (None: all of them or none)."""
        return self.item_tower.id_items if self.use_item_id else None

    @torch.no_grad()
    def lexical_scores(self, item_seq, lengths):
        """TF-IDF cosines [rows, n_items] of each row's history (``item_seq`` up to ``lengths``, profile
        ``lexical_profile``) with every item; a constant of the data (no gradient)."""
        weights = history_weights(item_seq, lengths, self.lexical_profile, self.lexical_decay)
        return self.lexical.scores(item_seq, weights)

    # ------------------------------------------------------------------ evaluation
    def predict(self, interaction):
        table = self.item_matrix()
        item_seq, lengths, items = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN], interaction[self.ITEM_ID]
        scores = (self.forward(item_seq, lengths, table) * table[items]).sum(dim=-1)
        if self.lexical is not None:
            lexical = self.lexical_scores(item_seq, lengths) * self.lexical_weights(self.evaluation_has_id())
            scores = scores + lexical.gather(1, items.unsqueeze(1)).squeeze(1)
        return scores

    def full_sort_predict(self, interaction):
        table = self.item_matrix()
        item_seq, lengths = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        scores = self.forward(item_seq, lengths, table) @ table.t()
        if self.lexical is not None:
            scores = scores + self.lexical_scores(item_seq, lengths) * self.lexical_weights(self.evaluation_has_id())
        return scores


__all__ = ["BLaIRCLIP"]
