"""recbole-blairclip: a RecBole plugin that benchmarks multimodal product recommendation.

Importing the package applies :mod:`recbole_blairclip.compat` before RecBole or Ray is imported. The
Python API mirrors the CLI; each function is imported on first use, so ``import recbole_blairclip`` stays
light:

=====================  ==========================================================  ======================
function               does                                                        CLI
=====================  ==========================================================  ======================
``run``                train and test one model (plugin or RecBole)                ``run_recbole``
``convert``            Amazon Reviews files -> RecBole atomic files, LOO split     ``blairclip convert``
``synthesize``         synthetic Appliances-like raw files (+ images)              ``blairclip synth``
``check_split``        independent brute-force check of a converted split          ``blairclip check-split``
``extract_features``   text / image embeddings aligned to ``<name>.item``          ``blairclip features``
``load_features``      read and verify them                                        -
=====================  ==========================================================  ======================

``blairclip benchmark`` and ``blairclip tune`` are ``recbole_blairclip.benchmark.runner.benchmark`` and
``recbole_blairclip.tune.search.tune`` (their sub-packages carry those names).
"""
import importlib

from recbole_blairclip import compat as _compat

_compat.apply()

__version__ = "0.1.0"

_API = {
    "run": "recbole_blairclip.quick_start",
    "convert": "recbole_blairclip.data.convert",
    "synthesize": "recbole_blairclip.data.synth",
    "check_split": "recbole_blairclip.data.check",
    "extract_features": "recbole_blairclip.features.extract",
    "load_features": "recbole_blairclip.features.store",
}


def __getattr__(name):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'recbole_blairclip' has no attribute {name!r}")


__all__ = [*_API, "__version__"]
