"""Emotion-GCN's label graph: an adjacency over expressions, valence and arousal.

Antoniadis, Pikoulis, Filntisis, Maragos, "Exploiting Emotional Dependencies with Graph
Convolutional Networks for Facial Expression Recognition", FG 2021 (arXiv:2106.03487), eqs. 3-6,
as the released ``utils.gen_A`` / ``gen_adj`` compute it (METHODS.md section 1):

1. ρ: Spearman correlation between the one-hot expression indicators, valence and arousal of
   the training labels (:func:`spearman_matrix`); take |ρ|;
2. remove expression-expression edges (keep the diagonal, expression-V/A and V-A edges);
3. binarise at τ (0.1);
4. re-weight each row: A_ij ← A_ij · p / (Σ_j A_ij − 1), then A_ii ← 1 − p (p = 0.5);
5. Â = D·Aᵀ·D with D = diag(rowsum(A))^(−1/2) — since every row sums to 1, Â = Aᵀ.

**Departure:** a node with no neighbour (the original divides by zero there) keeps weight 1 on
itself. The node order is AffectNet's (Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger),
then Valence, Arousal.
"""

from __future__ import annotations

import numpy as np
import torch

#: The authors' Spearman matrix over AffectNet training labels (``data/spearman_affectnet.pkl``,
#: rounded to 3 places in METHODS.md), node order as :data:`NODES`.
AFFECTNET_SPEARMAN = np.array([
    [1, -0.568, -0.188, -0.137, -0.091, -0.07, -0.185, -0.335, -0.284],
    [-0.568, 1, -0.298, -0.217, -0.144, -0.11, -0.294, 0.861, 0.014],
    [-0.188, -0.298, 1, -0.072, -0.048, -0.037, -0.097, -0.453, -0.434],
    [-0.137, -0.217, -0.072, 1, -0.035, -0.027, -0.071, -0.028, 0.338],
    [-0.091, -0.144, -0.048, -0.035, 1, -0.018, -0.047, -0.122, 0.236],
    [-0.07, -0.11, -0.037, -0.027, -0.018, 1, -0.036, -0.176, 0.144],
    [-0.185, -0.294, -0.097, -0.071, -0.047, -0.036, 1, -0.384, 0.414],
    [-0.335, 0.861, -0.453, -0.028, -0.122, -0.176, -0.384, 1, 0.037],
    [-0.284, 0.014, -0.434, 0.338, 0.236, 0.144, 0.414, 0.037, 1]])

NODES = ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger", "valence",
         "arousal")


def spearman_matrix(labels: np.ndarray, valence: np.ndarray, arousal: np.ndarray,
                    num_classes: int = 7) -> np.ndarray:
    """Spearman ρ between one-hot expression columns, valence and arousal (K+2 square).

    Rows with a missing (NaN) valence or arousal are left out.
    """
    keep = ~(np.isnan(valence) | np.isnan(arousal))
    onehot = np.eye(num_classes)[np.asarray(labels)[keep]]
    columns = np.column_stack([onehot, valence[keep], arousal[keep]])
    ranks = np.column_stack([_average_ranks(c) for c in columns.T])
    return np.corrcoef(ranks, rowvar=False)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return ranks


def label_graph(correlation: np.ndarray, num_expressions: int = 7, tau: float = 0.1,
                p: float = 0.5) -> np.ndarray:
    """The re-weighted adjacency A (steps 1-4); rows are nodes."""
    a = np.abs(np.asarray(correlation, dtype=np.float64)).copy()
    k = num_expressions
    diagonal = np.eye(len(a), dtype=bool)
    a[:k, :k][~diagonal[:k, :k]] = 0.0
    a = (a >= tau).astype(np.float64)
    for i in range(len(a)):
        neighbours = a[i].sum() - a[i, i]
        if neighbours > 0:
            a[i] = a[i] * p / neighbours
            a[i, i] = 1.0 - p
        else:
            a[i] = 0.0
            a[i, i] = 1.0
    return a


def normalized_adjacency(a: np.ndarray) -> torch.Tensor:
    """Â = D·Aᵀ·D, D = diag(rowsum(A))^(-1/2) (``gen_adj``), as a float32 tensor.

    D is applied by broadcasting, not as a diagonal matrix: the same products in the same order
    (so the same numbers), and ONNX, which has no ``diag``, can export it."""
    a = torch.as_tensor(a, dtype=torch.float32)
    d = a.sum(1).pow(-0.5)
    return a.t() * d[:, None] * d[None, :]
