"""``openfer train``: run a recipe with Lightning, export the weights, measure the result.

A run directory holds::

    recipe.yaml                the resolved recipe (after overrides)
    checkpoints/last.ckpt      full training state after the latest epoch (exact resume)
    checkpoints/best.ckpt      full training state at the best validation accuracy
    best.safetensors           weights + metadata of the best epoch (load with openfer.load_model)
    last.safetensors           weights + metadata after the last epoch
    metrics.json               openfer.evaluate() of best.safetensors on the validation split
    summary.json               command, wall time, epochs, throughput, metrics
    logs/metrics.csv, tensorboard/

Distributed runs (``devices=2 strategy=ddp``) are launched from the command line; Lightning
re-executes the command once per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import (Callback, EarlyStopping, ModelCheckpoint,
                                         TQDMProgressBar)
from lightning.pytorch.loggers import CSVLogger

from ..checkpoint import save_weights
from ..errors import OpenferError
from ..evaluate import evaluate
from ..fileio import atomic_write_bytes, atomic_write_text
from ..metrics import HEADLINE_METRICS, headline
from ..models.registry import create_model
from .checkpointing import AtomicCheckpointIO, find_resume_checkpoint, read_checkpoint
from .datamodule import FaceDataModule
from .recipe import dump_recipe
from .center_loss import CenterLossTask
from .emotion_gcn import EmotionGCNTask
from .fmpn import FMPNTask
from .multitask import MultiTaskTask
from .task import ClassificationTask

#: The LightningModule of each recipe ``method``.
TASKS = {"classification": ClassificationTask, "dacl": CenterLossTask,
         "center_loss": CenterLossTask, "multitask": MultiTaskTask,
         "emotion_gcn": EmotionGCNTask, "fmpn": FMPNTask}


def quiet_lightning() -> None:
    """Keep Lightning's progress bar and the warnings that matter; drop tips and banners."""
    import logging
    import warnings

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*exists and is not empty.*")


class Throughput(Callback):
    """Training images per second, timed over training steps only (not validation)."""

    def __init__(self):
        self.images = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._start
        self.images += len(batch[1]) * trainer.world_size

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class PrecisionRecord(Callback):
    """Writes the precision a run trains in into its checkpoints, and warns when a resumed run
    continues in another one.

    ``precision: auto`` is decided per machine (:func:`resolve_precision`): a run begun in
    bf16-mixed on a CPU with AMX and resumed on one without native bf16 continues in 32-true, so
    it no longer repeats an uninterrupted run exactly. That is kept (emulated bf16 would be ~13x
    slower there), said in a warning, and recorded as ``precision_before_resume`` in
    ``summary.json``; ``trainer.precision=<the earlier one>`` keeps the run's precision.
    """

    KEY = "openfer_precision"

    def __init__(self):
        self.before_resume: str | None = None

    def on_save_checkpoint(self, trainer, module, checkpoint):
        checkpoint[self.KEY] = str(trainer.precision)

    def on_load_checkpoint(self, trainer, module, checkpoint):
        earlier = checkpoint.get(self.KEY)
        if earlier is not None and earlier != str(trainer.precision):
            self.before_resume = earlier
            if trainer.is_global_zero:
                import warnings

                warnings.warn(
                    f"this run trained in {earlier} and resumes in {trainer.precision} "
                    "(trainer.precision resolves per machine): later epochs will not repeat an "
                    f"uninterrupted run exactly; pass trainer.precision={earlier} to keep it",
                    stacklevel=2)


