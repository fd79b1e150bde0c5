"""Contrastive (CLIP) loss as small pure functions.

Follows OpenAI CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision") as written in ``transformers`` ``modeling_clip.py`` and ``open_clip/loss.py``:

* embeddings are L2-normalised, cosine similarities are multiplied by ``logit_scale.exp()``;
* the logit scale (inverse temperature) is a learnable scalar kept in log space, initialised to
  ``log(1 / 0.07)``; as in open_clip it is clamped to ``[0, log(100)]`` once, after each optimiser step
  (:func:`clamp_logit_scale`, called by the model's ``after_optimizer_step``), never inside the loss;
* the loss is the symmetric cross-entropy: text->image and image->text, averaged. Row ``i`` of the
  similarity matrix belongs to pair ``i`` (the diagonal holds the positives).
"""
import math

import torch
import torch.nn.functional as F

CLIP_INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's initial temperature 0.07, in log space
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clamps the scale at 100 to keep training stable


def contrastive_loss(logits):
    """Cross-entropy where row ``i`` of ``logits`` [n, n] has its positive in column ``i``."""
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def clip_loss(logits_per_text):
    """Symmetric CLIP loss: mean of the text->image (rows) and image->text (columns) cross-entropies."""
    caption_loss = contrastive_loss(logits_per_text)
    image_loss = contrastive_loss(logits_per_text.t())
    return (caption_loss + image_loss) / 2.0


def clamp_logit_scale(logit_scale, max_logit_scale=MAX_LOGIT_SCALE):
    """The logit scale (log space) clamped to ``[0, max_logit_scale]`` (temperature between 1/100 and 1)."""
    return logit_scale.clamp(0.0, max_logit_scale)


def clip_logits(text_embeds, image_embeds, logit_scale):
    """``logits_per_text`` [n_text, n_image]: cosine similarities times ``exp(logit_scale)``."""
    text_embeds = F.normalize(text_embeds, dim=-1)
    image_embeds = F.normalize(image_embeds, dim=-1)
    return logit_scale.exp() * text_embeds @ image_embeds.t()


def clip_contrastive_loss(text_embeds, image_embeds, logit_scale):
    """CLIP loss of paired ``text_embeds`` / ``image_embeds`` [n, d] (row i of each = item i)."""
    return clip_loss(clip_logits(text_embeds, image_embeds, logit_scale))


__all__ = [
    "CLIP_INIT_LOGIT_SCALE",
    "MAX_LOGIT_SCALE",
    "clamp_logit_scale",
    "clip_contrastive_loss",
    "clip_logits",
    "clip_loss",
    "contrastive_loss",
]
