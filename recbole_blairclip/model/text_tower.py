"""The fine-tuned text tower (``text_mode: finetune``): a transformers encoder held in the model.

The item texts are tokenised once, when the model is built, and kept on the model's device as buffers
(row 0 = padding, an empty text). Only the top ``finetune_layers`` transformer layers (and the pooler
MLP of the model) are trainable; the embeddings and lower layers stay frozen. The encoder is loaded
with ``trust_remote_code=False`` from a local folder, an alias or a hub id
(see :mod:`recbole_blairclip.features.pretrained`).
"""
import torch
import torch.nn as nn

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features.pretrained import load_pretrained, resolve_source
from recbole_blairclip.model.layers import TextPooler


def _transformer_layers(encoder):
    """The ModuleList of transformer blocks of a BERT/RoBERTa/DistilBERT/MPNet-like encoder."""
    base = getattr(encoder, "base_model", encoder)
    for path in ("encoder.layer", "transformer.layer", "layers", "encoder.layers"):
        module = base
        for part in path.split("."):
            module = getattr(module, part, None)
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    raise ConfigError(
        f"text_encoder {type(encoder).__name__}: cannot find its transformer layers to fine-tune; "
        "use a BERT/RoBERTa-like encoder or text_mode: frozen"
    )


class FinetuneTextTower(nn.Module):
    """Encodes item texts with a trainable top of a pretrained transformer encoder.

    Args:
        encoder_name: folder, alias or hub id of the encoder (and its tokenizer).
        texts: one text per internal item id (index 0 = padding).
        pooler_type: ``cls`` (with the SimCSE MLP), ``cls_before_pooler`` or ``avg``.
        max_length: tokens kept per text.
        trainable_layers: how many of the top transformer layers are fine-tuned (0 = only the pooler MLP).
        batch_size: texts per encoder call when many items are encoded at once.
    """

    def __init__(self, encoder_name, texts, pooler_type="cls", max_length=64, trainable_layers=1, batch_size=256):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        source = resolve_source(encoder_name, role="text encoder", option="text_encoder")
        tokenizer = load_pretrained(source, AutoTokenizer, "tokenizer")
        self.encoder = load_pretrained(source, AutoModel, "model", add_pooling_layer=False) \
            if _accepts_pooling_flag(source) else load_pretrained(source, AutoModel, "model")
        self.hidden_size = int(self.encoder.config.hidden_size)
        self.batch_size = int(batch_size)
        self.pooler = TextPooler(pooler_type, self.hidden_size)

        layers = _transformer_layers(self.encoder)
        if not 0 <= trainable_layers <= len(layers):
            raise ConfigError(f"finetune_layers {trainable_layers}: the encoder has {len(layers)} layers; "
                              f"use 0..{len(layers)}")
        for param in self.encoder.parameters():
            param.requires_grad_(False)
        for layer in list(layers)[len(layers) - trainable_layers:]:
            for param in layer.parameters():
                param.requires_grad_(True)

        encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=int(max_length),
                            return_tensors="pt")
        self.register_buffer("input_ids", encoded["input_ids"], persistent=False)
        self.register_buffer("attention_mask", encoded["attention_mask"], persistent=False)

    def forward(self, item_ids):
        """Pooled embeddings [len(item_ids), hidden_size] of the given internal item ids."""
        outputs = []
        for chunk in item_ids.split(self.batch_size):
            ids = self.input_ids[chunk]
            mask = self.attention_mask[chunk]
            width = int(mask.sum(1).max().item()) if len(chunk) else 1
            ids, mask = ids[:, :max(width, 1)], mask[:, :max(width, 1)]
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            outputs.append(self.pooler(hidden, mask))
        return torch.cat(outputs) if outputs else self.input_ids.new_zeros((0, self.hidden_size), dtype=torch.float)


def _accepts_pooling_flag(source):
    """BERT/RoBERTa models accept ``add_pooling_layer``; the BLaIR/SimCSE pooler replaces theirs."""
    from transformers import AutoConfig

    config = load_pretrained(source, AutoConfig, "config")
    return getattr(config, "model_type", "") in ("bert", "roberta", "xlm-roberta", "camembert", "ernie")


__all__ = ["FinetuneTextTower"]