def train(recipe: dict, *, output_dir: str | Path | None = None, resume: str | bool | None = None,
          command: str | None = None, callbacks: list[Callback] | None = None) -> dict:
    """Train a recipe (see :mod:`openfer.engine.recipe`); returns the run summary.

    ``resume``: a checkpoint path, or ``True`` for the newest readable checkpoint of the run
    directory (a fresh start when there is none). ``callbacks`` are extra Lightning callbacks.
    """
    quiet_lightning()
    trainer_cfg = recipe["trainer"]
    run_dir = Path(output_dir or recipe.get("output_dir") or Path("runs") / recipe["name"])
    seed = int(trainer_cfg["seed"])
    L.seed_everything(seed, workers=True, verbose=False)
    ckpt_path = _resume_path(run_dir, resume)

    task = TASKS.get(recipe["method"], ClassificationTask)(recipe)
    datamodule = FaceDataModule(recipe["data"], task.meta, seed,
                                targets=getattr(task, "target_kinds", None))
    datamodule.setup("fit")  # bad data fails here, before anything is written
    validate = bool(recipe["data"].get("val_split"))
    # Two checkpoints: best.ckpt when the monitored metric improves, and last.ckpt after every
    # epoch. (Lightning's save_last writes last.ckpt only when a top-k checkpoint was saved at
    # the same step, so a run whose metric stopped improving would resume epochs behind.)
    best_checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best",
                                      monitor=trainer_cfg["monitor"],
                                      mode=trainer_cfg["monitor_mode"], save_top_k=1,
                                      enable_version_counter=False) \
        if validate else None
    last_checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last",
                                      monitor=None, save_top_k=1, enable_version_counter=False)
    checkpoints = Checkpoints(best_checkpoint, last_checkpoint)
    throughput, precision_record = Throughput(), PrecisionRecord()
    callbacks = [*checkpoints.callbacks, throughput, precision_record, *(callbacks or [])]
    if trainer_cfg["early_stopping_patience"] is not None and validate:
        callbacks.append(EarlyStopping(monitor=trainer_cfg["monitor"],
                                       mode=trainer_cfg["monitor_mode"],
                                       patience=int(trainer_cfg["early_stopping_patience"]),
                                       min_delta=float(trainer_cfg["early_stopping_min_delta"])))
    if trainer_cfg["progress_bar"]:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    loggers = [CSVLogger(run_dir, name="logs", version="")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    except ImportError:
        pass
    precision = resolve_precision(trainer_cfg["precision"], trainer_cfg["accelerator"])
    with _deterministic_setting_restored():     # Lightning sets it for the whole process
        trainer = L.Trainer(
            max_epochs=int(trainer_cfg["max_epochs"]), accelerator=trainer_cfg["accelerator"],
            devices=trainer_cfg["devices"], strategy=trainer_cfg["strategy"],
            num_nodes=int(trainer_cfg["num_nodes"]), precision=precision,
            # "warn": deterministic kernels wherever they exist; an op without one (CUDA's
            # adaptive-average-pool backward, say) warns instead of stopping a GPU run.
            deterministic="warn" if trainer_cfg["deterministic"] else False,
            plugins=[AtomicCheckpointIO()],
            callbacks=callbacks, logger=loggers, default_root_dir=run_dir,
            log_every_n_steps=int(trainer_cfg["log_every_n_steps"]),
            check_val_every_n_epoch=int(trainer_cfg["check_val_every_n_epoch"]),
            gradient_clip_val=trainer_cfg["gradient_clip_val"],
            enable_progress_bar=bool(trainer_cfg["progress_bar"]), num_sanity_val_steps=0,
            limit_val_batches=None if validate else 0,
            use_distributed_sampler=False, enable_model_summary=False)
        if trainer.is_global_zero:
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_text(run_dir / "recipe.yaml", dump_recipe(recipe))
            except OSError as exc:
                raise OpenferError(f"cannot write to the output directory {run_dir}: "
                                   f"{exc.strerror or exc}; choose a writable --output") from None
        started = time.time()
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        wall = time.time() - started
        if not trainer.is_global_zero:
            return {}
        return _finish(recipe, run_dir, checkpoints, datamodule, trainer, throughput, wall,
                       command, ckpt_path, task.meta.crop_fraction,
                       precision_before_resume=precision_record.before_resume)


@contextlib.contextmanager
def _deterministic_setting_restored():
    """``torch.use_deterministic_algorithms`` as it was before training, once training ends: a
    process that trains and then predicts (a notebook, the test suite) does not run inference
    under the trainer's setting (under it, int8 kernels warn on every call)."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def resolve_precision(precision, accelerator) -> str:
    """``auto``: ``bf16-mixed`` where bfloat16 is computed natively (a CUDA GPU that supports it,
    a CPU with AMX-BF16 or AVX512-BF16: FERNet-M trains 2.5x and 1.75x faster than in fp32),
    else ``32-true``. On CPUs without native bfloat16 (AVX2-only ones, e.g. an AMD EPYC
    measured here) bf16 autocast is emulated: a FERNet-M training step took 3.96 s instead of
    0.31 s in fp32 (2 threads, batch 64). Any other value is Lightning's, as given."""
    if precision != "auto":
        return precision
    from ..models.fusion import native_bf16

    gpu = str(accelerator) in ("gpu", "cuda") or (str(accelerator) == "auto" and
                                                   torch.cuda.is_available())
    if gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if native_bf16() else "32-true"


class Checkpoints:
    """The run's two checkpoint callbacks (best by the monitored metric, and latest)."""

    def __init__(self, best: ModelCheckpoint | None, last: ModelCheckpoint):
        self.best, self.last = best, last
        self.callbacks = [c for c in (best, last) if c is not None]

    @property
    def last_path(self) -> str:
        return self.last.best_model_path or self.last.last_model_path

    @property
    def best_path(self) -> str:
        return (self.best.best_model_path if self.best is not None else "") or self.last_path


def _resume_path(run_dir: Path, resume: str | bool | None) -> Path | None:
    if not resume:
        return None
    if resume is True or resume == "auto":
        found = find_resume_checkpoint(run_dir)
        if found is None and (run_dir / "checkpoints").is_dir() and \
                any((run_dir / "checkpoints").glob("*.ckpt")):
            raise OpenferError(f"no readable checkpoint in {run_dir / 'checkpoints'}: every "
                               "one failed its checksum; start a new run")
        if found is not None and found.name != "last.ckpt" and _launching_process():
            # best.ckpt is ahead: the run died after writing an epoch's best.ckpt, before its
            # last.ckpt. That state becomes last.ckpt too, or a run that has no epoch left to
            # train would end with last.safetensors from the epoch before. Only the process
            # that launched the run copies it; the others resume from best.ckpt, the same bytes.
            last = found.parent / "last.ckpt"
            try:
                atomic_write_bytes(last, found.read_bytes())
            except OSError:
                return found
            return last
        return found  # None: nothing to resume, start from scratch
    path = Path(resume)
    read_checkpoint(path)  # verifies, with a clear error
    return path


#: Environment variables by which Lightning's launchers (and torchrun, SLURM) mark a process's
#: rank; a single process has none of them.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def _launching_process() -> bool:
    """True in the process a user started (global rank 0 of a multi-process run)."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def model_from_checkpoint(checkpoint_path: str | Path) -> torch.nn.Module:
    """The trained model inside a training checkpoint (``.ckpt``), with its recipe's metadata.

    Turns the state of a run that was stopped before it finished into a usable model.
    """
    checkpoint = read_checkpoint(checkpoint_path)
    recipe = checkpoint.get("hyper_parameters", {}).get("recipe")
    if recipe is None:
        raise OpenferError(f"{checkpoint_path} holds no recipe; it was not written by "
                           "'openfer train'")
    data = recipe["data"]
    size = data.get("image_size")
    model = _trained_model(str(checkpoint_path), recipe, recipe=recipe["name"],
                           training_data=f"{data['dataset']} {data['train_split']}",
                           license=license_note(recipe))
    if size:
        side = size if isinstance(size, int) else size[0]
        model.meta = model.meta.replace(crop_fraction=model.meta.input_size[0] / side)
    model.meta = model.meta.replace(notes=(model.meta.notes or "") +
                                    f" [from checkpoint epoch {checkpoint['epoch']}]")
    return model


def license_note(recipe: dict) -> str:
    """The terms a run's weights carry: those of the data it learnt from (and of the weights it
    started from), which openfer cannot waive; recorded so that a model card never says 'not
    recorded' for a model openfer trained."""
    note = (f"trained by openfer on {recipe['data']['dataset']} ({recipe['data']['train_split']}); "
            "the weights carry that data set's terms of use (most FER data sets are licensed "
            "for non-commercial research only)")
    if recipe["model"].get("init"):
        note += f" and those of {recipe['model']['init']}, the weights it started from"
    return note + ": check them before other use"


