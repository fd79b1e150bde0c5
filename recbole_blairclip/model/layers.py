"""Building blocks of BLaIRCLIP: text pooler (BLaIR / SimCSE), projections, fusion, sequence encoders.

Every sequence encoder returns the output at *every* position of a left-aligned, zero-padded item
sequence, computed causally (position ``j`` sees items ``0..j`` only), so one pass over a user's sequence
gives the user state after each prefix (what RecBole's per-prefix rows compute one at a time).
"""
import torch
import torch.nn as nn
from recbole.model.layers import TransformerEncoder

from recbole_blairclip.errors import ConfigError

POOLER_TYPES = ("cls", "cls_before_pooler", "avg")
FUSIONS = ("sum", "concat", "gated")
SEQ_ENCODERS = ("mean", "transformer")


class MLPPooler(nn.Module):
    """SimCSE / BLaIR ``MLPLayer``: dense + tanh over the [CLS] representation (``pooler_type: cls``)."""

    def __init__(self, hidden_size):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = nn.Tanh()

    def forward(self, features):
        return self.activation(self.dense(features))


class TextPooler(nn.Module):
    """Sentence embedding from token states, as in BLaIR / SimCSE ``Pooler`` (+ the MLP for ``cls``).

    ``cls``: [CLS] state through :class:`MLPPooler`; ``cls_before_pooler``: the raw [CLS] state;
    ``avg``: mean of the non-padding token states. :meth:`head` applies only what comes after pooling,
    for precomputed (already pooled) features in frozen mode.
    """

    def __init__(self, pooler_type, hidden_size):
        super().__init__()
        if pooler_type not in POOLER_TYPES:
            raise ConfigError(f"pooler_type '{pooler_type}' is unknown; use one of {', '.join(POOLER_TYPES)}")
        self.pooler_type = pooler_type
        self.mlp = MLPPooler(hidden_size) if pooler_type == "cls" else None

    def head(self, pooled):
        return self.mlp(pooled) if self.mlp is not None else pooled

    def forward(self, last_hidden_state, attention_mask):
        if self.pooler_type == "avg":
            mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
            pooled = (last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooled = last_hidden_state[:, 0]
        return self.head(pooled)


class Fusion(nn.Module):
    """Fuse projected text ``t`` and image ``v`` embeddings [n, d]; items without an image get ``t``.

    ``sum``: t + v; ``concat``: Linear([t; v]); ``gated``: g * t + (1 - g) * v with g = sigmoid(Linear([t; v])).
    """

    def __init__(self, mode, dim):
        super().__init__()
        if mode not in FUSIONS:
            raise ConfigError(f"fusion '{mode}' is unknown; use one of {', '.join(FUSIONS)}")
        self.mode = mode
        self.linear = nn.Linear(2 * dim, dim) if mode in ("concat", "gated") else None

    def forward(self, text, image, has_image):
        if self.mode == "sum":
            fused = text + image
        elif self.mode == "concat":
            fused = self.linear(torch.cat([text, image], dim=-1))
        else:
            gate = torch.sigmoid(self.linear(torch.cat([text, image], dim=-1)))
            fused = gate * text + (1.0 - gate) * image
        return torch.where(has_image.unsqueeze(-1), fused, text)


class MeanSeqEncoder(nn.Module):
    """Running mean of the item embeddings: position j = mean of items 0..j (padding ignored)."""

    def forward(self, item_emb, item_seq):
        mask = (item_seq != 0).unsqueeze(-1).to(item_emb.dtype)
        total = torch.cumsum(item_emb * mask, dim=1)
        count = torch.cumsum(mask, dim=1).clamp(min=1.0)
        return total / count


class TransformerSeqEncoder(nn.Module):
    """SASRec-style causal transformer (Kang & McAuley 2018) on RecBole's ``TransformerEncoder``.

    Absolute positions from 0 on left-aligned sequences and a causal mask: trailing padding can be cut
    (batches trimmed to their longest sequence) without changing any output.
    """

    def __init__(self, max_seq_length, hidden_size, n_layers, n_heads, inner_size, hidden_dropout_prob,
                 attn_dropout_prob, hidden_act, layer_norm_eps):
        super().__init__()
        if hidden_size % n_heads:
            raise ConfigError(f"embedding_size {hidden_size} must be a multiple of n_heads {n_heads}")
        self.position_embedding = nn.Embedding(max_seq_length, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.dropout = nn.Dropout(hidden_dropout_prob)
        self.encoder = TransformerEncoder(
            n_layers=n_layers, n_heads=n_heads, hidden_size=hidden_size, inner_size=inner_size,
            hidden_dropout_prob=hidden_dropout_prob, attn_dropout_prob=attn_dropout_prob,
            hidden_act=hidden_act, layer_norm_eps=layer_norm_eps,
        )

    @staticmethod
    def causal_mask(item_seq):
        """Additive mask [B, 1, L, L]: 0 where key k <= query q and k is an item, else -10000 (as RecBole)."""
        keys = (item_seq != 0).unsqueeze(1).unsqueeze(2)
        length = item_seq.shape[1]
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool, device=item_seq.device))
        allowed = keys & causal.view(1, 1, length, length)
        return torch.where(allowed, 0.0, -10000.0)

    def forward(self, item_emb, item_seq):
        positions = torch.arange(item_seq.shape[1], device=item_seq.device)
        hidden = self.dropout(self.layer_norm(item_emb + self.position_embedding(positions).unsqueeze(0)))
        return self.encoder(hidden, self.causal_mask(item_seq), output_all_encoded_layers=False)[-1]


__all__ = ["FUSIONS", "Fusion", "MLPPooler", "MeanSeqEncoder", "POOLER_TYPES", "SEQ_ENCODERS", "TextPooler",
           "TransformerSeqEncoder"]
