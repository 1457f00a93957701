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
  need not be a power of two). Fast on a GPU, but T holds n^2 floats: 35 MB for a 500 x 375
  image (63 x 47 cells at stride 8) and grows with the fourth power of the image side.
- sparse: keep T as a sparse matrix (n + 2P non-zeros, P pairs, about 69 per cell at radius 5)
  and take t matrix-vector steps: memory linear in n.

`random_walk` takes the dense way only when its matrices fit `dense_limit` bytes.
"""

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
    # (v T)^T = T^T v^T, and T^T[j, i] = A[i, j] / colsum_j: store T^T in CSR, rows j
    transposed = torch.sparse_coo_tensor(torch.stack([cols, rows]), values / column_sums[cols], (n, n))
    transposed = transposed.coalesce().to_sparse_csr()
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
