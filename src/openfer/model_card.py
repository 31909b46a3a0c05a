"""Model cards for trained weights (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019).

A card is rendered from what the weight file itself holds (:mod:`openfer.checkpoint`): the
architecture and its parameter count, the tensors' SHA-256, the
:class:`~openfer.models.meta.ModelMeta` (classes in index order, input and normalisation, face
alignment, training data and the exact command, the measured metrics, the bf16 / int8 checks, the
license note; for an ONNX export, the same metadata that :func:`openfer.export.export_onnx`
stores in the file), so it cannot drift from the model it describes: ``openfer card default`` prints
the shipped default's, ``MODEL_CARD.md`` in the repository is that output, and a test keeps the
two equal. The sections on intended use and limitations are those of every facial expression
classifier and follow Mitchell et al.'s headings, shortened: details, inputs and outputs,
evaluation, intended use, limitations and ethical considerations.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from .metrics import HEADLINE_METRICS

#: The headline metrics a card reports, with their column titles.
HEADLINE = tuple(zip(HEADLINE_METRICS, ("accuracy", "mean class accuracy", "macro-F1")))

INTENDED_USE = """\
- Research on facial expressions, and prototypes that count or visualise the expressions shown in
  photos and video (audience studies, human-computer interaction, media analysis), where people
  review the results and a wrong label harms no one.
- Faces that look roughly towards the camera and are large enough to be detected; the classifier
  sees each face at the input size above, so small, blurred, occluded or profile faces are
  labelled less reliably."""

LIMITATIONS = """\
- **An expression is not an emotion.** The model names the facial configuration a face shows
  (a smile, a frown), not what the person feels: the same feeling shows in many faces and the same
  face comes with many feelings (Barrett et al., "Emotional Expressions Reconsidered",
  Psychological Science in the Public Interest, 2019).
- **Not for decisions about people**: hiring, grading, policing, border control, insurance,
  credit or health. The EU AI Act (Regulation (EU) 2024/1689, Article 5(1)(f)) prohibits
  systems that infer the emotions of people at work or in education, except for medical or
  safety reasons; other uses of emotion recognition are high-risk there (Annex III).
- **Unmeasured across groups.** How accuracy differs between groups of people (age, gender,
  skin tone) was not measured; it may differ.
- **Deliberate expressions.** Expression data sets hold mostly clear, deliberate expressions;
  subtle, spontaneous ones, and faces unlike those in the training data, are recognised less
  well."""

#: Added to the limitations of models trained on FER2013 (their ``training_data`` says so).
FER2013_LABELS = """\
- **FER2013's labels are noisy.** Its faces were found by web image searches for emotion words
  and their labels checked by people; a person classifying them agreed with the labels about 65 %
  (± 5 %) of the time (Goodfellow et al., "Challenges in Representation Learning", ICONIP 2013),
  so its accuracies measure agreement with disputable labels. Its rarest class, disgust, has few
  examples (1.5 % of the training faces)."""


def card_facts(name_or_path: str | Path) -> dict[str, Any]:
    """What a card reports, as data: file, size, tensors' SHA-256, parameters and metadata."""
    from .checkpoint import read_header
    from .models.registry import get_entry, load_model, weights_path

    path = weights_path(name_or_path)
    facts = {"name": str(name_or_path), "file": path.name, "bytes": path.stat().st_size}
    if path.suffix == ".onnx":
        from .export import read_onnx
        from .models.meta import ModelMeta

        header, proto = read_onnx(path)
        facts.update(format="ONNX" + (f", {header['quantized']}" if header.get("quantized")
                                      else ", fp32"),
                     sha256=hashlib.sha256(path.read_bytes()).hexdigest(), digest_of="file",
                     parameters=sum(math.prod(t.dims) for t in proto.graph.initializer),
                     meta=ModelMeta.from_dict(header["meta"]).to_dict())
    else:
        header = read_header(path)
        model = load_model(path)
        facts.update(format="safetensors", sha256=header.get("sha256"), digest_of="tensors",
                     parameters=sum(p.numel() for p in model.parameters()),
                     meta=model.meta.to_dict())
    architecture = header["architecture"]
    return {**facts, "architecture": architecture,
            "description": get_entry(architecture).description}


def model_card(name_or_path: str | Path | list) -> str:
    """The Markdown model card of the weights ``name_or_path`` names (see the module doc); given
    a list of several, the card of their ensemble (:func:`ensemble_card`)."""
    if isinstance(name_or_path, (list, tuple)):
        if len(name_or_path) != 1:
            return ensemble_card(name_or_path)
        name_or_path = name_or_path[0]
    return render(card_facts(name_or_path))


