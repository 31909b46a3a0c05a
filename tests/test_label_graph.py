"""Emotion-GCN's label graph against the adjacency the released code builds (METHODS.md 1)."""

import numpy as np
import torch

from openfer.models.label_graph import (AFFECTNET_SPEARMAN, label_graph, normalized_adjacency,
                                        spearman_matrix)

# Â = D·Aᵀ·D from the authors' AffectNet matrix, rows = nodes (REFERENCE_COUNTS.md).
A_HAT = np.array([
    [0.5, 0, 0, 0, 0, 0, 0, 0.25, 0.25],
    [0, 0.5, 0, 0, 0, 0, 0, 0.5, 0],
    [0, 0, 0.5, 0, 0, 0, 0, 0.25, 0.25],
    [0, 0, 0, 0.5, 0, 0, 0, 0, 0.5],
    [0, 0, 0, 0, 0.5, 0, 0, 0.25, 0.25],
    [0, 0, 0, 0, 0, 0.5, 0, 0.25, 0.25],
    [0, 0, 0, 0, 0, 0, 0.5, 0.25, 0.25],
    [1 / 12, 1 / 12, 1 / 12, 0, 1 / 12, 1 / 12, 1 / 12, 0.5, 0],
    [1 / 12, 0, 1 / 12, 1 / 12, 1 / 12, 1 / 12, 1 / 12, 0, 0.5]])


def test_authors_matrix_gives_the_released_adjacency():
    a = label_graph(AFFECTNET_SPEARMAN)
    assert np.allclose(a.sum(1), 1.0)                   # every row: 0.5 self + 0.5 neighbours
    assert torch.allclose(normalized_adjacency(a), torch.tensor(A_HAT.T, dtype=torch.float32),
                          atol=1e-6)


def test_rows_of_a_match_methods_md():
    a = label_graph(AFFECTNET_SPEARMAN)
    assert a[1].tolist() == [0, 0.5, 0, 0, 0, 0, 0, 0.5, 0]          # Happy: self + valence
    assert a[3].tolist() == [0, 0, 0, 0.5, 0, 0, 0, 0, 0.5]          # Surprise: self + arousal
    assert np.allclose(a[7], [1 / 12] * 3 + [0] + [1 / 12] * 3 + [0.5, 0])   # Valence


def test_threshold_and_reweighting_are_configurable():
    strict = label_graph(AFFECTNET_SPEARMAN, tau=0.5)
    assert strict[1].tolist() == [0, 0.5, 0, 0, 0, 0, 0, 0.5, 0]     # only Happy-V survives
    assert strict[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]         # isolated: self only
    heavy = label_graph(AFFECTNET_SPEARMAN, p=0.8)
    assert np.isclose(heavy[1, 1], 0.2) and np.isclose(heavy[1, 7], 0.8)


def test_spearman_from_labels_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 500)
    valence = np.where(labels == 1, 0.8, -0.2) + rng.normal(0, 0.1, 500)
    arousal = rng.uniform(-1, 1, 500)
    arousal[:3] = np.nan
    rho = spearman_matrix(labels, valence, arousal)
    assert rho.shape == (9, 9) and np.allclose(rho, rho.T) and np.allclose(np.diag(rho), 1)
    assert rho[1, 7] == rho[:7, 7].max() and rho[1, 7] > 0.4          # happy <-> valence


def test_spearman_ranks_ties_by_their_average():
    from openfer.models.label_graph import _average_ranks
    x, y = np.array([1.0, 2, 2, 3]), np.array([1.0, 3, 2, 4])
    assert _average_ranks(x).tolist() == [1, 2.5, 2.5, 4]
    # By hand: ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4) -> 4.5 / sqrt(4.5 * 5).
    assert np.isclose(np.corrcoef(_average_ranks(x), _average_ranks(y))[0, 1], 4.5 / np.sqrt(22.5))
