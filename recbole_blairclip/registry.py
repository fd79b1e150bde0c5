"""Model lookup: the plugin's own models first, then RecBole's built-in models.

Plugin models are registered by name -> module path and imported lazily, so listing models or running a
built-in one never imports the plugin's heavier modules. An unknown name raises a one-line
:class:`~recbole_blairclip.errors.ConfigError` with close matches (RecBole's own lookup would first try
to import its LightGBM/XGBoost package and fail with ModuleNotFoundError).
"""
import difflib
import importlib
import importlib.resources
import importlib.util

from recbole_blairclip.errors import ConfigError

# model name -> module that defines a class of that name (one model per file)
PLUGIN_MODELS = {
    "BLaIRCLIP": "recbole_blairclip.model.blairclip",
    "TFIDF": "recbole_blairclip.model.tfidf",
}

# RecBole's model sub-packages, in the order RecBole's own get_model searches them
_RECBOLE_SUBPACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)


def register_model(name, target):
    """Register a plugin model: ``target`` is a module path (imported lazily) or the class itself."""
    PLUGIN_MODELS[name] = target


def plugin_model_names():
    """Names of the registered plugin models whose module is importable."""
    names = []
    for name, target in PLUGIN_MODELS.items():
        if not isinstance(target, str) or importlib.util.find_spec(target) is not None:
            names.append(name)
    return sorted(names)


def _recbole_module_path(name):
    for sub in _RECBOLE_SUBPACKAGES:
        path = f"recbole.model.{sub}.{name.lower()}"
        try:
            found = importlib.util.find_spec(path) is not None
        except ImportError:  # exlib_recommender needs lightgbm / xgboost installed
            found = False
        if found:
            return path
    return None


def recbole_model_names():
    """RecBole's built-in model names (those with a default yaml and a module of that name)."""
    files = importlib.resources.files("recbole.properties.model").iterdir()
    names = [f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml")]
    return sorted(n for n in names if _recbole_module_path(n) is not None)


def all_model_names():
    return plugin_model_names() + [n for n in recbole_model_names() if n not in PLUGIN_MODELS]


def get_model(name):
    """Return the model class for ``name``: plugin models first, then RecBole's."""
    if not isinstance(name, str):
        return name
    if name in PLUGIN_MODELS:
        target = PLUGIN_MODELS[name]
        if not isinstance(target, str):
            return target
        if importlib.util.find_spec(target) is not None:
            return getattr(importlib.import_module(target), name)
    path = _recbole_module_path(name)
    if path is not None:
        module = importlib.import_module(path)
        if hasattr(module, name):
            return getattr(module, name)
    close = difflib.get_close_matches(name, all_model_names(), n=3, cutoff=0.5)
    if not close:
        close = [n for n in all_model_names() if n.lower() == name.lower()]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown model {name!r}.{hint} Run `blairclip models` to list plugin and RecBole models."
    )