def ensemble_card(names: list) -> str:
    """The card of an ensemble (:mod:`openfer.models.ensemble`: the mean of its members' class
    probabilities): what it is, how to measure it (no file records an ensemble's accuracy), then
    each member's own card, its headings one level down."""
    facts = ensemble_facts(names)
    listed = ", ".join(f"`{name}`" for name in names)
    metrics = facts[0]["meta"].get("metrics") or {}
    dataset, row = next(iter(metrics.items()), ("DATASET", {}))
    lines = [f"# Model card: ensemble of {len(names)} models", "",
             f"Its answer is the mean of the class probabilities of {listed} "
             "(`openfer.models.ensemble`), which read the same input and predict the same "
             "classes in the same order. Its own accuracy is recorded in no file; measure it "
             "(the data set's file or folder as `--root`):", "", "```bash",
             "openfer eval " + " ".join(f"--model {name}" for name in names)
             + f" --dataset {dataset} --root PATH"
             + (f" --split {row['split']}" if row.get("split") else "") + " --json",
             "```", "", "Each member's card follows, with its own evaluation.", ""]
    lines += [_demote(render(f)) for f in facts]
    return "\n".join(lines)


def ensemble_facts(names: list) -> list[dict[str, Any]]:
    """:func:`card_facts` of each member of an ensemble, refused (naming the field) where the
    members do not read the same input and predict the same classes in the same order."""
    from .errors import OpenferError
    from .models.ensemble import input_mismatch
    from .models.meta import ModelMeta

    if not names:
        raise OpenferError("an ensemble's card needs at least one model")
    facts = [card_facts(name) for name in names]
    metas = [ModelMeta.from_dict(f["meta"]) for f in facts]
    for name, meta in zip(names[1:], metas[1:]):
        if mismatch := input_mismatch(meta, metas[0]):
            key, value, reference = mismatch
            raise OpenferError(f"{name} cannot join {names[0]} in an ensemble: its {key} is "
                               f"{value!r}, not {reference!r}")
    return facts


def _demote(markdown: str) -> str:
    """Every Markdown heading one level down (``#`` lines inside code blocks are left alone)."""
    lines, code = [], False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            code = not code
        lines.append("#" + line if line.startswith("#") and not code else line)
    return "\n".join(lines)


def render(facts: dict[str, Any]) -> str:
    """Markdown from :func:`card_facts`' dictionary."""
    meta = facts["meta"]
    title = facts["name"]
    if Path(facts["file"]).stem not in (title, Path(title).stem):
        title += f" ({Path(facts['file']).stem})"
    lines = [f"# Model card: {title}", ""]
    if meta.get("notes"):
        lines += [meta["notes"].strip().rstrip(".") + ".", ""]
    lines += ["## Details", "", "| | |", "|---|---|",
              f"| architecture | `{facts['architecture']}`: {facts['description']} |",
              f"| parameters | {facts['parameters']:,}"
              + (" (values in the graph's initialisers)" if facts["format"] != "safetensors"
                 else "") + " |",
              f"| file | `{facts['file']}`, {facts['bytes'] / 1e6:.1f} MB ({facts['format']}); "
              f"SHA-256 of the {facts['digest_of']} `{facts['sha256']}` |"]
    if meta.get("paper"):
        lines.append(f"| paper | {meta['paper']} |")
    lines += [f"| license | {meta.get('license') or 'not recorded'} |", "",
              "## Inputs and outputs", "", "| | |", "|---|---|",
              f"| input | {_input(meta)} |",
              f"| face crop | {_alignment(meta)} |",
              "| outputs | " + ", ".join(f"{i} {name}" for i, name in enumerate(meta["classes"]))
              + " (class index: name; softmax scores)"
              + ("; also " + ", ".join(meta["extra_outputs"]) if meta.get("extra_outputs")
                 else "") + _heads(meta) + " |", "",
              "## Training", "",
              f"- Data: {meta.get('training_data') or 'not recorded'}.",
              f"- Recipe: `{meta['recipe']}`." if meta.get("recipe") else "- Recipe: not recorded.",
              ]
    if meta.get("command"):
        lines += ["- Command:", "", "```bash", meta["command"], "```"]
    lines += ["", "## Evaluation", ""] + _evaluation(facts)
    lines += ["", "## Intended use", "", INTENDED_USE, "",
              "## Limitations and ethical considerations", "", LIMITATIONS]
    if "fer2013" in (meta.get("training_data") or "").lower():
        lines.append(FER2013_LABELS)
    lines.append("")
    return "\n".join(lines)


def _heads(meta: dict) -> str:
    """What a multi-task model's extra heads learnt (``meta.heads_trained``)."""
    if meta.get("heads_trained") is None:
        return ""
    trained = ", ".join(meta["heads_trained"]) or "none (its data had no labels for them)"
    return f"; extra heads trained on labels, and shown by `openfer predict`: {trained}"


