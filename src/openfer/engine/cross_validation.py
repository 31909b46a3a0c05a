"""k-fold cross-validation: one training run per fold, then mean ± std (``openfer cv``).

The subject-independent protocol of CK+ and MMI (FMPN reports 10-fold accuracy): for each fold
``k`` the recipe trains on ``data.train_split`` and evaluates on ``data.val_split`` with
``data.options.fold=k`` and ``data.options.folds=n`` (the readers build or read the folds; see
:mod:`openfer.data.folds`). Several recipes chain per fold (FMPN's two stages): each later
recipe gets ``fmpn.generator_from`` set to the earlier stage's run of the same fold when it is a
``method: fmpn`` recipe. Runs live in ``<output>/fold_<k>/<recipe>``; a fold whose last stage has a
``summary.json`` is done and skipped, an interrupted one resumes from its checkpoints, so the
whole protocol resumes fold by fold. The result, ``<output>/cv_summary.json``, has the per-fold
table and the mean and (population) standard deviation of each metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import OpenferError
from ..fileio import atomic_write_text
from ..metrics import HEADLINE_METRICS
from .recipe import load_recipe


def run_cross_validation(recipes: Sequence[str], overrides: Sequence[str], output: str | Path,
                         folds: int = 10, only: Sequence[int] | None = None,
                         command: str | None = None) -> dict:
    from .train import train

    output = Path(output)
    if not recipes:
        raise OpenferError("openfer cv needs at least one --recipe")
    chosen = list(only) if only else list(range(folds))
    bad = [k for k in chosen if not 0 <= k < folds]
    if bad:
        raise OpenferError(f"--fold {bad} is outside 0..{folds - 1}")
    rows = []
    for fold in chosen:
        previous: Path | None = None
        summary = None
        for index, name in enumerate(recipes):
            fold_overrides = [*overrides, f"data.options.fold={fold}",
                              f"data.options.folds={folds}"]
            recipe = load_recipe(name, fold_overrides)
            if previous is not None and recipe["method"] == "fmpn" and \
                    not recipe["fmpn"].get("generator_from"):
                recipe["fmpn"]["generator_from"] = str(previous)
            run_dir = output / f"fold_{fold}" / f"{index}_{recipe['name']}"
            done = run_dir / "summary.json"
            if done.is_file():
                summary = json.loads(done.read_text())
            else:
                summary = train(recipe, output_dir=run_dir, resume="auto")
            previous = run_dir
        metrics = (summary or {}).get("metrics", {})
        rows.append({"fold": fold, "n": metrics.get("n"),
                     **{m: metrics.get(m) for m in HEADLINE_METRICS}, "run_dir": str(previous)})
    result = {"recipes": list(recipes), "overrides": list(overrides), "folds": folds,
              "command": command, "per_fold": rows, **_aggregate(rows)}
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output / "cv_summary.json", json.dumps(result, indent=2) + "\n")
    return result


def _aggregate(rows: list[dict]) -> dict:
    out = {}
    for metric in HEADLINE_METRICS:
        values = np.array([r[metric] for r in rows if r.get(metric) is not None], np.float64)
        if len(values):
            out[metric] = {"mean": float(values.mean()), "std": float(values.std())}
    n = [r["n"] for r in rows if r.get("n")]
    correct = [r["accuracy"] * r["n"] for r in rows if r.get("n") and r.get("accuracy") is not None]
    if n and len(correct) == len(n):
        out["pooled_accuracy"] = float(sum(correct) / sum(n))   # all test images counted once
    return out


def format_cv(result: dict) -> str:
    lines = ["fold      n   accuracy  mean-class  macro-F1"]
    for row in result["per_fold"]:
        lines.append(f"{row['fold']:>4} {row['n'] or 0:>6}   "
                     + "  ".join(f"{(row[m] or 0) * 100:8.2f}" for m in HEADLINE_METRICS))
    for metric in HEADLINE_METRICS:
        if metric in result:
            lines.append(f"{metric}: {result[metric]['mean'] * 100:.2f} ± "
                         f"{result[metric]['std'] * 100:.2f} %")
    if "pooled_accuracy" in result:
        lines.append(f"pooled accuracy over all test images: "
                     f"{result['pooled_accuracy'] * 100:.2f} %")
    return "\n".join(lines)
