"""The random walk of AffinityNet (Ahn & Kwak, CVPR 2018, sec. 3.3; psa `infer_aff.py`):
class scores diffuse along the predicted affinities.

A is the (n, n) affinity matrix of the n feature-grid cells: a_ij^beta for the pairs within the
radius (both directions), 1 on the diagonal, 0 elsewhere. The transition matrix T = A D^-1 is A
with each column divided by its sum (D = diag of the column sums), and the scores v (C, n) walk
t steps: v T^t. beta sharpens the affinities (psa and SEAM: 8); t is 256 in psa (`logt` 8) and
64 in SEAM (`logt` 6). Because every column of T sums to 1, each step replaces a cell's scores
by an affinity-weighted average of its neighbours' scores; nothing crosses a zero affinity.

Two ways to compute v T^t, with the same result up to float rounding:

- dense: build T and square it (psa's log2 t matrix products; binary exponentiation here, so t
  need not be a power of two). Fast on a GPU, but T holds n^2 floats: 33.4 MiB for a 500 x 375
  image (63 x 47 = 2,961 cells at stride 8), growing with the fourth power of the image side.
- sparse: keep T as a sparse (CSR) matrix, n + 2P non-zeros (P pairs: 93,314 at radius 5 on
  63 x 47), and take t sparse-matrix products: memory linear in n.

`random_walk` takes the dense way only when its matrices fit `dense_limit` bytes.

Measured on a 500 x 375 image, t = 256, one CPU thread, PyTorch 2.13 (peak RSS growth over the
walk, random affinities): dense 69.7 MiB (dense_bytes: 66.9 MiB) and 10.6 s (3 classes) /
12.6 s (21 classes); sparse 19 MiB and 0.14 s / 0.49 s. On the CPU the sparse walk is also the
faster one; the dense one pays off on a GPU, where the matrix products are cheap.
"""

import warnings

import torch

DENSE_MATRICES = 2  # the squaring loop holds T and T @ T at once


def dense_bytes(n, dtype=torch.float32):
    """Memory the dense walk needs for n cells: DENSE_MATRICES (n, n) matrices."""
    return DENSE_MATRICES * n * n * torch.empty((), dtype=dtype).element_size()


def _edges(aff, pairs, n, beta):
    """Rows, columns and values of A: a^beta both ways plus ones on the diagonal."""
    src, dst = pairs
    diag = torch.arange(n, device=aff.device)
    rows = torch.cat([src.to(aff.device), dst.to(aff.device), diag])
    cols = torch.cat([dst.to(aff.device), src.to(aff.device), diag])
    weight = aff.pow(beta)
    return rows, cols, torch.cat([weight, weight, torch.ones(n, dtype=aff.dtype, device=aff.device)])


def transition_matrix(aff, pairs, n, beta):
    """Dense T (n, n) = column-normalised A^beta. aff (P,), pairs (from, to) each (P,)."""
    rows, cols, values = _edges(aff, pairs, n, beta)
    matrix = torch.zeros(n, n, dtype=aff.dtype, device=aff.device)
    matrix.index_put_((rows, cols), values, accumulate=True)
    return matrix.div_(matrix.sum(0, keepdim=True))  # in place: one (n, n) matrix


def walk_dense(scores, aff, pairs, beta, steps):
    """scores (C, n) -> scores (C, n) T^steps by repeated squaring of the dense T."""
    power = transition_matrix(aff, pairs, scores.shape[1], beta)
    result, steps = scores, int(steps)
    while steps:
        if steps & 1:
            result = result @ power  # (C, n)
        steps >>= 1
        if steps:
            power = power @ power  # (n, n) T^(2^k)
    return result


def walk_sparse(scores, aff, pairs, beta, steps):
    """scores (C, n) -> scores (C, n) T^steps by `steps` sparse products; T is never dense."""
    n = scores.shape[1]
    rows, cols, values = _edges(aff, pairs, n, beta)
    column_sums = torch.zeros(n, dtype=aff.dtype, device=aff.device).index_add_(0, cols, values)
    # (v T)^T = T^T v^T, and T^T[j, i] = A[i, j] / colsum_j
    transposed = torch.sparse_coo_tensor(torch.stack([cols, rows]), values / column_sums[cols], (n, n),
                                         check_invariants=False).coalesce()
    with warnings.catch_warnings():  # torch calls its CSR layout "beta"; it is 20-30x faster than COO here
        warnings.simplefilter("ignore", UserWarning)
        transposed = transposed.to_sparse_csr()
    result = scores.t().contiguous()  # (n, C)
    for _ in range(int(steps)):
        result = transposed @ result
    return result.t()


def random_walk(scores, aff, pairs, beta, steps, dense_limit):
    """scores (C, n) walked `steps` steps on the affinities aff (P,) of pairs (from, to).

    Dense repeated squaring when dense_bytes(n) <= dense_limit, sparse steps otherwise."""
    if dense_bytes(scores.shape[1], scores.dtype) <= dense_limit:
        return walk_dense(scores, aff, pairs, beta, steps)
    return walk_sparse(scores, aff, pairs, beta, steps)
