"""BLaIRCLIP's item tower: every item's embedding from its content (text, image) and, optionally, its id.

item = fusion(text_projection(pooled text), image_projection(image feature)) [+ item-id embedding].
Items without an image use their text alone, so every item, even one never seen in training, has a
content embedding.
"""
from collections import namedtuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_blairclip.model.layers import Fusion, TextPooler

ItemParts = namedtuple("ItemParts", ["fused", "text", "image", "has_id"])
ItemParts.__doc__ = ("Item embeddings [n, d]: fused (what is scored), text and image (None without images); has_id "
                     "[n] bool: the items whose own id embedding is in fused (None: all of them, or no ids at all).")


class ItemTower(nn.Module):
    """Pooler head, projections, fusion and id embedding of the items (see the module docstring).

    ``text_features`` [n_items, d_text] (frozen mode) or ``text_tower`` (a module mapping item ids to pooled
    text, finetune mode); ``image_features`` / ``image_mask`` or None for a text-only tower.
    """

    def __init__(self, n_items, embedding_size, pooler_type, fusion, text_features=None, text_tower=None,
                 image_features=None, image_mask=None, use_item_id=False, id_items=None, item_id_dropout=0.0,
                 missing_id=False, id_neighbours=0):
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
        # ``id_neighbours`` k > 0: an item without its id also adds the similarity-weighted mean id embedding of
        # its k nearest items with ids (cosine of the frozen text features): a new version of a known product
        # borrows that product's id, and the dropped ids of training teach the model to use it
        self.id_neighbours = int(id_neighbours) if use_item_id else 0
        if self.id_neighbours > 0:
            if text_features is None:
                raise ValueError("id_neighbours needs the frozen text features")
            ids, weights = nearest_items(text_features, self.id_neighbours, id_items)
            self.register_buffer("neighbour_ids", ids, persistent=False)
            self.register_buffer("neighbour_weights", weights, persistent=False)

    def pooled_text(self, item_ids):
        if self.text_tower is not None:
            return self.text_tower(item_ids)
        return self.text_pooler.head(self.text_features[item_ids])

    def forward(self, item_ids):
        """:class:`ItemParts` of ``item_ids``."""
        text = self.text_projection(self.pooled_text(item_ids))
        image = None
        fused, has_id = text, None
        if self.use_image:
            image = self.image_projection(self.image_features[item_ids])
            fused = self.fusion(text, image, self.image_mask[item_ids])
        if self.item_embedding is not None:
            ids = self.item_embedding(item_ids)
            keep = self.id_items[item_ids] if self.id_items is not None else None
            if self.training and self.item_id_dropout > 0.0:
                kept = torch.rand(len(item_ids), device=item_ids.device) >= self.item_id_dropout
                keep = kept if keep is None else keep & kept
            has_id = keep
            if keep is None:
                fused = fused + ids
            else:
                fused = fused + ids * keep.unsqueeze(-1).to(ids.dtype) + self.without_id(item_ids, ~keep)
        return ItemParts(fused, text, image, has_id)

    def without_id(self, item_ids, missing):
        """What the items scored without their id (``missing``, bool) add instead: the ``missing_id`` vector
        and / or their neighbours' mean id embedding (``id_neighbours``); zeros for the others [n, d]."""
        out = torch.zeros(len(item_ids), self.item_embedding.embedding_dim, device=item_ids.device)
        if self.missing_id is not None:
            out = out + missing.unsqueeze(-1).to(out.dtype) * self.missing_id
        if self.id_neighbours > 0 and missing.any():
            rows = missing.nonzero().squeeze(1)
            items = item_ids[rows]
            borrowed = (self.neighbour_weights[items].unsqueeze(-1) * self.item_embedding(self.neighbour_ids[items])).sum(1)
            out = out.index_add(0, rows, borrowed)
        return out


@torch.no_grad()
def nearest_items(features, k, candidates=None, chunk=4096):
    """The ``k`` nearest items of every item by cosine of ``features`` [n, d], among ``candidates`` (bool [n];
    None = every item but padding 0), never itself: (ids [n, k] long, weights [n, k]: the cosines clamped at 0
    and normalised to sum 1, uniform where all are 0). Chunked: memory O(chunk x candidates)."""
    n = features.shape[0]
    pool = torch.ones(n, dtype=torch.bool) if candidates is None else candidates.clone().cpu()
    pool[0] = False
    pool_ids = pool.nonzero().squeeze(1)
    k = min(k, max(len(pool_ids) - 1, 1))
    unit = F.normalize(features.float().cpu(), dim=1)
    bank = unit[pool_ids]
    ids, sims = [], []
    for start in range(0, n, chunk):
        block = unit[start:start + chunk] @ bank.t()
        rows = torch.arange(start, min(start + chunk, n))
        block[(rows.unsqueeze(1) == pool_ids.unsqueeze(0))] = float("-inf")  # never its own neighbour
        top = block.topk(k, dim=1)
        ids.append(pool_ids[top.indices])
        sims.append(top.values)
    ids, sims = torch.cat(ids), torch.cat(sims).clamp_min(0.0)
    total = sims.sum(1, keepdim=True)
    weights = torch.where(total > 0, sims / total.clamp_min(1e-12), torch.full_like(sims, 1.0 / k))
    return ids, weights


__all__ = ["ItemParts", "ItemTower", "nearest_items"]
