"""Emotion-GCN against the original's counts and the GCN's equations."""

import numpy as np
import pytest
import torch

import openfer
from openfer.errors import OpenferError
from openfer.models.emotion_gcn import node_embeddings
from openfer.models.label_graph import AFFECTNET_SPEARMAN, label_graph


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_counts_and_keys_match_the_original():
    model = openfer.create_model("emotion_gcn")
    assert count(model) == 7_631_825          # the adjacency A counted, as in the original
    keys = list(model.state_dict())
    assert keys[0] == "A" and keys[-2:] == ["gc1.weight", "gc2.weight"]
    assert model.gc1.weight.shape == (300, 512) and model.gc2.weight.shape == (512, 1024)
    assert count(openfer.create_model("emotion_gcn_multi_task")) == 6_963_081


def test_gcn_output_is_a_hat_x_w_then_feature_dot_classifiers():
    torch.manual_seed(0)
    model = openfer.create_model("emotion_gcn").eval()
    a_hat = torch.tensor(label_graph(AFFECTNET_SPEARMAN), dtype=torch.float32).t()  # Â = Aᵀ
    x = model.embeddings
    h1 = torch.nn.functional.leaky_relu(a_hat @ x @ model.gc1.weight, 0.2)
    h2 = a_hat @ h1 @ model.gc2.weight
    assert torch.allclose(model.node_classifiers(), h2, atol=1e-5)
    image = torch.rand(1, 3, 112, 112)                    # one image: no inp[0] trick needed
    with torch.no_grad():
        logits, va = model(image)
        f = torch.amax(model.forward_features(image), dim=(2, 3))
    assert torch.allclose(torch.cat([logits, va], 1), f @ h2.t(), atol=1e-4)


def test_default_embeddings_are_glove_50d_zero_padded():
    emb = node_embeddings()
    assert emb.shape == (9, 300) and torch.count_nonzero(emb[:, 50:]) == 0
    cosine = torch.nn.functional.cosine_similarity(emb[4], emb[6], dim=0)   # fear, anger
    assert cosine > 0.8


def test_embedding_sources(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(9, 300)).astype(np.float32)
    np.save(tmp_path / "emb.npy", vectors)
    torch.save(torch.from_numpy(vectors).expand(4, 9, 300).clone(), tmp_path / "emb.pt")
    words = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "valence",
             "arousal")
    (tmp_path / "glove.txt").write_text("the 0.1 0.2\n" + "".join(
        f"{w} " + " ".join(f"{v:.4f}" for v in vectors[i]) + "\n" for i, w in enumerate(words)))
    for name in ("emb.npy", "emb.pt", "glove.txt"):
        assert torch.allclose(node_embeddings(tmp_path / name), torch.from_numpy(vectors),
                              atol=1e-4), name
    (tmp_path / "short.txt").write_text("neutral 1 2\n")
    with pytest.raises(OpenferError, match="no vectors for"):
        node_embeddings(tmp_path / "short.txt")


def test_learned_embeddings_ablation_adds_parameters():
    model = openfer.create_model("emotion_gcn", learn_embeddings=True)
    assert count(model) == 7_631_825 + 9 * 300
