"""CPU scoring of unit TF-IDF profiles against unit item rows: the term split by cost and the item tiles.

A chunk of users is scored as S = P @ X^T (P: users x vocabulary unit profiles, X: items x vocabulary unit
rows), exactly, as three sums over disjoint term sets chosen by document frequency (df):

* **head** (the most frequent terms): one dense GEMM, items x head times head x users;
* **mid**: MKL sparse x dense, the items x mid CSR slice times the chunk's mid profile as a dense
  mid x users block (every posting of those terms is read once per chunk, for all users at once);
* **rare** (the rest, most of the vocabulary): sparse x sparse, the users' few rare terms times the rare
  rows of X^T (a user touches only the items that share one of its rare terms).

Each term goes where it costs least (:func:`term_split`, the cost constants below, measured on the
benchmark shape in benchmarks/RESULTS.md). The work runs over item tiles: for each tile the head GEMM and
the mid product are written into a small items x users workspace (the layout in which both kernels run
fastest: long contiguous rows), copied transposed into the users x items output, and the rare product is
added there. Memory: the head block is capped at ``_HEAD_FLOATS_PER_NNZ`` floats per non-zero of X, the
mid and rare tiles hold each non-zero once: O(non-zeros).
"""
import warnings

import numpy as np
import torch

# cost of each kind of work, in nanoseconds, 1 CPU thread (benchmarks/RESULTS.md, issue 16: measured on the
# 94,000 x 50,000 benchmark matrix, 256 users per chunk); only their ratios matter
_GEMM_NS = 0.032  # one multiply-add of the head GEMM, per item and user (items x users layout)
_SPMM_NS = 0.2  # one posting of the mid product, per user of the chunk (MKL CSR x dense, items x users layout)
_SCATTER_NS = 4.0  # one scattered add of the rare product (a posting of a term one user has)
_HEAD_MAX = 256  # at most this many head terms
_HEAD_FLOATS_PER_NNZ = 2  # the dense head holds at most this many floats per non-zero of the item matrix
_TILE = 4096  # items per tile: the workspace is tile x users floats


