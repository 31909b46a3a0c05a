"""Losses of the published methods.

* :func:`sparse_center_loss` — DACL's sparse (attentive) center loss (Farzaneh & Qi, "Facial
  Expression Recognition in the Wild via Deep Attentive Center Loss", WACV 2021, eq. 5-7), with
  the original implementation's gradients (``amirhfarzaneh/dacl`` ``loss.py``; METHODS.md 2):

      L_SC = 1/(2m) · Σ_i Σ_j a_ij (x_ij − c_{y_i j})²
      ∂L_SC/∂x_i = a_i ⊙ (x_i − c_{y_i}) / m,     ∂L_SC/∂a_i = (x_i − c_{y_i})² / (2m)
      "gradient" of center k:  Δc_k = Σ_{i: y_i = k} a_i ⊙ (c_k − x_i) / (1 + n_k)

  Δc_k is **not** scaled by λ nor by the incoming gradient (as in the original); a separate SGD
  with learning rate α applies it (c_k ← c_k − α Δc_k).
* With all attention weights equal to 1 it is the center loss of Wen et al. (ECCV 2016), the
  "center loss" baseline of DACL's table.
* :func:`distillation_loss` — knowledge distillation (Hinton, Vinyals & Dean, "Distilling the
  knowledge in a neural network", 2015): T² · KL(softmax(t/T) ‖ softmax(s/T)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _SparseCenterLoss(torch.autograd.Function):
    # Computed in float32 whatever the inputs' precision (bf16 autocast); gradients are returned
    # in each input's own dtype.
    @staticmethod
    def forward(ctx, features, labels, attention, centers):
        ctx.save_for_backward(features, labels, attention, centers)
        diff = features.float() - centers.float().index_select(0, labels)     # (m, d)
        return (attention.float() * diff.pow(2)).sum() / (2.0 * features.shape[0])

    @staticmethod
    def backward(ctx, grad_output):
        features, labels, attention, centers = ctx.saved_tensors
        m = features.shape[0]
        a = attention.float()
        diff = features.float() - centers.float().index_select(0, labels)
        grad_output = grad_output.float()
        grad_features = grad_output * a * diff / m
        grad_attention = grad_output * diff.pow(2) / (2.0 * m)
        counts = torch.ones(centers.shape[0], dtype=torch.float32, device=centers.device)
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float32))
        grad_centers = torch.zeros(centers.shape, dtype=torch.float32, device=centers.device)
        grad_centers.index_add_(0, labels, -a * diff)
        grad_centers = grad_centers / counts.unsqueeze(1)
        return (grad_features.to(features.dtype), None, grad_attention.to(attention.dtype),
                grad_centers.to(centers.dtype))


def sparse_center_loss(features: torch.Tensor, labels: torch.Tensor, attention: torch.Tensor,
                       centers: torch.Tensor) -> torch.Tensor:
    """DACL's sparse center loss; ``attention`` (m, d) in (0, 1), ``centers`` (K, d)."""
    return _SparseCenterLoss.apply(features, labels.long(), attention, centers)


def center_loss(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor
                ) -> torch.Tensor:
    """Wen et al.'s center loss: the sparse center loss with every attention weight 1."""
    return sparse_center_loss(features, labels, torch.ones_like(features), centers)


def init_centers(num_classes: int, dim: int) -> torch.Tensor:
    """DACL's center initialisation: ``kaiming_normal_`` on the (d, K) transpose (std √(2/K))."""
    centers = torch.empty(dim, num_classes)
    torch.nn.init.kaiming_normal_(centers)
    return centers.t().contiguous()


def ccc_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 − mean CCC over the columns (valence, arousal), per mini-batch, in float64.

    Emotion-GCN's L_cont (``ccc.py``). The original uses a biased covariance with unbiased
    variances; openfer uses population (biased) moments throughout, the textbook CCC (Lin 1989),
    so that a perfect prediction gives exactly 0.
    """
    x, y = prediction.double(), target.double()
    mx, my = x.mean(0), y.mean(0)
    cov = ((x - mx) * (y - my)).mean(0)
    ccc = 2 * cov / (x.var(0, unbiased=False) + y.var(0, unbiased=False) + (mx - my) ** 2 + 1e-12)
    return (1 - ccc.mean()).to(prediction.dtype)


def masked_multitask_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                          weights: dict[str, float] | None = None, *,
                          class_weights: dict[str, torch.Tensor] | None = None,
                          label_smoothing: float = 0.0
                          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_h w_h · L_h over the heads, each averaged over the samples that have its label.

    Categorical heads (targets ``int64``; ``-1`` = missing) use cross-entropy; regression heads
    (targets ``float``; ``NaN`` = missing) use the mean squared error on their single output. A
    sample without a label contributes nothing to that head, and a head with no label in the batch
    adds nothing (multi-task FER, arXiv 2110.15028, trains FER2013's absent attributes against
    all-zero targets instead; METHODS.md 5). Returns the total and the per-head losses (heads
    without labels in the batch are absent). ``weights`` default to 1.
    """
    total = None
    parts: dict[str, torch.Tensor] = {}
    for name, target in targets.items():
        output = outputs[name]
        if target.dtype.is_floating_point:
            valid = ~torch.isnan(target)
            if not valid.any():
                continue
            loss = F.mse_loss(output.reshape(len(output), -1)[:, 0][valid].float(),
                              target[valid].float())
        else:
            valid = target >= 0
            if not valid.any():
                continue
            weight = (class_weights or {}).get(name)
            loss = F.cross_entropy(output[valid].float(), target[valid], weight=weight,
                                   label_smoothing=label_smoothing if name == "emotion" else 0.0)
        parts[name] = loss
        term = float((weights or {}).get(name, 1.0)) * loss
        total = term if total is None else total + term
    if total is None:           # no head has a label: a zero that keeps the graph
        total = sum(o.sum() for o in outputs.values()) * 0.0
    return total, parts


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target loss, batch mean: ``T² · KL(p_teacher^T ‖ p_student^T)`` with
    ``p^T = softmax(logits / T)``; the T² keeps its gradients on the scale of the hard-label
    loss whatever T. Computed in float32 (bf16 autocast would round the log-probabilities)."""
    t = float(temperature)
    student = F.log_softmax(student_logits.float() / t, dim=1)
    teacher = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * (t * t)
