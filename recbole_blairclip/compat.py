"""Fixes RecBole 1.2.1 needs on today's Python stack; imported first by ``recbole_blairclip``.

The project installs the measured working set (see README, "Why these pins"): numpy < 2, pandas < 3,
setuptools < 81 (ray 2.6.3 imports ``pkg_resources``). This module

* fails early, with the fix, when pandas >= 3 is installed (it silently breaks RecBole's ``token_seq``
  fields) or ``pkg_resources`` is missing (ray 2.6.3, imported by ``recbole.quick_start``, needs it);
* re-creates the numpy aliases RecBole and ray 2.6.3 still use (``np.float_``, ``np.complex_``,
  ``np.unicode_``, ``np.bool8``) when numpy >= 2 is present anyway; with numpy < 2 it does nothing, so
  Ray's worker processes need no set-up hook;
* restores ``scipy.sparse.dok_matrix._update`` (removed in recent scipy), which RecBole's graph models
  (LightGCN, NGCF, GCMC, NCL, SpectralCF, KGIN, MCCLK) call to build their adjacency matrix;
* loads RecBole checkpoints, which pickle their ``Config``: torch >= 2.6 refuses them with the default
  ``weights_only=True``. :func:`load_recbole_checkpoint` is the only place in the project that passes
  ``weights_only=False``. Load only checkpoints you trust (your own runs): unpickling runs code.
"""
import importlib.util

import numpy as np

_NUMPY_ALIASES = {"float_": "float64", "complex_": "complex128", "unicode_": "str_", "bool8": "bool_"}


def _dok_update(self, data):
    """Bulk insert {(row, col): value} without per-item checks, as scipy's old private method did."""
    self._dict.update(data)


def apply():
    """Make RecBole 1.2.1 and ray 2.6.3 importable on this interpreter (idempotent)."""
    for alias, target in _NUMPY_ALIASES.items():
        if not hasattr(np, alias):
            setattr(np, alias, getattr(np, target))
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update") and hasattr(sp.dok_matrix((1, 1)), "_dict"):
        sp.dok_matrix._update = _dok_update
    import pandas as pd

    if int(pd.__version__.split(".")[0]) >= 3:
        raise ImportError(
            f"recbole-blairclip needs pandas < 3 (found {pd.__version__}): pandas 3 breaks RecBole's "
            "token_seq fields. Run: pip install 'pandas<3'"
        )
    if importlib.util.find_spec("pkg_resources") is None:
        raise ImportError(
            "ray 2.6.3 (required by RecBole 1.2.1) imports pkg_resources, removed in setuptools >= 81. "
            "Run: pip install 'setuptools<81'"
        )


def load_recbole_checkpoint(path, map_location="cpu"):
    """Load a RecBole checkpoint (a dict with ``config``, ``state_dict``, ``other_parameter``, ...).

    RecBole pickles its Config into every checkpoint, so this needs ``weights_only=False``: it can run
    arbitrary code from the file. Only load checkpoints you produced or otherwise trust.
    """
    import torch

    return torch.load(path, map_location=map_location, weights_only=False)
