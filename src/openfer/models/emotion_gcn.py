"""Emotion-GCN: expressions + valence/arousal, classifiers produced by a GCN over the label graph.

Antoniadis, Pikoulis, Filntisis, Maragos, FG 2021 (arXiv:2106.03487); original code
``PanosAntoniadis/emotion-gcn`` (METHODS.md section 1). ``emotion_gcn``: DenseNet-121 features
(the pre-activation ``norm5`` output, no ReLU) → global max pooling → f ∈ R^1024; two graph
convolutions turn the nine node embeddings into one 1024-d vector per node,
H1 = LeakyReLU_0.2(Â·X·W1), H2 = Â·H1·W2; output f·H2ᵀ: 7 expression logits, valence, arousal.
7,631,825 parameters with the adjacency as a (frozen) parameter, keys as the original.

Departures: (1) node embeddings: the paper's 300-d GloVe vectors are not available offline; the
default is the nine words' GloVe 6B **50-d** vectors (public domain, shipped in
``models/data``), zero-padded to 300 so the network keeps the original's shape (the padded
inputs contribute nothing). Pass ``embeddings=`` a file (torch tensor, numpy array, or GloVe
text format looked up by word) for the original's vectors, or ``learn_embeddings=True`` (an
ablation). (2) Global max pooling replaces MaxPool2d(7) / MaxPool2d(3), which are global at the
original's 227 / 112 px inputs. (3) The model holds its embeddings, so single-image inference
works (the original's ``inp[0]`` trick is not needed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OpenferError
from .backbones.densenet import densenet121
from .classifiers import IMAGENET_MEAN, IMAGENET_STD
from .label_graph import AFFECTNET_SPEARMAN, NODES, label_graph, normalized_adjacency
from .meta import ModelMeta
from .registry import register_model

DEFAULT_EMBEDDINGS = Path(__file__).parent / "data" / "emotion_gcn_glove6b50d.json"
GLOVE_WORDS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "valence",
               "arousal")
_PAPER = ("Antoniadis et al., Exploiting Emotional Dependencies with Graph Convolutional "
          "Networks for Facial Expression Recognition, FG 2021")


def node_embeddings(source: str | Path | None = None, dim: int = 300) -> torch.Tensor:
    """The nine node embeddings (9, dim): shipped GloVe 6B 50-d by default (zero-padded).

    ``source``: a ``.pt``/``.pth`` tensor (9, d) or (B, 9, d) as the original's loader batches
    it, a ``.npy`` array, or a GloVe text file (``word v1 v2 ...`` per line) read for the nine
    words.
    """
    if source is None:
        table = json.loads(DEFAULT_EMBEDDINGS.read_text())
        vectors = np.array([table["vectors"][w] for w in GLOVE_WORDS], np.float32)
    else:
        path = Path(source)
        if not path.is_file():
            raise OpenferError(f"node embeddings {path} not found")
        if path.suffix in (".pt", ".pth"):
            vectors = torch.load(path, map_location="cpu", weights_only=True)
            vectors = np.asarray(vectors[0] if vectors.ndim == 3 else vectors, np.float32)
        elif path.suffix == ".npy":
            vectors = np.load(path).astype(np.float32)
        else:
            vectors = _glove_text(path)
    if vectors.shape[0] != len(NODES):
        raise OpenferError(f"node embeddings must have {len(NODES)} rows ({', '.join(NODES)}); "
                           f"got shape {vectors.shape}")
    if vectors.shape[1] > dim:
        raise OpenferError(f"node embeddings are {vectors.shape[1]}-d, more than dim={dim}")
    padded = np.zeros((len(NODES), dim), np.float32)
    padded[:, :vectors.shape[1]] = vectors
    return torch.from_numpy(padded)


def _glove_text(path: Path) -> np.ndarray:
    wanted, found = set(GLOVE_WORDS), {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            word, _, rest = line.partition(" ")
            if word in wanted:
                found[word] = np.array(rest.split(), np.float32)
                if len(found) == len(wanted):
                    break
    missing = [w for w in GLOVE_WORDS if w not in found]
    if missing:
        raise OpenferError(f"{path}: no vectors for {missing} (GloVe text format expected)")
    return np.stack([found[w] for w in GLOVE_WORDS])


class GraphConvolution(nn.Module):
    """Kipf & Welling graph convolution without bias: Â · X · W (``gcn.py`` of the original)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        bound = 1.0 / math.sqrt(out_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return adjacency @ (x @ self.weight)


class EmotionGCN(nn.Module):
    def __init__(self, num_classes: int = 7, embeddings: str | Path | None = None,
                 learn_embeddings: bool = False, correlation=None, tau: float = 0.1,
                 p: float = 0.5, embedding_dim: int = 300, backbone: str = "densenet121"):
        super().__init__()
        correlation = AFFECTNET_SPEARMAN if correlation is None else np.asarray(correlation)
        # The original's A: a parameter (first state-dict key) that forward detaches.
        self.A = nn.Parameter(torch.as_tensor(label_graph(correlation, num_classes, tau, p),
                                              dtype=torch.float32), requires_grad=False)
        if backbone == "densenet121":
            self.features = densenet121().features
            feature_dim = 1024
        elif backbone == "breg_next":                # the original's BReGNeXt_GCN
            from .breg_next import BReGNeXt
            self.model = BReGNeXt(num_classes)
            feature_dim = BReGNeXt.feature_dim
        else:
            raise OpenferError(f"Emotion-GCN backbone must be densenet121 or breg_next, not "
                               f"{backbone!r}")
        self.backbone = backbone
        self.gc1 = GraphConvolution(embedding_dim, 512)
        self.gc2 = GraphConvolution(512, feature_dim)
        self.relu = nn.LeakyReLU(0.2)
        self.num_classes = num_classes
        inputs = node_embeddings(embeddings, embedding_dim)
        if learn_embeddings:
            self.embeddings = nn.Parameter(inputs)
        else:
            self.register_buffer("embeddings", inputs)

    def node_classifiers(self) -> torch.Tensor:
        """H2 (9, 1024): one classifier/regressor vector per node."""
        adjacency = normalized_adjacency(self.A.detach()).to(self.embeddings.device)
        hidden = self.relu(self.gc1(self.embeddings, adjacency))
        return self.gc2(hidden, adjacency)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.backbone == "breg_next":
            return self.model.features(x)[:, :, None, None]  # (B, 128, 1, 1), average-pooled
        return self.features(x)                              # (B, 1024, 7, 7) at 227 px

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        f = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)    # (B, 1024), no ReLU (original)
        if pre_logits:
            return f
        out = f @ self.node_classifiers().t()                # (B, 9)
        return out[:, :self.num_classes], out[:, self.num_classes:]

    def forward(self, x: torch.Tensor):
        """``(expression logits (B, 7), valence/arousal (B, 2))``."""
        return self.forward_head(self.forward_features(x))