def _trained_model(checkpoint_path: str, run_recipe: dict, **meta) -> torch.nn.Module:
    """The recipe's model with the weights of a training checkpoint."""
    from .task import ClassificationTask

    checkpoint = read_checkpoint(checkpoint_path)
    state = checkpoint["state_dict"]
    model = create_model(run_recipe["model"]["name"], **(run_recipe["model"]["args"] or {}))
    model.load_state_dict({k[len("model."):]: v for k, v in state.items()
                           if k.startswith("model.")})
    if hasattr(model, "forward_heads") or model.meta.extra_outputs:
        meta["heads_trained"] = tuple(checkpoint.get(ClassificationTask.HEADS_TRAINED, ()))
    model.meta = model.meta.replace(**meta)
    return model.eval()


def _finish(recipe, run_dir, checkpoints, datamodule, trainer, throughput, wall, command,
            resumed_from, crop_fraction, precision_before_resume=None) -> dict:
    command = command or " ".join(["openfer", *sys.argv[1:]])
    data = recipe["data"]
    meta = {"training_data": f"{data['dataset']} {data['train_split']} ({data['root']})",
            "recipe": recipe["name"], "command": command, "crop_fraction": crop_fraction,
            "license": license_note(recipe)}
    best_path = checkpoints.best_path
    save_weights(_trained_model(checkpoints.last_path, recipe, **meta),
                 run_dir / "last.safetensors")
    best = _trained_model(best_path, recipe, **meta)
    report = None
    if datamodule.val_set is not None:
        report = evaluate(best, datamodule.val_set, batch_size=data["eval_batch_size"],
                          tta=bool(recipe["trainer"]["tta_flip"]))
        report["split"] = data["val_split"]
        best.meta = best.meta.replace(metrics={data["dataset"]: {
            **headline(report), "split": data["val_split"], "tta_flip": report["tta_flip"]}})
        atomic_write_text(run_dir / "metrics.json", json.dumps(report, indent=2))
    save_weights(best, run_dir / "best.safetensors")
    best_epoch = read_checkpoint(best_path)["epoch"]
    summary = {
        "recipe": recipe["name"], "command": command, "run_dir": str(run_dir),
        "epochs": trainer.current_epoch, "best_epoch": best_epoch,
        "wall_seconds": round(wall, 1), "resumed_from": str(resumed_from) if resumed_from else None,
        "train_images_per_second": round(throughput.images_per_second, 1),
        "torch_threads": torch.get_num_threads(), "world_size": trainer.world_size,
        "precision": str(trainer.precision),
        **({"precision_before_resume": precision_before_resume}
           if precision_before_resume else {}),
        "machine": f"{os.cpu_count()} CPU cores" if trainer.strategy.root_device.type == "cpu"
        else torch.cuda.get_device_name(trainer.strategy.root_device),
        "weights": str(run_dir / "best.safetensors"),
        "metrics": {k: report[k] for k in (*HEADLINE_METRICS, "n")}
        if report else None,
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    return summary
