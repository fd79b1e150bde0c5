"""The lexical item index: the catalogue's TF-IDF item matrix (scikit-learn) and cosine scores of weighted
history profiles against every item. TFIDF is this index and nothing else; BLaIRCLIP adds it as a lexical
channel (``lexical_weight``), so that exact words (part numbers, brands, models) reach the ranking.

Sparse throughout. The item matrix X (items x vocabulary, rows as fitted by scikit-learn) is kept as the
three 1-D arrays of a CSR matrix. A batch of histories is scored as

    P = W @ X            W: rows x items history weights (scipy CSR), so P holds only the non-zeros of
                         the history rows; each row divided by its norm (LexicalIndex.profiles, every device)
    S = P @ X^T / |X_j|  cosines, rows x items

On CPU (model/lexical_cpu.py), S is three exact sums over disjoint term sets chosen by cost: a dense
GEMM over the most frequent terms, a sparse x dense product over the next ones and a sparse x sparse
product over the rare rest, in item tiles; on CUDA, X as a torch sparse CSR tensor times P scattered into
a dense vocabulary x rows block. The only dense blocks are items x head (at most 2 floats per non-zero,
lexical_cpu), a tile x rows workspace, vocabulary x rows (CUDA, in chunks bounded by ``_DENSE_BUDGET``
floats) and the rows x items score matrix every full-sort model returns; an items x vocabulary dense
matrix never exists.

Items with empty text have a zero vector and score 0 (never NaN); so does every item for a history that
has no text.
"""
import warnings

import numpy as np
import torch
import torch.nn as nn

from recbole_blairclip.errors import ConfigError

PROFILES = ("mean", "recency", "last")
_DENSE_BUDGET = 1 << 24  # floats in one rows x vocabulary block (64 MiB in float32)

# the tfidf_* keys and their values when a model's yaml does not set them (TFIDF.yaml sets every one)
VECTORIZER_DEFAULTS = {
    "tfidf_lowercase": True, "tfidf_token_pattern": r"(?u)\b\w\w+\b", "tfidf_ngram_range": [1, 1],
    "tfidf_min_df": 1, "tfidf_max_df": 1.0, "tfidf_max_features": None, "tfidf_stop_words": None,
    "tfidf_sublinear_tf": True, "tfidf_smooth_idf": True, "tfidf_norm": "l2",
}


def _key(config, key):
    value = config[key]
    return VECTORIZER_DEFAULTS[key] if value is None else value


