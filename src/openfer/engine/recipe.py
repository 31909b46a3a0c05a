"""Training recipes: one YAML file per method x data set, reproducing the paper's settings.

A recipe is read on top of :data:`DEFAULTS` (and of the recipe its ``base:`` names, if any);
every key must be one :data:`DEFAULTS` knows, so a typo is an error naming the file, the line and
the accepted keys rather than a silently ignored setting. Command-line overrides use dotted keys:
``optimizer.lr=0.01 data.root=fer2013.csv`` (values are parsed as YAML). Shipped recipes live in
``openfer/recipes/`` and are named without their extension (``deep_emotion_fer2013``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import RecipeError

RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"

class _AnyValue:
    """Schema marker: a key whose value may be of any type (copies keep the identity)."""

    def __deepcopy__(self, memo):
        return self

    def __repr__(self) -> str:
        return "<any>"


_ANY = _AnyValue()

DEFAULTS: dict[str, Any] = {
    "name": None,
    "description": None,
    "paper": None,
    "method": "classification",
    "model": {"name": None, "args": {}, "init": None},
    "data": {
        "dataset": "fer2013",
        "root": None,
        "image_size": None,
        "train_split": "Training",
        "val_split": "PublicTest",
        "classes": None,
        "limit_train": None,
        "limit_val": None,
        "batch_size": 128,
        "eval_batch_size": 512,
        "num_workers": 0,
        "options": {},
    },
    "augment": None,
    # soft_targets: the name of a per-class target of the data set (FER+'s label_distribution)
    # that replaces the one-hot label in the cross-entropy (method: classification).
    "loss": {"label_smoothing": 0.0, "class_weights": None, "center_lambda": 0.01,
             "center_alpha": 0.5, "head_weights": None, "lambda_multi": 1.0,
             "soft_targets": None},
    "optimizer": {"name": "adam", "lr": 0.001, "weight_decay": 0.0, "momentum": 0.9,
                  "nesterov": False, "betas": [0.9, 0.999]},
    "scheduler": {"name": "none", "step_size": 10, "gamma": 0.1, "warmup_epochs": 0,
                  "min_lr": 0.0, "patience": 5, "decay_epochs": 0},
    # FMPN (method: fmpn): stage "mask" trains the mask generator alone, "joint" everything;
    # masks "computed" (from the training split), "released" (<root>/imgs_res/<fold>) or a
    # folder of <class>.png ("{fold}" is replaced by data.options.fold).
    "fmpn": {"stage": "joint", "masks": "computed", "lambda_mask": 0.1, "generator_lr": 1e-5,
             "generator_from": None},
    # Knowledge distillation (method: classification): the loss adds alpha * T^2 * KL(teacher ||
    # student) at temperature T to (1 - alpha) * cross-entropy; the teacher is the ensemble of the
    # listed weight files, run directories or shipped names (openfer.models.ensemble), on the same
    # augmented batch.
    "distill": {"teachers": [], "alpha": 0.5, "temperature": 2.0},
    "trainer": {
        "max_epochs": 10,
        "seed": 0,
        "precision": _ANY,
        "accelerator": _ANY,
        "devices": _ANY,
        "strategy": _ANY,
        "num_nodes": 1,
        "deterministic": True,
        "channels_last": False,
        "gradient_clip_val": None,
        "log_every_n_steps": 50,
        "check_val_every_n_epoch": 1,
        "monitor": "val/accuracy",
        "monitor_mode": "max",
        "early_stopping_patience": None,
        "early_stopping_min_delta": 0.0,
        "tta_flip": False,
        "progress_bar": True,
    },
    "output_dir": None,
}

#: Sections whose content is free-form (passed to a builder that checks its own arguments).
_FREE_FORM = {"model.args", "augment", "data.options", "loss.head_weights"}
_OPTIONS = {
    "method": ("classification", "dacl", "center_loss", "multitask", "emotion_gcn", "fmpn"),
    "optimizer.name": ("adam", "adamw", "sgd"),
    "scheduler.name": ("none", "step", "cosine", "plateau", "linear_decay"),
    "trainer.monitor_mode": ("max", "min"),
    "fmpn.stage": ("mask", "joint"),
}


def builtin_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted(RECIPE_DIR.glob("*.yaml"))}


def resolve_recipe_path(recipe: str | Path) -> Path:
    """A recipe file path, or the name of a shipped recipe."""
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = builtin_recipes()
    if str(recipe) in shipped:
        return shipped[str(recipe)]
    raise RecipeError(f"recipe {str(recipe)!r} is neither a file nor a shipped recipe; shipped "
                      f"recipes: {', '.join(shipped) or 'none'} (see 'openfer recipes')")


def _line_index(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map dotted key paths to 1-based line numbers from a composed YAML node tree."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_line_index(value_node, key + "."))
    return lines


def load_recipe(recipe: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Read a recipe (path or shipped name), apply ``key=value`` overrides, validate it.

    A recipe may start from another one: ``base: <shipped name or path>`` (a relative path is
    relative to the recipe's folder) reads that recipe first, then this file's keys on top of
    it, section by section. ``name`` and ``description`` are never inherited.
    """
    path = resolve_recipe_path(recipe)
    merged = _materialise(copy.deepcopy(DEFAULTS))
    for layer, data, lines in _layers(path):
        if layer != path:
            data = {k: v for k, v in data.items() if k not in ("name", "description")}
        _merge(merged, data, DEFAULTS, "",
               lambda key, f=layer, n=lines: f"{f}, line {n.get(key, '?')}")
    for item in overrides:
        key, value = parse_override(item)
        _merge(merged, _nest(key, value), DEFAULTS, "", lambda k, i=item: f"override {i!r}")
    merged["name"] = merged["name"] or path.stem
    merged["_source"] = str(path)
    _check(merged, str(path))
    return merged


