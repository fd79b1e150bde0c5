"""A trainer mixin that makes any RecBole trainer evaluate with the shared protocol.

:func:`protocol_trainer_class` wraps the trainer class RecBole picks for a model (Trainer,
TraditionalTrainer, a model's own trainer) so that validation during ``fit`` and the final test both

* rank the protocol's candidates (``mask_history``; see :mod:`recbole_blairclip.evaluation.protocol`),
  replacing RecBole's general-model history mask, for general and sequential models alike;
* hand models with ``uses_eval_history = True`` (TFIDF) every earlier item as ``item_id_list``;
* build the top-k ranks deterministically (pessimistic ties) and report ``gauc`` as ``auc``;
* leave the cold-start / warm views of the last evaluation in ``trainer.last_views``;
* reload a best checkpoint through :func:`recbole_blairclip.compat.load_recbole_checkpoint` (torch >= 2.6);
* call its :class:`TrainerHooks` after every training epoch, every validation and every evaluated batch (the
  run's one seam for per-epoch timing, per-validation reports and score capture: benchmark and tune use it,
  the tests' independent metric check captures scores with it; nothing patches the trainer);
* call the model's ``after_optimizer_step()``, when it has one, after every optimiser step (a post-step hook
  on RecBole's optimizer: BLaIRCLIP clamps its logit scale there, as open_clip does).

``trainer.keep_ranks = True`` leaves the per-user ranks of the last evaluation in ``trainer.last_ranks`` (a
:func:`recbole_blairclip.evaluation.ranks.ranks_table`: user and target tokens, rank, average rank,
candidates, cold-start flag), from which every metric is recomputed.
"""
import logging
import time

import numpy as np
import torch
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer

from recbole_blairclip.compat import load_recbole_checkpoint
from recbole_blairclip.evaluation.coldstart import coldstart_views
from recbole_blairclip.evaluation.protocol import PHASE_ATTR, ProtocolCollector, report_names
from recbole_blairclip.evaluation.ranks import metric_name, ranks_table


class TrainerHooks:
    """Callbacks of one training run; subclass and override what you need (all default to nothing).

    RecBole's own ``fit(callback_fn=...)`` gets only the validation score; these get the timing, the loss and
    every validation metric too. They run in the training process, after RecBole's epoch bookkeeping.
    """

    def on_train_epoch(self, trainer, epoch_idx, seconds, loss):
        """After training epoch ``epoch_idx`` (0-based): its wall seconds and RecBole's loss (a float or a
        tuple of per-term losses)."""

    def on_valid(self, trainer, seconds, score, result):
        """After a validation: its wall seconds, the valid_metric score and the dict of every metric."""

    def on_eval_batch(self, trainer, users, scores, positive_u, positive_i):
        """After scoring one full-sort evaluation batch (validation or test): internal user ids per row, the
        ``rows x items`` scores with the protocol's masked candidates at ``-inf``, and the targets as
        ``(row, item)`` pairs. The tensors are the trainer's own (on its device): copy what you keep."""


