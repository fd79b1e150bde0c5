"""BLaIRCLIP's item tower: every item's embedding from its content (text, image) and, optionally, its id.

item = fusion(text_projection(pooled text), image_projection(image feature)) [+ item-id embedding].
Items without an image use their text alone, so every item, even one never seen in training, has a
content embedding.
"""
from collections import namedtuple

import torch
import torch.nn as nn

from recbole_blairclip.model.layers import Fusion, TextPooler

ItemParts = namedtuple("ItemParts", ["fused", "text", "image"])
ItemParts.__doc__ = "Item embeddings [n, d]: fused (what is scored), text and image (None without images)."


class ItemTower(nn.Module):
    """Pooler head, projections, fusion and id embedding of the items (see the module docstring).

    ``text_features`` [n_items, d_text] (frozen mode) or ``text_tower`` (a module mapping item ids to pooled
    text, finetune mode); ``image_features`` / ``image_mask`` or None for a text-only tower.
    """

    def __init__(self, n_items, embedding_size, pooler_type, fusion, text_features=None, text_tower=None,
                 image_features=None, image_mask=None, use_item_id=False, id_items=None, item_id_dropout=0.0,
                 missing_id=False):
        super().__init__()
        if text_tower is None:
            self.register_buffer("text_features", text_features.clone(), persistent=False)
            text_dim = int(text_features.shape[1])
            self.text_pooler = TextPooler(pooler_type, text_dim)
        else:
            self.text_features = None
            text_dim = text_tower.hidden_size
        self.text_tower = text_tower
        # The projections keep PyTorch's default initialisation (kaiming-uniform, bound 1/sqrt(in_features)):
        # on L2-normalised features it gives embeddings of std 1/sqrt(3 * in_features) per dimension (0.03 for
        # 384-d MiniLM, 0.02 for 768-d BLaIR), the scale of the normal(0, initializer_range=0.02) id and
        # position embeddings they are added to; the measured defaults (benchmarks/RESULTS.md) were made with it.
        self.text_projection = nn.Linear(text_dim, embedding_size, bias=False)
        self.use_image = image_features is not None
        if self.use_image:
            self.register_buffer("image_features", image_features.clone(), persistent=False)
            self.register_buffer("image_mask", image_mask.clone(), persistent=False)
            self.image_projection = nn.Linear(int(image_features.shape[1]), embedding_size, bias=False)
            self.fusion = Fusion(fusion, embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size, padding_idx=0) if use_item_id else None
        # hybrid items: only ``id_items`` (bool [n_items], e.g. the items seen in training) add their id
        # embedding, the others score from content alone; ``item_id_dropout`` drops an item's id in training
        self.item_id_dropout = float(item_id_dropout)
        # ``missing_id``: an item without its id (unseen, or dropped in this step) adds one learned vector shared
        # by all such items instead of nothing, so content-only items are scored on the scale of items with ids
        self.missing_id = nn.Parameter(torch.zeros(embedding_size)) if (use_item_id and missing_id) else None
        if id_items is not None:
            self.register_buffer("id_items", id_items.clone(), persistent=False)
        else:
            self.id_items = None

    def pooled_text(self, item_ids):
        if self.text_tower is not None:
            return self.text_tower(item_ids)
        return self.text_pooler.head(self.text_features[item_ids])

    def forward(self, item_ids):
        """:class:`ItemParts` of ``item_ids``."""
        text = self.text_projection(self.pooled_text(item_ids))
        image = None
        fused = text
        if self.use_image:
            image = self.image_projection(self.image_features[item_ids])
            fused = self.fusion(text, image, self.image_mask[item_ids])
        if self.item_embedding is not None:
            ids = self.item_embedding(item_ids)
            keep = self.id_items[item_ids] if self.id_items is not None else None
            if self.training and self.item_id_dropout > 0.0:
                kept = torch.rand(len(item_ids), device=item_ids.device) >= self.item_id_dropout
                keep = kept if keep is None else keep & kept
            if keep is None:
                fused = fused + ids
            elif self.missing_id is None:
                fused = fused + ids * keep.unsqueeze(-1).to(ids.dtype)
            else:
                fused = fused + torch.where(keep.unsqueeze(-1), ids, self.missing_id)
        return ItemParts(fused, text, image)


__all__ = ["ItemParts", "ItemTower"]