#: How many ``base:`` links a recipe may follow (a chain longer than this is surely a mistake).
MAX_BASE_DEPTH = 8


def _layers(path: Path) -> list[tuple[Path, dict, dict[str, int]]]:
    """``(file, data, line index)`` of a recipe and the recipes it is based on, base first."""
    chain: list[tuple[Path, dict, dict[str, int]]] = []
    current = path
    while True:
        data, lines = _read_recipe_file(current)
        base = data.pop("base", None)
        chain.append((current, data, lines))
        if base is None:
            break
        where = f"{current}, line {lines.get('base', '?')}"
        if not isinstance(base, str) or not base.strip():
            raise RecipeError(f"{where}: 'base' must name a shipped recipe or a recipe file, "
                              f"found {base!r}")
        try:
            local = current.parent / base
            current = local if local.is_file() else resolve_recipe_path(base)
        except (RecipeError, OSError, ValueError) as exc:  # not found; too long; a NUL byte
            raise RecipeError(f"{where}: base {base[:200]!r}: {exc}") from None
        if any(current.resolve() == c.resolve() for c, _, _ in chain):
            names = " -> ".join(str(c) for c, _, _ in chain)
            raise RecipeError(f"{where}: base {base!r} makes a cycle ({names} -> {current})")
        if len(chain) > MAX_BASE_DEPTH:
            raise RecipeError(f"{where}: more than {MAX_BASE_DEPTH} recipes chained by 'base'")
    return chain[::-1]


