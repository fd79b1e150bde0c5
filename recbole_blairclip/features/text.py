"""Text embeddings from any transformers encoder (BLaIR by default).

``TextEncoder("hyp1231/blair-roberta-base")`` loads the tokenizer and model by hub id, local folder or
alias (see :mod:`recbole_blairclip.features.pretrained`) and turns a list of strings into float32
rows: the last hidden state pooled by ``cls`` (first token, BLaIR's own usage) or ``avg`` (mean over
real tokens), then L2-normalised. Texts are truncated to ``max_length`` tokens and encoded in batches
of similar length (sorted by character length, results put back in input order) under
``torch.inference_mode``; on CUDA the model runs in fp16 unless ``fp16=False``.

Defaults taken from a sentence-transformers folder: when ``pooling`` / ``max_length`` are not given
and the folder has ``1_Pooling/config.json`` / ``sentence_bert_config.json`` (as the packaged
all-MiniLM-L6-v2 behind the ``minilm`` alias does), the model's own pooling (mean -> ``avg``) and
maximum sequence length are used; otherwise ``cls`` and 512 (clipped to what the model can take).
"""
import json
from pathlib import Path

import numpy as np

from recbole_blairclip.errors import ConfigError
from recbole_blairclip.features.pretrained import (
    DEFAULT_TEXT_ENCODER, load_pretrained, pick_device, resolve_source,
)

POOLINGS = ("cls", "avg")
DEFAULT_MAX_LENGTH = 512
_ROBERTA_LIKE = ("roberta", "xlm-roberta", "camembert", "longformer", "bart", "mpnet")


def _sentence_transformers_defaults(source):
    """(pooling, max_length) declared by a local sentence-transformers folder, else (None, None)."""
    if not source.local:
        return None, None
    folder = Path(source.location)
    pooling = max_length = None
    try:
        pool_cfg = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if pool_cfg.get("pooling_mode_mean_tokens"):
            pooling = "avg"
        elif pool_cfg.get("pooling_mode_cls_token"):
            pooling = "cls"
    except (OSError, ValueError):
        pass
    try:
        max_length = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return pooling, max_length


def _position_limit(config):
    """The longest input the model's position embeddings allow (None when unbounded or unknown)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not limit:
        return None
    if getattr(config, "model_type", "") in _ROBERTA_LIKE:  # positions start after the padding index
        limit -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return int(limit)


class TextEncoder:
    """Encode item texts with a transformers encoder; ``encode(texts) -> float32 [n, dim]``.

    Args:
        name: hub id, local folder or alias (``minilm``).
        pooling: ``cls`` or ``avg``; None = the folder's sentence-transformers setting, else ``cls``.
        max_length: token limit; None = the folder's sentence-transformers setting, else 512.
        batch_size: texts per forward pass.
        device: ``cpu``, ``cuda``, ``cuda:1``...; None = CUDA when available.
        fp16: run in half precision on CUDA (never on CPU).
        revision: hub branch, tag or commit (ignored for folders).
        normalize: L2-normalise every row.
        tag: file-name tag; None = derived from the name.
    """

    kind = "text"

    def __init__(self, name=DEFAULT_TEXT_ENCODER, *, pooling=None, max_length=None, batch_size=32,
                 device=None, fp16=True, revision=None, normalize=True, tag=None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if pooling is not None and pooling not in POOLINGS:
            raise ConfigError(f"text pooling '{pooling}' is unknown; use one of {', '.join(POOLINGS)}")
        if batch_size < 1:
            raise ConfigError(f"text batch size must be >= 1, got {batch_size}")
        self.source = resolve_source(name, revision, role="text encoder", option="--text-encoder", tag=tag)
        st_pooling, st_max_length = _sentence_transformers_defaults(self.source)
        self.pooling = pooling or st_pooling or "cls"
        self.device = pick_device(device)
        self.dtype = torch.float16 if (fp16 and self.device.type == "cuda") else torch.float32
        self.tokenizer = load_pretrained(self.source, AutoTokenizer, "tokenizer")
        self.tokenizer.padding_side = "right"  # cls pooling reads position 0
        model = load_pretrained(self.source, AutoModel, "model weights", dtype=self.dtype)
        self.model = model.to(self.device).eval()
        limit = _position_limit(self.model.config)
        if max_length is not None:
            if max_length < 2:
                raise ConfigError(f"text max_length must be >= 2, got {max_length}")
            if limit is not None and max_length > limit:
                raise ConfigError(f"text max_length {max_length} is longer than {self.source.name} accepts "
                                  f"({limit} tokens); pass a max_length <= {limit}")
            self.max_length = int(max_length)
        else:
            wanted = st_max_length or DEFAULT_MAX_LENGTH
            self.max_length = min(wanted, limit) if limit else wanted
        self.batch_size = int(batch_size)
        self.normalize = bool(normalize)
        self.dim = int(getattr(self.model.config, "hidden_size", 0) or self._probe_dim())
        self.tag = self.source.tag

    def _probe_dim(self):
        return self.encode(["probe"]).shape[1]

    def describe(self):
        """What produced the rows (stored in ``<name>.features.json``)."""
        return {
            "kind": "transformers",
            "encoder": self.source.name,
            "location": self.source.location if not self.source.local else None,
            "revision": self.source.revision,
            "tag": self.tag,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "normalization": "l2" if self.normalize else "none",
            "dim": self.dim,
            "dtype_run": str(self.dtype).replace("torch.", ""),
        }

    def encode(self, texts):
        """Embed a list of strings; row i is text i. Returns float32 ``[len(texts), dim]``."""
        import torch

        texts = ["" if t is None else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        rows = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()
                         if k in ("input_ids", "attention_mask", "token_type_ids")}
                hidden = self.model(**batch).last_hidden_state.float()
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                pooled = pooled.cpu().numpy()
                for j, i in enumerate(idx):
                    rows[i] = pooled[j]
        return np.stack(rows).astype(np.float32, copy=False)