def term_split(df, n_items, mean_history, nnz):
    """``(kind, order)``: ``order`` = the terms by falling df (stable), ``kind[t]`` = 0 head, 1 mid, 2 rare.

    Per term and per user of a chunk: as a head column it costs ``n_items`` GEMM multiply-adds; as mid, its
    ``df`` postings once each; as rare, ``df`` scattered adds for a user who has it, with probability
    ``1 - (1 - df / n_items) ** h`` for a user of ``h`` (= ``mean_history``) history items. Each term takes
    the cheapest; the head keeps at most ``_HEAD_MAX`` terms and ``_HEAD_FLOATS_PER_NNZ * nnz / n_items``
    columns, its most frequent ones, and the others it wanted go to the cheaper of mid and rare.
    """
    df = np.asarray(df, dtype=np.float64)
    n = max(int(n_items), 1)
    h = max(float(mean_history), 1.0)
    share = 1.0 - (1.0 - np.minimum(df / n, 1.0)) ** h
    head_cost = np.full(len(df), n * _GEMM_NS)
    mid_cost = df * _SPMM_NS
    rare_cost = share * df * _SCATTER_NS
    kind = np.argmin(np.stack([head_cost, mid_cost, rare_cost]), axis=0)
    order = np.argsort(-df, kind="stable")
    cap = int(min(_HEAD_MAX, len(df), _HEAD_FLOATS_PER_NNZ * nnz // n))
    wants_head = order[kind[order] == 0]  # most frequent first
    overflow = wants_head[cap:]
    kind[overflow] = np.where(mid_cost[overflow] <= rare_cost[overflow], 1, 2)
    return kind, order


def _torch_csr(m, index, size):
    """scipy CSR -> torch sparse CSR with ``index`` (int32 / int64) indices."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(index)), torch.from_numpy(m.indices.astype(index)),
            torch.from_numpy(m.data.astype(np.float32)), size=size,
        )


class TiledScorer:
    """The item side of CPU scoring, built once from the unit item matrix ``X`` (scipy CSR, items x
    vocabulary, float32): term slots by kind, the dense head block, and per item tile (``tile`` items,
    default ``_TILE``) the mid CSR slice (tile x mid) and the rare CSR transpose (rare x tile)."""

    def __init__(self, X, mean_history=1.0, tile=None):
        n_items, n_terms = X.shape
        self.n_items, self.n_terms, self.tile = int(n_items), int(n_terms), max(1, int(tile or _TILE))
        df = np.bincount(X.indices, minlength=n_terms)
        kind, order = term_split(df, n_items, mean_history, X.nnz)
        ordered = order[np.argsort(kind[order], kind="stable")]  # head, mid, rare; each by falling df
        self.n_head, self.n_mid = int((kind == 0).sum()), int((kind == 1).sum())
        self.n_rare = n_terms - self.n_head - self.n_mid
        rank = np.empty(n_terms, dtype=np.int64)
        rank[ordered] = np.arange(n_terms)
        self.rank = rank  # term -> position: [0, n_head) head, then mid, then rare
        Xr = X.copy()
        Xr.indices = rank[X.indices].astype(X.indices.dtype)  # columns renumbered: head, mid, rare
        Xr.has_sorted_indices = False
        Xr.sort_indices()
        h, m = self.n_head, self.n_head + self.n_mid
        self.head = torch.from_numpy(np.ascontiguousarray(Xr[:, :h].toarray(), dtype=np.float32))  # items x head
        index = np.int32 if X.nnz < 2**31 and n_terms < 2**31 and n_items < 2**31 else np.int64
        self.index = index
        self.tiles = []
        for a in range(0, self.n_items, self.tile):
            b = min(a + self.tile, self.n_items)
            block = Xr[a:b]
            mid = block[:, h:m] if self.n_mid else None
            rare = block[:, m:].T.tocsr() if self.n_rare else None
            if rare is not None:
                rare.sort_indices()
            self.tiles.append((
                a, b,
                _torch_csr(mid, index, (b - a, self.n_mid)) if mid is not None and mid.nnz else None,
                _torch_csr(rare, index, (self.n_rare, b - a)) if rare is not None and rare.nnz else None,
            ))

    def memory_floats(self):
        """Floats and indices held (the head block plus every tile's values and indices)."""
        total = self.head.numel()
        for _, _, mid, rare in self.tiles:
            for t in (mid, rare):
                if t is not None:
                    total += t.values().numel() + t.col_indices().numel() + t.crow_indices().numel()
        return total

    def score(self, P, out):
        """Cosines of the unit profiles ``P`` (scipy CSR users x vocabulary) written into ``out`` (users x
        items, contiguous)."""
        n_users = P.shape[0]
        row_of = np.repeat(np.arange(n_users), np.diff(P.indptr))
        slot = self.rank[P.indices]
        values = P.data.astype(np.float32, copy=False)
        h, m = self.n_head, self.n_head + self.n_mid
        in_head, in_rare = slot < h, slot >= m
        in_mid = ~in_head & ~in_rare
        head_T = np.zeros((h, n_users), dtype=np.float32)  # head x users
        head_T[slot[in_head], row_of[in_head]] = values[in_head]
        mid_T = np.zeros((self.n_mid, n_users), dtype=np.float32)  # mid x users
        mid_T[slot[in_mid] - h, row_of[in_mid]] = values[in_mid]
        head_T, mid_T = torch.from_numpy(head_T), torch.from_numpy(mid_T)
        rare_profile = None
        if in_rare.any():
            rows, cols = row_of[in_rare], slot[in_rare] - m
            by_row = np.lexsort((cols, rows))  # canonical CSR: sorted columns in each row
            crow = np.zeros(n_users + 1, dtype=self.index)
            crow[1:] = np.cumsum(np.bincount(rows, minlength=n_users))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                rare_profile = torch.sparse_csr_tensor(
                    torch.from_numpy(crow), torch.from_numpy(cols[by_row].astype(self.index)),
                    torch.from_numpy(values[in_rare][by_row]), size=(n_users, self.n_rare),
                )
        work = torch.empty(min(self.tile, self.n_items), n_users)
        for a, b, mid, rare in self.tiles:
            w = work[: b - a]
            if h:
                torch.matmul(self.head[a:b], head_T, out=w)
            else:
                w.zero_()
            if mid is not None:
                w.addmm_(mid, mid_T)  # tile x users += sparse x dense
            block = out[:, a:b]
            block.copy_(w.t())
            if rare is not None and rare_profile is not None:
                block.addmm_(rare_profile, rare)  # users x tile += sparse x sparse, in place
        return out


__all__ = ["TiledScorer", "term_split"]