def _read_recipe_file(path: Path) -> tuple[dict, dict[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise RecipeError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from None
    except RecursionError:
        raise RecipeError(f"{path}: not a recipe: its YAML nests hundreds of levels deep") \
            from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping of sections (model, data, ...), "
                          f"found {type(data).__name__}")
    return data, (_line_index(node) if node is not None else {})


_RUNTIME_DEFAULTS = {"precision": "32-true", "devices": 1, "accelerator": "auto",
                     "strategy": "auto"}


def _materialise(defaults: dict) -> dict:
    """Replace the ``_ANY`` markers of the schema by their run-time default values."""
    for key, value in defaults.items():
        if isinstance(value, dict):
            _materialise(value)
        elif value is _ANY:
            defaults[key] = _RUNTIME_DEFAULTS[key]
    return defaults


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise RecipeError(f"override {item!r} is not of the form key=value "
                          "(e.g. optimizer.lr=0.01 or data.root=path/to/fer2013.csv)")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = text                          # not YAML: the text itself, checked later
    return key.strip(), value


def _nest(dotted: str, value: Any) -> dict:
    out: dict = {}
    cursor = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return out


def _merge(target: dict, source: dict, schema: dict, prefix: str, where) -> None:
    for key, value in source.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise RecipeError(f"{where(dotted)}: unknown key {dotted!r}; accepted keys here: "
                              f"{', '.join(schema)}")
        if any(dotted == f or dotted.startswith(f + ".") for f in _FREE_FORM):
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
            continue
        default = schema[key]
        if isinstance(default, dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise RecipeError(f"{where(dotted)}: {dotted!r} is a section; expected keys "
                                  f"{', '.join(default)}, found {value!r}")
            _merge(target[key], value, default, dotted + ".", where)
            continue
        if value is not None and default is not None and default is not _ANY:
            expected = (int, float) if isinstance(default, (int, float)) and \
                not isinstance(default, bool) else type(default)
            if isinstance(default, bool):
                expected = bool
            if not isinstance(value, expected) or (expected is not bool
                                                   and isinstance(value, bool)):
                raise RecipeError(f"{where(dotted)}: {dotted!r} must be "
                                  f"{_type_name(default)}, found {value!r}")
        if dotted in _OPTIONS and value not in _OPTIONS[dotted]:
            raise RecipeError(f"{where(dotted)}: {dotted!r} must be one of "
                              f"{', '.join(_OPTIONS[dotted])}, found {value!r}")
        target[key] = value


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, (int, float)):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, list):
        return "a list"
    return type(default).__name__


def _check(recipe: dict, source: str) -> None:
    teachers = recipe["distill"]["teachers"]
    if not isinstance(teachers, list) or not all(isinstance(t, str) for t in teachers):
        raise RecipeError(f"{source}: distill.teachers must be a list of weight files, run "
                          f"directories or shipped model names, found {teachers!r}")
    if not 0.0 <= recipe["distill"]["alpha"] <= 1.0 or not recipe["distill"]["temperature"] > 0:
        raise RecipeError(f"{source}: distill.alpha must lie in [0, 1] and distill.temperature "
                          f"be positive, found {recipe['distill']['alpha']!r} and "
                          f"{recipe['distill']['temperature']!r}")
    if not recipe["model"]["name"]:
        raise RecipeError(f"{source}: model.name is not set (e.g. model.name=deep_emotion)")
    if recipe["model"]["init"] is not None and not isinstance(recipe["model"]["init"], str):
        raise RecipeError(f"{source}: model.init must be a weight file or a shipped model name "
                          f"to start from, found {recipe['model']['init']!r}")
    for key, kind in (("data.batch_size", int), ("trainer.max_epochs", int),
                      ("optimizer.lr", (int, float))):
        section, name = key.split(".")
        value = recipe[section][name]
        if not isinstance(value, kind) or isinstance(value, bool) or not value > 0 \
                or value != value or value == float("inf"):
            raise RecipeError(f"{source}: {key} must be a positive "
                              f"{'whole number' if kind is int else 'number'}, found {value!r}")
    monitor = str(recipe["trainer"]["monitor"])
    if recipe["scheduler"]["name"] == "plateau" and not recipe["data"].get("val_split") \
            and monitor.startswith("val/"):
        raise RecipeError(f"{source}: scheduler.name=plateau lowers the learning rate when "
                          f"trainer.monitor ({monitor}) stops improving, but data.val_split is "
                          "not set, so nothing is validated: set data.val_split, or monitor a "
                          "training metric (trainer.monitor=train/loss "
                          "trainer.monitor_mode=min), or use another scheduler "
                          "(scheduler.name=cosine or step)")


def dump_recipe(recipe: dict) -> str:
    return yaml.safe_dump({k: v for k, v in recipe.items() if not k.startswith("_")},
                          sort_keys=False)
