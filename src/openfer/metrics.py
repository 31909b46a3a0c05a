"""Classification metrics of the field: accuracy, mean class accuracy, macro-F1, per class.

Conventions (stated because papers differ): *mean class accuracy* is the mean recall over the
classes present in the ground truth (RAF-DB papers call it "average accuracy"); *macro-F1* is the
mean F1 over the classes present in the ground truth or the predictions (scikit-learn's
``average='macro'``). The confusion matrix has true classes as rows, predictions as columns.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_report(y_true: Sequence[int], y_pred: Sequence[int],
                          classes: Sequence[str]) -> dict:
    """All metrics as a JSON-ready dict (the ``openfer eval --json`` contract)."""
    k = len(classes)
    cm = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), k)
    n = int(cm.sum())
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        f1 = np.where(precision + recall > 0,
                      2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    in_truth = support > 0
    in_either = in_truth | (predicted > 0)
    per_class = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]),
               "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)}
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "accuracy_ci95": wilson_interval(int(tp.sum()), n),
        "mean_class_accuracy": float(recall[in_truth].mean()) if in_truth.any() else 0.0,
        "macro_f1": float(f1[in_either].mean()) if in_either.any() else 0.0,
        "classes": list(classes),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


#: The three numbers a FER result is reported by (keys of :func:`classification_report`).
HEADLINE_METRICS = ("accuracy", "mean_class_accuracy", "macro_f1")
#: The standard normal quantile of a two-sided 95 % interval.
Z95 = 1.959964


def wilson_interval(correct: int, n: int, z: float = Z95) -> list[float]:
    """95 % confidence interval of an accuracy of ``correct`` out of ``n`` (Wilson, JASA 1927):
    on FER2013 PublicTest's 3,589 faces about ±1.5 points around 70 %."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n correct a bound is exactly 0 or 1; the formula's rounding would give 1 - 1e-16.
    return [0.0 if correct == 0 else max(0.0, centre - half),
            1.0 if correct == n else min(1.0, centre + half)]


def paired_comparison(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict:
    """Two models scored on the same faces: is the difference in accuracy more than chance?

    ``correct_a`` / ``correct_b``: per face, whether each model's top label is right. Returns
    both accuracies, the faces only one of them gets right (``a_only``, ``b_only``), the
    difference ``accuracy_a - accuracy_b`` with a 95 % confidence interval (normal
    approximation of the paired difference) and the exact two-sided McNemar p-value (McNemar,
    Psychometrika 1947; the binomial test on the discordant faces, as Dietterich, Neural
    Computation 1998, recommends for comparing classifiers on one test set).
    """
    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_comparison needs two equal, non-empty 1-D sequences "
                         f"(got {a.shape} and {b.shape})")
    n = len(a)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    difference = (a_only - b_only) / n
    spread = Z95 * np.sqrt(max((a_only + b_only) / n - difference ** 2, 0.0) / n)
    discordant = a_only + b_only
    tail = sum(math.comb(discordant, i) for i in range(min(a_only, b_only) + 1))
    p_value = min(1.0, 2 * tail / 2 ** discordant) if discordant else 1.0
    return {"n": n, "accuracy_a": float(a.mean()), "accuracy_b": float(b.mean()),
            "a_only": a_only, "b_only": b_only, "difference": difference,
            "difference_ci95": [float(difference - spread), float(difference + spread)],
            "mcnemar_p": p_value}


def format_comparison(comparison: dict) -> str:
    """Readable lines of a :func:`paired_comparison` (``model_file``: the second model)."""
    low, high = comparison["difference_ci95"]
    verdict = ("a difference beyond chance (p < 0.05)" if comparison["mcnemar_p"] < 0.05 else
               "no difference beyond chance (p >= 0.05)")
    return "\n".join([
        "", f"compared with {comparison.get('model_file', 'the second model')} on the same "
        f"{comparison['n']} faces: accuracy {comparison['accuracy_b'] * 100:.2f} %",
        f"right only here {comparison['a_only']}, only there {comparison['b_only']}; "
        f"difference {comparison['difference'] * 100:+.2f} points (95 % interval "
        f"{low * 100:+.2f} to {high * 100:+.2f})",
        f"McNemar p = {comparison['mcnemar_p']:.3g}: {verdict}"])


def headline(report: dict, digits: int = 4) -> dict:
    """What a weight file's metadata keeps of a :func:`classification_report` (rounded): the
    three headline metrics, ``n``, and per class precision, recall, F1 and support."""
    keep = {k: round(report[k], digits) for k in HEADLINE_METRICS}
    keep["n"] = report["n"]
    keep["per_class"] = {name: {k: (v if k == "support" else round(v, digits))
                                for k, v in row.items()}
                         for name, row in report["per_class"].items()}
    return keep


def format_report(report: dict) -> str:
    """A readable table of a :func:`classification_report`."""
    interval = report.get("accuracy_ci95")
    lines = [f"n = {report['n']}",
             f"accuracy            {report['accuracy'] * 100:6.2f} %"
             + (f"  (95 % interval {interval[0] * 100:.2f}-{interval[1] * 100:.2f})"
                if interval else ""),
             f"mean class accuracy {report['mean_class_accuracy'] * 100:6.2f} %",
             f"macro-F1            {report['macro_f1'] * 100:6.2f} %", "",
             f"{'class':<12}{'precision':>10}{'recall':>10}{'F1':>10}{'support':>9}"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<12}{row['precision'] * 100:10.2f}{row['recall'] * 100:10.2f}"
                     f"{row['f1'] * 100:10.2f}{row['support']:9d}")
    classes = report["classes"]
    width = max(6, *(len(c[:9]) + 1 for c in classes))
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * 12 + "".join(f"{c[:9]:>{width}}" for c in classes)]
    for name, row in zip(classes, report["confusion_matrix"]):
        lines.append(f"{name:<12}" + "".join(f"{v:>{width}d}" for v in row))
    for head, sub in (report.get("heads") or {}).items():
        if "ccc" in sub:
            lines.append(f"{head} head: CCC {sub['ccc']:.4f}  RMSE {sub['rmse']:.4f}  "
                         f"PCC {sub['pcc']:.4f}  SAGR {sub['sagr'] * 100:.2f} %  (n={sub['n']})")
        else:
            lines.append(f"{head} head: accuracy {sub['accuracy'] * 100:.2f} %  macro-F1 "
                         f"{sub['macro_f1'] * 100:.2f} %  (n={sub['n']})")
    return "\n".join(lines)


def regression_report(y_true, y_pred) -> dict:
    """Valence/arousal metrics of the field for one dimension (NaN targets are left out).

    CCC (Lin 1989): 2·cov / (σx² + σy² + (μx − μy)²) with population moments; RMSE; PCC (Pearson);
    SAGR: the fraction of predictions with the sign of the target (AffectNet's metric).
    """
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    keep = ~(np.isnan(y_true) | np.isnan(y_pred))
    t, p = y_true[keep], y_pred[keep]
    if len(t) < 2:
        return {"n": int(len(t)), "ccc": 0.0, "rmse": 0.0, "pcc": 0.0, "sagr": 0.0}
    cov = ((t - t.mean()) * (p - p.mean())).mean()
    denominator = t.var() + p.var() + (t.mean() - p.mean()) ** 2
    std = t.std() * p.std()
    return {"n": int(len(t)),
            "ccc": float(2 * cov / denominator) if denominator > 0 else 0.0,
            "rmse": float(np.sqrt(((t - p) ** 2).mean())),
            "pcc": float(cov / std) if std > 0 else 0.0,
            "sagr": float((np.sign(t) == np.sign(p)).mean())}