class MultiTaskDenseNet(nn.Module):
    """The original's ``multi_densenet`` baseline: ReLU + average pooling, two linear heads."""

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.model_base = densenet121().features
        self.lin_cat = nn.Linear(1024, num_classes)
        self.lin_cont = nn.Linear(1024, 2)

    def forward(self, x: torch.Tensor):
        f = torch.flatten(F.adaptive_avg_pool2d(F.relu(self.model_base(x)), 1), 1)
        return self.lin_cat(f), self.lin_cont(f)


def _check_node_classes(classes) -> None:
    """The output columns are the graph's nodes, so the class list must be theirs, in their
    order (a data set in another order is mapped onto it by name when training)."""
    if classes is None:
        return
    from ..labels import parse_emotion
    try:
        names = tuple(parse_emotion(c).value for c in classes)
    except (ValueError, KeyError):
        names = tuple(classes)
    if names != NODES[:7]:
        raise OpenferError(f"Emotion-GCN's classes are its graph's expression nodes in this "
                           f"order: {', '.join(NODES[:7])}; got {list(classes)} (leave "
                           "model.args.classes unset: data sets are mapped onto it by name)")


_META = ModelMeta("emotion_gcn", classes=NODES[:7], input_size=(227, 227), channels=3,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, extra_outputs=("valence", "arousal"),
                  alignment={"method": "box", "margin": 0.0, "square": True}, paper=_PAPER)


@register_model("emotion_gcn", _META)
def emotion_gcn(num_classes: int = 7, classes=None, embeddings: str | None = None,
                learn_embeddings: bool = False, tau: float = 0.1, p: float = 0.5,
                input_size: int = 227) -> nn.Module:
    """Emotion-GCN (DenseNet-121 + GCN over expressions, valence, arousal), 7.63 M params."""
    _check_node_classes(classes)
    model = EmotionGCN(num_classes, embeddings, learn_embeddings, tau=tau, p=p)
    model.meta = _META.replace(input_size=(input_size, input_size))
    return model


@register_model("emotion_gcn_breg_next", _META.replace(architecture="emotion_gcn_breg_next",
                                                      input_size=(112, 112)))
def emotion_gcn_breg_next(num_classes: int = 7, classes=None, embeddings: str | None = None,
                          learn_embeddings: bool = False, tau: float = 0.1, p: float = 0.5,
                          input_size: int = 112) -> nn.Module:
    """Emotion-GCN on BReG-NeXt (GCN 300→512→128), 112 px; 3.29 M params."""
    _check_node_classes(classes)
    model = EmotionGCN(num_classes, embeddings, learn_embeddings, tau=tau, p=p,
                       backbone="breg_next")
    model.meta = _META.replace(architecture="emotion_gcn_breg_next",
                               input_size=(input_size, input_size))
    return model


@register_model("emotion_gcn_multi_task", _META.replace(architecture="emotion_gcn_multi_task"))
def emotion_gcn_multi_task(num_classes: int = 7, classes=None, input_size: int = 227
                           ) -> nn.Module:
    """Emotion-GCN's multi-task DenseNet-121 baseline (expressions + valence/arousal)."""
    model = MultiTaskDenseNet(len(classes) if classes else num_classes)
    model.meta = _META.replace(architecture="emotion_gcn_multi_task",
                               input_size=(input_size, input_size))
    return model