def build_vectorizer(config):
    """scikit-learn TfidfVectorizer from the ``tfidf_*`` config keys (ConfigError on bad values)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    ngram = _key(config, "tfidf_ngram_range") or [1, 1]
    if len(ngram) != 2 or not all(isinstance(n, int) and n >= 1 for n in ngram) or ngram[0] > ngram[1]:
        raise ConfigError(f"tfidf_ngram_range must be [min_n, max_n] with 1 <= min_n <= max_n, got {ngram}")
    norm = _key(config, "tfidf_norm")
    if norm in ("none", "None", "null"):
        norm = None
    if norm not in (None, "l1", "l2"):
        raise ConfigError(f"tfidf_norm must be l2, l1 or null, got {norm!r}")
    return TfidfVectorizer(
        lowercase=bool(_key(config, "tfidf_lowercase")),
        token_pattern=_key(config, "tfidf_token_pattern"),
        ngram_range=tuple(ngram),
        min_df=_key(config, "tfidf_min_df"),
        max_df=_key(config, "tfidf_max_df"),
        max_features=_key(config, "tfidf_max_features"),
        stop_words=_key(config, "tfidf_stop_words"),
        sublinear_tf=bool(_key(config, "tfidf_sublinear_tf")),
        smooth_idf=bool(_key(config, "tfidf_smooth_idf")),
        norm=norm,
        dtype=np.float32,
    )


def fit_item_matrix(docs, config, source="item text"):
    """The items x vocabulary TF-IDF matrix (scipy CSR, float32) of ``docs`` (one string per item id, row 0
    = padding); row 0 and empty texts = 0.

    The vocabulary and idf are fitted on the items that have text (items without meta data do not
    count as documents); the items without text get zero rows."""
    import scipy.sparse as sp

    vectorizer = build_vectorizer(config)
    has_text = np.array([bool(d.strip()) for d in docs])
    has_text[0] = False  # padding
    if not has_text.any():
        return sp.csr_matrix((len(docs), 0), dtype=np.float32)
    try:  # idf counts the documents that have text; one tokenisation pass
        fitted = vectorizer.fit_transform([d for d, keep in zip(docs, has_text) if keep]).tocsr()
    except ValueError as exc:  # empty vocabulary after min_df / max_df / stop words, min_df > max_df
        raise ConfigError(f"could not build a TF-IDF vocabulary from {source}: {exc}") from None
    row_nnz = np.zeros(len(docs), dtype=np.int64)
    row_nnz[has_text] = np.diff(fitted.indptr)
    indptr = np.concatenate([[0], np.cumsum(row_nnz)])
    matrix = sp.csr_matrix((fitted.data, fitted.indices, indptr), shape=(len(docs), fitted.shape[1]))
    matrix.sort_indices()
    return matrix.astype(np.float32)


def history_weights(hist, lengths, profile="mean", decay=0.7):
    """Weight of each history position (rows oldest first, 0 = padding): ``mean`` 1, ``recency``
    decay**age (0 = most recent), ``last`` the most recent item only."""
    if profile not in PROFILES:
        raise ConfigError(f"history profile must be one of {list(PROFILES)}, got {profile!r}")
    width = hist.shape[1]
    positions = torch.arange(width, device=hist.device)[None, :]
    age = lengths[:, None] - 1 - positions  # 0 = most recent
    present = (age >= 0) & (hist > 0)
    if profile == "mean":
        return present.float()
    if profile == "recency":
        return torch.where(present, decay ** age.clamp_min(0).float(), 0.0)
    return (present & (age == 0)).float()


class LexicalIndex(nn.Module):
    """The TF-IDF item matrix as buffers (saved with the checkpoint, moved with ``.to(device)``) and the
    cosine scores of history profiles against every item (see the module docstring).

    ``matrix``: scipy CSR items x vocabulary (:func:`fit_item_matrix`); ``mean_history``: the mean number of
    history items of a scored row, which sets the CPU term split (:func:`~recbole_blairclip.model.lexical_cpu.term_split`)."""

    def __init__(self, matrix, mean_history=1.0):
        super().__init__()
        self.n_items = int(matrix.shape[0])
        self.mean_history = float(mean_history)
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel()).astype(np.float32)
        self.register_buffer("item_crow", torch.from_numpy(matrix.indptr.astype(np.int64)))
        self.register_buffer("item_col", torch.from_numpy(matrix.indices.astype(np.int64)))
        self.register_buffer("item_val", torch.from_numpy(matrix.data.astype(np.float32)))
        self.register_buffer("item_norm", torch.from_numpy(norms))
        self.register_buffer("n_terms", torch.tensor(int(matrix.shape[1]), dtype=torch.int64))

    def extra_repr(self):
        return f"items={self.n_items}, terms={int(self.n_terms)}, non-zeros={self.item_val.numel()}"

    def item_matrix(self):
        """The TF-IDF item matrix as a torch sparse CSR tensor on the model's device (a view of buffers)."""
        with warnings.catch_warnings():  # "sparse CSR support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(
                self.item_crow, self.item_col, self.item_val, size=(self.n_items, int(self.n_terms)),
                check_invariants=False,
            )

    def _cached(self, name, build):
        """``build()``, cached under ``name`` until a buffer changes (device move, checkpoint load)."""
        key = (self.item_val.device, self.item_val.data_ptr(), self.item_val._version, self.item_col._version,
               self.item_crow._version)
        cache = self.__dict__.setdefault("_cache", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, build())
        return cache[name][1]

    def item_csr(self):
        """The TF-IDF item matrix as scipy CSR on the CPU (the buffers themselves when they are there)."""
        import scipy.sparse as sp

        return self._cached("item_csr", lambda: sp.csr_matrix(
            (self.item_val.cpu().numpy(), self.item_col.cpu().numpy(), self.item_crow.cpu().numpy()),
            shape=(self.n_items, int(self.n_terms)),
        ))

    def profiles(self, hist, weights):
        """The unit user profiles of a chunk, for every device: scipy CSR users x vocabulary (float32,
        canonical: sorted columns, no repeats; a user without profile keeps an empty row).

        Profile of a user = sum over its history items i of weight_i * X[i], one scipy product W @ X
        (W: users x items history weights) that touches only the non-zeros of those rows; then divided by
        its norm, so that its products with unit item rows are cosines.
        """
        import scipy.sparse as sp

        hist, weights = hist.cpu().numpy(), weights.cpu().numpy()
        n_users = hist.shape[0]
        keep = weights > 0
        rows = np.broadcast_to(np.arange(n_users)[:, None], keep.shape)[keep]
        W = sp.csr_matrix((weights[keep], (rows, hist[keep])), shape=(n_users, self.n_items))
        P = W @ self.item_csr()
        P.sum_duplicates()
        row_of = np.repeat(np.arange(n_users), np.diff(P.indptr))
        norms = np.sqrt(np.bincount(row_of, weights=np.square(P.data, dtype=np.float64), minlength=n_users))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        P.data = (P.data * inv[row_of]).astype(np.float32)
        return P

    def cpu_scorer(self):
        """The item side of CPU scoring (:class:`~recbole_blairclip.model.lexical_cpu.TiledScorer`: the term
        split by cost, the dense head block and the item tiles), built from the buffers with unit item rows
        (so its products are cosines) and cached, not saved; rebuilt when a buffer changes (device move,
        checkpoint load)."""
        return self._cached("cpu_scorer", self._build_cpu_scorer)

    def _build_cpu_scorer(self):
        import scipy.sparse as sp

        from recbole_blairclip.model.lexical_cpu import TiledScorer

        norms = self.item_norm.cpu().numpy()
        inv_norm = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0).astype(np.float32)
        unit = (sp.diags(inv_norm) @ self.item_csr()).tocsr()  # unit rows; zero rows stay zero
        unit.sort_indices()
        return TiledScorer(unit, mean_history=self.mean_history)

    def _scores_spmm(self, P, out, block):
        """Cosines of a chunk's unit profiles ``P`` (:meth:`profiles`) on any device (the CUDA path): the
        profiles go into ``block`` (a zero vocabulary x users dense block, at least as wide as the chunk;
        only the touched entries are written and cleared again), multiplied by the sparse item matrix
        and divided by the item norms, written into ``out`` (users x items)."""
        device = out.device
        P = P.tocoo()
        terms = torch.from_numpy(P.col.astype(np.int64)).to(device)
        users = torch.from_numpy(P.row.astype(np.int64)).to(device)
        block = block[:, : P.shape[0]]
        block[terms, users] = torch.from_numpy(P.data).to(device)
        dots = torch.sparse.mm(self.item_matrix(), block)  # items x users: sparse x dense
        block[terms, users] = 0.0
        norm = self.item_norm[:, None]
        out.copy_(torch.where(norm > 0, dots / norm.clamp_min(1e-30), torch.zeros((), device=device)).t())
        return out

    def scores(self, hist, weights):
        """Cosine scores (rows x items) of the weighted history profiles (``hist``, ``weights``: rows x
        positions) against every item.

        Users are scored in chunks, each chunk's unit profiles built by :meth:`profiles`. On CPU a chunk
        is scored by :meth:`cpu_scorer` (dense GEMM over the most frequent terms, sparse x dense over the
        next ones, sparse x sparse over the rare rest, in item tiles); elsewhere (CUDA) by :meth:`_scores_spmm` (sparse item matrix x one reused dense
        vocabulary x users block). Both compute the same sums of products.
        """
        n_users = hist.shape[0]
        n_terms = int(self.n_terms)
        device = self.item_val.device
        if n_terms == 0 or n_users == 0:
            return torch.zeros(n_users, self.n_items, device=device)
        chunk = max(1, min(n_users, _DENSE_BUDGET // n_terms))
        block = None if device.type == "cpu" else torch.zeros(n_terms, chunk, device=device)
        out = torch.empty(n_users, self.n_items, device=device)
        for start in range(0, n_users, chunk):
            stop = min(start + chunk, n_users)
            P = self.profiles(hist[start:stop], weights[start:stop])
            if block is None:
                self.cpu_scorer().score(P, out[start:stop])
            else:
                self._scores_spmm(P, out[start:stop], block)
        return out


__all__ = ["PROFILES", "VECTORIZER_DEFAULTS", "build_vectorizer", "fit_item_matrix", "history_weights", "LexicalIndex"]
