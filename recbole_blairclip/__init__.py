"""recbole-blairclip: a RecBole plugin that benchmarks multimodal product recommendation.

Importing the package applies :mod:`recbole_blairclip.compat` before RecBole or Ray is imported.
"""
from recbole_blairclip import compat as _compat

_compat.apply()

__version__ = "0.1.0"


def run(*args, **kwargs):
    """Train and test one model; see :func:`recbole_blairclip.quick_start.run`."""
    from recbole_blairclip.quick_start import run as _run

    return _run(*args, **kwargs)


__all__ = ["run", "__version__"]
