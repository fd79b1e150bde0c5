"""Type and range checks of the config keys RecBole and the plugin models read.

:func:`check_config` runs on the merged configuration before RecBole derives anything from it, so that
``--epochs=0`` (an untrained model reported as a result), ``--learning_rate=abc`` (a traceback deep in
the optimizer) or ``embedding_size: "64a"`` stop at once with one line naming the key, the value and what
is expected. A key that is absent is not checked (RecBole or the model supplies it); ``None`` is accepted
only where RecBole itself gives it a meaning.
"""
import math

from recbole_blairclip.errors import ConfigError


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def positive_int(value):
    return _is_int(value) and value >= 1


def non_negative_int(value):
    return _is_int(value) and value >= 0


def positive_number(value):
    return _is_number(value) and value > 0


def non_negative_number(value):
    return _is_number(value) and value >= 0


def probability(value):  # a dropout rate: 1.0 would drop everything
    return _is_number(value) and 0 <= value < 1


def boolean(value):
    return isinstance(value, bool)


def int_or_int_list(value):
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(positive_int(v) for v in value)
    return positive_int(value)


def one_of(*choices):
    def check(value):
        return value in choices
    check.expected = "one of " + ", ".join(map(str, choices))
    return check


EXPECTED = {
    positive_int: "a whole number >= 1",
    non_negative_int: "a whole number >= 0",
    positive_number: "a finite number > 0 (e.g. 0.001)",
    non_negative_number: "a finite number >= 0",
    probability: "a number in [0, 1)",
    boolean: "true or false",
    int_or_int_list: "a whole number >= 1 or a non-empty list of them (e.g. [10, 50])",
}

# key -> (check, None allowed); keys every RecBole run reads
COMMON = {
    "epochs": (positive_int, False),
    "train_batch_size": (positive_int, False),
    "eval_batch_size": (positive_int, False),
    "learning_rate": (positive_number, False),
    "weight_decay": (non_negative_number, True),
    "stopping_step": (positive_int, False),
    "eval_step": (non_negative_int, False),
    "seed": (non_negative_int, False),
    "topk": (int_or_int_list, False),
    "MAX_ITEM_LIST_LENGTH": (positive_int, True),
    "mask_history": (boolean, False),
    "show_progress": (boolean, False),
    "reproducibility": (boolean, False),
    "use_gpu": (boolean, False),
    # keys with one meaning across RecBole's models (checked for whichever model reads them)
    "embedding_size": (positive_int, False),
    "hidden_size": (positive_int, False),
    "n_layers": (positive_int, False),
    "n_heads": (positive_int, False),
    "inner_size": (positive_int, False),
    "hidden_dropout_prob": (probability, False),
    "attn_dropout_prob": (probability, False),
    "dropout_prob": (probability, False),
    "layer_norm_eps": (positive_number, False),
}

PER_MODEL = {
    "BLaIRCLIP": {
        "text_mode": (one_of("frozen", "finetune"), False),
        "fusion": (one_of("sum", "concat", "gated"), False),
        "pooler_type": (one_of("cls", "cls_before_pooler", "avg"), False),
        "seq_encoder": (one_of("transformer", "mean"), False),
        "train_rows": (one_of("user", "prefix"), False),
        "use_image": (boolean, False),
        "use_item_id": (boolean, False),
        "missing_id": (boolean, False),
        "id_neighbours": (non_negative_int, False),
        "trim_batches": (boolean, False),
        "clip_weight": (non_negative_number, False),
        "temperature": (positive_number, False),
        "max_logit_scale": (positive_number, False),
        "initializer_range": (positive_number, False),
        "item_chunk_size": (positive_int, False),
        "clip_max_items": (positive_int, False),
        "length_groups": (positive_int, False),
        "text_max_length": (positive_int, False),
        "text_batch_size": (positive_int, False),
        "finetune_layers": (non_negative_int, False),
        "lexical_weight": (non_negative_number, False),
        "lexical_profile": (one_of("mean", "recency", "last"), False),
        "lexical_decay": (probability, False),
        "cold_lexical_weight": (non_negative_number, False),
        "unseen_negatives": (boolean, False),
    },
    "TFIDF": {
        "user_profile": (one_of("mean", "recency", "last"), False),
        "recency_decay": (positive_number, False),
        "tfidf_max_features": (positive_int, True),
        "tfidf_lowercase": (boolean, False),
        "tfidf_sublinear_tf": (boolean, False),
        "tfidf_smooth_idf": (boolean, False),
    },
    # RecBole's KD_DAGFM builds its teacher with eval(config["teacher"]): only its two class names may pass
    "KD_DAGFM": {"teacher": (one_of("CrossNet", "CIN"), False)},
}


def check_config(config_dict, model=None):
    """Raise :class:`ConfigError` for the first key whose value has the wrong type or range."""
    rules = dict(COMMON)
    rules.update(PER_MODEL.get(str(model), {}))
    for key, (check, none_ok) in rules.items():
        if key not in config_dict:
            continue
        value = config_dict[key]
        if value is None and none_ok:
            continue
        if not check(value):
            expected = getattr(check, "expected", None) or EXPECTED[check]
            raise ConfigError(f"config key {key!r} = {value!r}: expected {expected}")