class ProtocolTrainerMixin:
    """Mixed in before a RecBole trainer class (see the module docstring)."""

    def __init__(self, config, model, hooks=()):
        super().__init__(config, model)
        self.hooks = list(hooks)
        after_step = getattr(model, "after_optimizer_step", None)
        if callable(after_step) and hasattr(self, "optimizer"):  # e.g. BLaIRCLIP's logit-scale clamp
            self.optimizer.register_step_post_hook(lambda optimizer, args, kwargs: after_step())
        mask = config["mask_history"]
        self.mask_history = True if mask is None else bool(mask)
        self.eval_collector = ProtocolCollector(config)
        self.valid_metric = metric_name(self.valid_metric)  # RecBole lower-cases it; results use the same names
        self.last_views = None
        self.keep_ranks = False
        self.last_ranks = None
        self._phase = None
        self._cold_rows = []
        self._warned = False

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, *args, **kwargs)
        seconds = time.perf_counter() - start
        for hook in self.hooks:
            hook.on_train_epoch(self, epoch_idx, seconds, loss)
        return loss

    def _valid_epoch(self, valid_data, *args, **kwargs):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, *args, **kwargs)
        seconds = time.perf_counter() - start
        for hook in self.hooks:
            hook.on_valid(self, seconds, score, result)
        return score, result

    def _full_sort_batch_eval(self, batched_data):
        interaction, history_index, positive_u, positive_i = batched_data
        phase = self._phase
        if phase is None:  # a loader not made by quick_start.prepare: RecBole's own behaviour
            return super()._full_sort_batch_eval(batched_data)
        users = interaction[self.config["USER_ID_FIELD"]]
        if getattr(self.model, "uses_eval_history", False) and phase.list_field not in interaction.columns:
            interaction.update(Interaction(phase.history(users)))
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(
            (interaction, None, positive_u, positive_i)
        )
        if self.mask_history:
            rows, items = phase.excluded_pairs(users, positive_u, positive_i)
            scores[rows.to(scores.device), items.to(scores.device)] = -np.inf
        self._cold_rows.append(phase.coldstart_rows(scores.shape[0], positive_u, positive_i))
        for hook in self.hooks:
            hook.on_eval_batch(self, users, scores, positive_u, positive_i)
        return interaction, scores, positive_u, positive_i

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_recbole_checkpoint(checkpoint_file, map_location=self.device)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        self._phase = getattr(eval_data, PHASE_ATTR, None)
        if self._phase is None and not self._warned:
            self._warned = True
            logging.getLogger().warning(
                "evaluation loader has no shared protocol attached (build loaders with "
                "recbole_blairclip.quick_start.prepare): using RecBole's own candidates"
            )
        self._cold_rows = []
        self.last_views = None
        self.last_ranks = None
        self.eval_collector.last_struct = None
        self.eval_collector.keep_ranks = bool(self.keep_ranks) and self._phase is not None
        self.eval_collector.reset_ranks()
        try:
            result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        finally:
            phase, self._phase = self._phase, None
        struct = self.eval_collector.last_struct
        if phase is not None and self._cold_rows and struct is not None and self.config["single_spec"]:
            self.last_views = coldstart_views(self.evaluator, struct, torch.cat(self._cold_rows))
        if self.eval_collector.keep_ranks and self._cold_rows:
            self.last_ranks = self._ranks_table(eval_data._dataset, torch.cat(self._cold_rows).cpu().numpy())
        self.eval_collector.keep_ranks = False
        return report_names(result)

    def _ranks_table(self, dataset, cold_rows):
        batches = self.eval_collector.rank_batches
        self.eval_collector.reset_ranks()
        columns = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]} if batches else None
        if columns is None:
            return None
        return ranks_table(
            dataset.id2token(self.config["USER_ID_FIELD"], columns["user"]),
            dataset.id2token(self.config["ITEM_ID_FIELD"], columns["item"]),
            columns["rank"],
            columns["rank_avg"],
            columns["n_candidates"],
            cold_rows[columns["row"]],
        )


_CLASSES = {}


def protocol_trainer_class(base):
    """``base`` (a RecBole trainer class) with :class:`ProtocolTrainerMixin` mixed in (cached). Trainers
    outside RecBole's ``Trainer`` family (decision trees: no full-sort ranking) are returned unchanged."""
    if issubclass(base, ProtocolTrainerMixin) or not issubclass(base, Trainer):
        return base
    if base not in _CLASSES:
        _CLASSES[base] = type(f"Protocol{base.__name__}", (ProtocolTrainerMixin, base), {"__doc__": base.__doc__})
    return _CLASSES[base]


__all__ = ["ProtocolTrainerMixin", "TrainerHooks", "protocol_trainer_class"]