def _input(meta: dict) -> str:
    height, width = meta["input_size"]
    kind = {1: "grayscale", 3: "RGB"}.get(meta["channels"], "channels")
    if meta["channels"] == 1:
        scaling = f"(pixel / 255 − {meta['mean'][0]:g}) / {meta['std'][0]:g}"
    else:
        scaling = ("(pixel / 255 − mean) / std per channel, mean ("
                   + ", ".join(f"{v:g}" for v in meta["mean"]) + "), std ("
                   + ", ".join(f"{v:g}" for v in meta["std"]) + ")")
    text = f"{meta['channels']}×{height}×{width} {kind}, {scaling}"
    if meta.get("crop_fraction", 1.0) != 1.0:
        text += (f"; resized to {meta['input_size'][0] / meta['crop_fraction']:.0f} px and "
                 f"centre-cropped (crop fraction {meta['crop_fraction']:g})")
    return text


def _alignment(meta: dict) -> str:
    alignment = meta.get("alignment") or {}
    if alignment.get("method") == "five_point":
        size = alignment.get("template_size", (112, 112))
        return (f"five detected landmarks mapped onto a {size[0]}×{size[1]} template by a "
                "similarity transform (the box crop where a detector gives no landmarks)")
    margin = float(alignment.get("margin", 0.0))
    shape = "square " if alignment.get("square", True) else ""
    return f"the detector's box, {shape}crop" + (f", margin {margin:g}" if margin else "")


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _interval(accuracy: float | None, n: int | None) -> str:
    """Wilson's 95 % interval of a recorded accuracy (:func:`openfer.metrics.wilson_interval`)."""
    if accuracy is None or not n:
        return "—"
    from .metrics import wilson_interval

    low, high = wilson_interval(round(accuracy * n), n)
    return f"{100 * low:.1f}-{100 * high:.1f} %"


def _evaluation(facts: dict) -> list[str]:
    meta = facts["meta"]
    metrics = meta.get("metrics") or {}
    if not metrics:
        return ["No measured metrics are recorded in this file."]
    exported = facts["format"] != "safetensors"
    lines = (["Measured on the openfer weights this file was exported from (torch, fp32); "
              f"exported ({facts['format']}), its answers can differ slightly.", ""]
             if exported else [])
    lines += ["| data set, split | faces | " + " | ".join(t for _, t in HEADLINE)
              + " | accuracy's 95 % interval |", "|---|---:|" + "---:|" * (len(HEADLINE) + 1)]
    for dataset, row in metrics.items():
        where = f"{dataset} {row.get('split', '')}".strip()
        plain = " (flip TTA)" if row.get("tta_flip") else ""
        rows = [(f"{where}{plain}", row)] + [
            (f"{where}, " + key.replace("with_", "with ").replace("_tta", " TTA")
             .replace("_", " "), extra) for key, extra in row.items()
            if isinstance(extra, dict) and all(k in extra for k, _ in HEADLINE)]
        for label, values in rows:
            lines.append(f"| {label} | {row.get('n', '')} | "
                         + " | ".join(_percent(values[k]) if k in values else "—"
                                      for k, _ in HEADLINE)
                         + f" | {_interval(values.get('accuracy'), row.get('n'))} |")
    for dataset, row in metrics.items():
        if row.get("per_class"):
            lines += ["", f"Per class ({dataset} {row.get('split', '')}):", "",
                      "| class | faces | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
            lines += [f"| {name} | {c['support']} | {_percent(c['precision'])} | "
                      f"{_percent(c['recall'])} | {_percent(c['f1'])} |"
                      for name, c in row["per_class"].items()]
    if exported:
        return lines
    name = facts["name"]
    for dataset, row in metrics.items():
        lines += ["", "Repeat it (the data set's file or folder as `--root`):", "", "```bash",
                  f"openfer eval --model {name} --dataset {dataset} --root PATH"
                  + (f" --split {row['split']}" if row.get("split") else "")
                  + (" --tta" if row.get("tta_flip") else "") + " --json", "```"]
    lines += _precision_checks(meta)
    return lines


def _precision_checks(meta: dict) -> list[str]:
    checks = []
    for precision, record in (("bf16", meta.get("bf16")), ("int8", (meta.get("int8") or {}))):
        check = record.get("check", record) if record else None
        if not check or "top1_agreement" not in check:
            continue
        scheme = (f" Scheme: {record['scheme']}." if precision == "int8" and record.get("scheme")
                  else "")
        checks.append(f"- {precision}: {_percent(check['top1_agreement'])} of the fp32 top "
                      f"labels kept on {check.get('split', 'the check split')} "
                      f"({check.get('n', '?')} faces); accuracy "
                      f"{_percent(check['accuracy_' + precision])} (fp32 "
                      f"{_percent(check['accuracy_fp32'])}).{scheme}")
    if not checks:
        return ["", "No reduced-precision check is recorded: `--precision auto` runs it in fp32."]
    return ["", "Reduced precision `--precision auto` may run it in, each checked against fp32 "
            "by `scripts/check_precision.py` (at least 99 % of the top labels kept, accuracy "
            "within half a point):", ""] + checks
