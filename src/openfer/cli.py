"""The ``openfer`` command line: train, eval, predict, export, models, recipes.

User errors (bad files, bad recipe keys, missing data) print one ``openfer: error: ...`` line
that says what and where, and exit with status 2; nothing is written half-way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from .errors import OpenferError

#: ``openfer.data.DATASETS``' names, spelled here so that parsing the command line needs no
#: torch (a test checks that the two agree).
DATASET_NAMES = ("fer2013", "ferplus", "folder", "rafdb", "affectnet", "affectnet7", "affwild2",
                 "ckplus", "ckplus_fmpn", "mmi", "mmi_fmpn", "jaffe", "ferg", "expw", "sfew",
                 "rafdb_compound")

EXAMPLES = {
    "train": """examples:
  openfer train --recipe deep_emotion_fer2013 data.root=fer2013.csv.gz
  openfer train --recipe deep_emotion_fer2013 data.root=fer2013.csv.gz --resume
  openfer train --recipe my_recipe.yaml optimizer.lr=0.01 trainer.max_epochs=30
  openfer train --recipe deep_emotion_fer2013 data.root=fer2013.csv.gz \\
      --accelerator cpu --devices 2 --strategy ddp""",
    "cv": """examples:
  openfer cv --recipe fmpn_ckplus_stage1 --recipe fmpn_ckplus data.root=CKPlus \\
      --output runs/fmpn_ckplus                   # 10 folds, FMPN's two stages in each
  openfer cv --recipe deep_emotion_ckplus data.root=CKPlus --output runs/de_ckplus --fold 0
  openfer cv --recipe fmpn_mmi_stage1 --recipe fmpn_mmi data.root=MMI \\
      --output runs/fmpn_mmi --device cuda:1      # on the second GPU""",
    "serve": """examples:
  openfer serve                                   # http://127.0.0.1:8000 (page, /v1/predict, /docs)
  openfer serve --host 0.0.0.0 --port 8080 --api-key SECRET --workers 2
  openfer serve --model default --model fernet_s.fer2013   # their ensemble
  curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict
  curl -F file=@clip.mp4 "http://127.0.0.1:8000/v1/predict/video?every=5&smooth=0.3"
""",
    "predict": """examples:
  openfer predict photo.jpg                       # shipped default model, detector auto
  openfer predict photos/ --recursive --json > results.jsonl
  openfer predict clip.mp4 --every 5 --csv --save-annotated out/
  openfer predict face_crops/ --no-detect --json
  openfer predict --camera 0 --every 2 --max-frames 300
  openfer predict --camera rtsp://user:pass@192.168.1.20/stream1 --smooth 0.3 --summary p.csv
  openfer predict clip.mp4 --smooth 0.3 --save-annotated out/   # steadier labels
  openfer predict clip.mp4 --summary people.csv   # per person: share of time per expression""",
    "export": """examples:
  openfer export --model default --output model.onnx --dynamic-batch
  openfer export --model default --output int8.onnx --quantize int8 \\
      --calibration-data fer2013.csv.gz
  openfer export --model runs/x/checkpoints/last.ckpt --output x.safetensors""",
    "data": """examples:
  openfer data --dataset fer2013 --root fer2013.csv.gz --split PublicTest
  openfer data --dataset rafdb --root RAF-DB/basic --split train --verify
  openfer data --dataset mmi --root mmi/index.csv --option neutral=true --json""",
    "bench": """examples:
  openfer bench                                   # the default model, torch, 1 thread
  openfer bench --model fernet_s.fer2013 --backend onnx --threads 2
  openfer bench --model runs/x/best.safetensors --device cuda --batch 256
  openfer bench --model default --model fernet_s.fer2013   # their ensemble""",
    "eval": """examples:
  openfer eval --model runs/deep_emotion_fer2013/best.safetensors --dataset fer2013 \\
      --root fer2013.csv.gz --split PublicTest
  openfer eval --model best.safetensors --dataset folder --root my_faces/ --json
  openfer eval --model runs/new --compare default --dataset fer2013 --root fer2013.csv.gz \\
      --split PublicTest     # is the new model's gap to the default more than chance?""",
}


#: ``openfer.models.fusion.PRECISIONS`` with ``auto``, and ``openfer.tta.MODES``, spelled out so
#: that parsing the command line imports no torch (tests/test_tta.py checks that they agree).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
TTA_MODES = ("flip", "shifts")


def _pixels(text: str) -> int:
    """``--min-face``: a whole number of pixels, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a face size: give whole pixels, "
                                         "1 or more (e.g. 20)")
    return value


def _add_min_face(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-face", type=_pixels, metavar="PX",
                        help="smallest face side to look for, in pixels of the image as "
                             "searched (over 1600 px it is downscaled to 1600 first; default "
                             "40: faces under the classifiers' 48 px input are less reliable, "
                             "and MTCNN runs twice as fast as at 20)")


def _device(text: str) -> str:
    """``--device``: cpu, cuda, cuda:N, mps (Apple GPUs) or auto (checked when the command line
    is read)."""
    import re

    if text in ("cpu", "cuda", "mps", "auto") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:N (a GPU's number, "
                                     "e.g. cuda:1), mps or auto")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", type=_device,
                        help="cpu, cuda, cuda:1 or auto (default: auto = cuda if available)")


def _add_training_devices(parser: argparse.ArgumentParser) -> None:
    """The flags that say where a training runs (``train`` and ``cv``)."""
    parser.add_argument("--accelerator", help="cpu, gpu, auto (overrides trainer.accelerator)")
    parser.add_argument("--devices", help="number of devices or 'auto' (trainer.devices)")
    parser.add_argument("--strategy", help="auto, ddp, ddp_spawn, ... (trainer.strategy)")
    parser.add_argument("--device", type=_device,
                        help="shortcut: cpu, cuda (Lightning's choice of GPUs), cuda:N (that "
                             "GPU alone) or auto; sets trainer.accelerator and, for cuda:N, "
                             "trainer.devices")


def _training_overrides(args) -> list[str]:
    """Recipe overrides of the command's own flags (``--max-epochs 5`` ->
    ``trainer.max_epochs=5``), after its KEY=VALUE overrides so that they win."""
    overrides = list(args.overrides)
    for flag, key in (("accelerator", "trainer.accelerator"), ("devices", "trainer.devices"),
                      ("strategy", "trainer.strategy"), ("max_epochs", "trainer.max_epochs"),
                      ("seed", "trainer.seed")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.device:
        gpu = args.device.startswith("cuda")
        overrides.append("trainer.accelerator=" + ("gpu" if gpu else args.device))
        if ":" in args.device:
            overrides.append(f"trainer.devices=[{args.device.split(':')[1]}]")
    return overrides


def _add_precision(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES,
                        help="torch backend's arithmetic: auto (default: int8 on x86 CPUs with "
                             "AVX2, else bf16 on CPUs with AMX-BF16 or AVX512-BF16, each for "
                             "models whose metadata records its check against fp32; fp32 "
                             "otherwise), fp32, bf16 or int8")


def _add_tta(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tta", nargs="?", const="flip", choices=TTA_MODES,
                        help="test-time augmentation: --tta (= flip) averages with the mirrored "
                             "face; --tta shifts also with the face moved by 2 %% and 4 %% of "
                             "its side, 1-2 pixels at 48 px (18 views; default model on "
                             "PublicTest: 70.66 %% against flip's 70.21 %%, 18x the "
                             "classifier's work)")


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OpenferError(f"--device {name}: no CUDA device is available on this machine; "
                           "use --device cpu")
    return name


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="openfer", description="Facial expression recognition: train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"openfer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe", epilog=EXAMPLES["train"],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--recipe", required=True,
                       help="a recipe YAML file or a shipped recipe name (see 'openfer recipes')")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="recipe overrides with dotted keys, e.g. optimizer.lr=0.01")
    train.add_argument("--output", help="run directory (default: runs/<recipe name>)")
    train.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                       help="resume from a checkpoint file, or with no value from the newest "
                            "readable checkpoint of the run directory")
    _add_training_devices(train)
    train.add_argument("--max-epochs", type=int, help="overrides trainer.max_epochs")
    train.add_argument("--seed", type=int, help="overrides trainer.seed")

    cv = commands.add_parser("cv", help="k-fold cross-validation of one or more chained "
                             "recipes (CK+/MMI subject-independent protocol)",
                             epilog=EXAMPLES["cv"],
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    cv.add_argument("--recipe", action="append", required=True,
                    help="a recipe; repeat to chain stages per fold (FMPN: stage 1, then 2)")
    cv.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                    help="recipe overrides for every stage, e.g. data.root=path/to/CKPlus")
    cv.add_argument("--folds", type=int, default=10, help="number of folds (default 10)")
    cv.add_argument("--fold", type=int, action="append",
                    help="run only this fold (repeatable); default all")
    cv.add_argument("--output", required=True, help="folder for fold_<k>/ runs and "
                    "cv_summary.json; rerun the same command to resume")
    _add_training_devices(cv)

    evaluate = commands.add_parser("eval", help="evaluate a model on a labelled data set",
                                   epilog=EXAMPLES["eval"],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--model", required=True, action="append",
                          help="a .safetensors file written by openfer, a training run's "
                               "directory or a shipped model name; repeat it to evaluate the "
                               "ensemble (mean of the probabilities)")
    evaluate.add_argument("--dataset", required=True,
                          help=f"the reader: {', '.join(DATASET_NAMES)}")
    evaluate.add_argument("--root", required=True, help="the data set's file or folder")
    evaluate.add_argument("--split", default="all",
                          help="the data set's own split name (FER2013: Training, PublicTest, "
                               "PrivateTest; folder: a sub-folder, or all; CK+, JAFFE, FERG: "
                               "train or test, with --option fold=K)")
    evaluate.add_argument("--classes", help="comma-separated class list: the emotions of numbered "
                          "folders (folder i is class i); for other data sets, the order "
                          "to re-index their labels into, by name")
    evaluate.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                          help="a reader option (e.g. images=original for rafdb); repeatable")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--compare", metavar="MODEL",
                          help="also score MODEL on the same faces and report the paired "
                               "difference: the accuracy gap with its 95 %% interval and "
                               "McNemar's p (is the gap more than chance?)")
    _add_tta(evaluate)
    evaluate.add_argument("--smooth", type=_seconds, default=0.0, metavar="SECONDS",
                          help="frames of videos (Aff-Wild2): average each video's scores over "
                               "time with this time constant before scoring (default 0: per "
                               "frame)")
    evaluate.add_argument("--fps", type=float, default=30.0,
                          help="the videos' frame rate for --smooth where it cannot be read "
                               "from the video files (Aff-Wild2: videos/ beside "
                               "cropped_aligned/; default 30, Aff-Wild2's usual rate)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                          help="arithmetic of the class scores: fp32 (default: the model as "
                               "trained, eagerly), or what inference runs: bf16, int8, or auto "
                               "(as openfer predict chooses on this machine)")
    _add_device(evaluate)

    predict = commands.add_parser("predict", help="recognise expressions in photos, folders, "
                                  "videos or a camera", epilog=EXAMPLES["predict"],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_argument("paths", nargs="*", metavar="PATH",
                         help="image files, video files, folders, or URLs of photos and "
                              "videos (http://..., rtsp://...)")
    predict.add_argument("--model", action="append",
                         help="shipped name, .safetensors or .onnx file, or a training run's "
                              "directory (default: default); repeat it to predict with the "
                              "ensemble (mean of the probabilities; torch models)")
    predict.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    predict.add_argument("--camera", type=_camera, metavar="N|URL",
                         help="read camera number N, or a live stream (rtsp://..., http://...: "
                              "an IP camera; smoothing then follows the clock)")
    predict.add_argument("--every", type=int, default=1, metavar="N",
                         help="process every N-th video frame (default 1)")
    predict.add_argument("--max-frames", type=int, metavar="N",
                         help="stop a video or camera after N processed frames")
    predict.add_argument("--smooth", type=_seconds, default=0.0, metavar="SECONDS",
                         help="video and camera: average each tracked face's scores over time "
                              "with this time constant (0.2-0.3 removes most label flicker, "
                              "lagging a real change by about as long; default 0: per frame)")
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON lines, one record per face")
    output.add_argument("--csv", action="store_true", help="CSV, one row per face")
    predict.add_argument("--summary", metavar="FILE",
                         help="videos and cameras: also write one row per tracked face (frames, "
                              "times, share of frames with each label, mean scores) to FILE, "
                              "JSON or .csv")
    predict.add_argument("--save-annotated", metavar="DIR",
                         help="write annotated images / videos into DIR as "
                              "<name>.annotated.jpg / .mp4, files of a folder given in their "
                              "sub-folders; a name used twice in one run gets -2, -3, ...")
    predict.add_argument("--no-detect", action="store_true",
                         help="each input is one pre-cropped face (no detection)")
    predict.add_argument("--detector", default="auto",
                         help="auto, yunet, mtcnn, haar (default auto: YuNet, else MTCNN when "
                              "its weights are local, else Haar)")
    predict.add_argument("--yunet", metavar="FILE", help="path of the YuNet ONNX weights")
    predict.add_argument("--mtcnn", metavar="DIR",
                         help="folder of MTCNN's pnet.pt, rnet.pt, onet.pt (facenet-pytorch's)")
    _add_min_face(predict)
    predict.add_argument("--batch-size", type=int, default=64)
    predict.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    _add_precision(predict)
    _add_tta(predict)
    predict.add_argument("--strict", action="store_true",
                         help="exit non-zero if any input could not be read")
    _add_device(predict)

    export = commands.add_parser("export", help="export a model to ONNX, or a training "
                                 "checkpoint (.ckpt) to .safetensors",
                                 epilog=EXAMPLES["export"],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--model", required=True,
                        help="shipped name, .safetensors file, or a training checkpoint .ckpt")
    export.add_argument("--output", required=True,
                        help="the .onnx (or, from a .ckpt, .safetensors) file to write")
    export.add_argument("--dynamic-batch", action="store_true",
                        help="accept any batch size (default: batch 1)")
    export.add_argument("--quantize", choices=("int8",),
                        help="int8 quantisation (static, calibrated with --calibration-data; "
                             "dynamic without it)")
    export.add_argument("--calibration-data", metavar="PATH",
                        help="faces for int8 calibration: a FER2013-format CSV or an image "
                             "folder of faces (<emotion>/*.jpg)")
    export.add_argument("--calibration-dataset", default=None,
                        help="reader for --calibration-data (default: fer2013 for .csv/.csv.gz, "
                             "folder otherwise)")

    data = commands.add_parser("data", help="read a data set as training would and report "
                               "what was found: faces per class, dropped samples, problem files",
                               epilog=EXAMPLES["data"],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_argument("--dataset", required=True, help=f"the reader: {', '.join(DATASET_NAMES)}")
    data.add_argument("--root", required=True, help="the data set's file or folder")
    data.add_argument("--split", default="all", help="the data set's own split name")
    data.add_argument("--classes", help="comma-separated class list: the emotions of numbered "
                      "folders (folder i is class i); for other data sets, the order to "
                      "re-index their labels into, by name")
    data.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                      help="a reader option (e.g. images=original for rafdb); repeatable")
    data.add_argument("--size", type=int, default=48, help="face side in pixels (default 48)")
    data.add_argument("--channels", type=int, default=1, choices=(1, 3))
    data.add_argument("--verify", action="store_true",
                      help="decode every image and list the unreadable ones (exit 1 if any)")
    data.add_argument("--json", action="store_true", help="print one JSON object")

    bench = commands.add_parser("bench", help="time a model's classifier on this machine: "
                                "latency at batch 1, throughput at a batch size",
                                epilog=EXAMPLES["bench"],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--model", action="append",
                       help="shipped name, .safetensors or .onnx file (default: default); "
                            "repeat it to time the ensemble")
    bench.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    _add_precision(bench)
    bench.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    bench.add_argument("--batch", type=int, default=64, help="throughput batch (default 64)")
    bench.add_argument("--repeats", type=int, default=200,
                       help="timed calls at batch 1 (a tenth of them, at least 20, at --batch)")
    _add_device(bench)

    models = commands.add_parser("models", help="list registered architectures and weights")
    models.add_argument("pattern", nargs="?", default="*")
    models.add_argument("--json", action="store_true")

    commands.add_parser("recipes", help="list shipped training recipes")

    card = commands.add_parser("card", help="the model card of trained weights: what they are, "
                               "how they were trained and measured, intended use, limitations")
    card.add_argument("model", nargs="*", default=["default"],
                      help="shipped name, .safetensors or .onnx file, or run directory (default: "
                           "default); several: the card of their ensemble")
    card.add_argument("--json", action="store_true",
                      help="the card's facts as JSON (file, digest, parameters, all metadata; "
                           "a list of them for an ensemble)")

    serve = commands.add_parser("serve", help="web service and web page (needs the [serve] "
                                "extra)", epilog=EXAMPLES["serve"],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="TCP port, 1-65535, or 0 for any free one (default 8000)")
    serve.add_argument("--model", action="append",
                       help="shipped name, .safetensors or .onnx file (default: default); "
                            "repeat it to serve the ensemble (mean of the probabilities; torch "
                            "models)")
    serve.add_argument("--detector", default="auto",
                         help="auto, yunet, mtcnn, haar (default auto: YuNet, else MTCNN when "
                              "its weights are local, else Haar)")
    serve.add_argument("--yunet", metavar="FILE", help="path of the YuNet ONNX weights")
    serve.add_argument("--mtcnn", metavar="DIR",
                         help="folder of MTCNN's pnet.pt, rnet.pt, onet.pt (facenet-pytorch's)")
    _add_min_face(serve)
    serve.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    _add_tta(serve)
    _add_precision(serve)
    serve.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    serve.add_argument("--api-key", default=None,
                       help="require this key (X-API-Key header) on /v1 routes; default: "
                            "$OPENFER_API_KEY, else none")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from ORIGIN (repeatable; default: none)")
    serve.add_argument("--max-upload-mb", type=float, default=10.0,
                       help="largest request body in MB (default 10)")
    serve.add_argument("--max-pixels", type=int, default=40_000_000,
                       help="largest declared image size, width x height (default 40,000,000)")
    serve.add_argument("--max-files", type=int, default=16, help="images per request")
    serve.add_argument("--max-video-mb", type=float, default=100.0,
                       help="largest video upload in MB (/v1/predict/video; default 100)")
    serve.add_argument("--max-video-frames", type=int, default=9000,
                       help="frames analysed of one video; the answer says when more were "
                            "left (default 9000: 5 minutes at 30 frames/s)")
    serve.add_argument("--video-jobs", type=int, default=1,
                       help="videos analysed at once; later ones wait (default 1)")
    serve.add_argument("--max-queue", type=int, default=256,
                       help="requests in progress before answering 503 (default 256)")
    serve.add_argument("--max-batch", type=int, default=64,
                       help="faces classified together (1 turns micro-batching off)")
    serve.add_argument("--batch-window-ms", type=float, default=0.0,
                       help="extra wait of a batch for more requests (default 0: a batch "
                            "takes what queued while the previous one ran)")
    serve.add_argument("--detect-threads", type=int, default=2,
                       help="face detections run in parallel (default 2)")
    _add_device(serve)
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port: use 1-65535 (or 0: any "
                                         "free port)")
    return int(text)


def _camera(value: str) -> int | str:
    """``--camera``: a camera number, or a stream URL."""
    from .video import is_stream_url

    if value.isdigit():
        return int(value)
    if is_stream_url(value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is neither a camera number (0, 1, ...) nor a "
                                     "stream URL (rtsp://..., http://...)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give seconds, 0 or more "
                                         "(e.g. 0.3)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse takes a command's KEY=VALUE overrides only before its options; accept them after
    # too (openfer train --recipe r --output runs/x optimizer.lr=0.01).
    if extra and hasattr(args, "overrides") and \
            all("=" in item and not item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except OpenferError as exc:
        print(f"openfer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("openfer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                 # openfer predict ... | head: the reader has stopped
        _silence_stdout()
        return 141                          # as a Unix tool killed by SIGPIPE (128 + 13)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit cannot raise again."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _require_training_extra() -> None:
    """Training imports Lightning and torchmetrics: say which extra to install if they lack."""
    try:
        import lightning  # noqa: F401
        import torchmetrics  # noqa: F401
    except ImportError as exc:
        raise OpenferError(f"training needs the [train] extra ({exc.name} is missing): "
                           "pip install 'openfer[train]'") from None


def cmd_train(args) -> int:
    _require_training_extra()
    from .engine.recipe import load_recipe
    from .engine.train import train

    recipe = load_recipe(args.recipe, _training_overrides(args))
    summary = train(recipe, output_dir=args.output, resume=args.resume)
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_cv(args) -> int:
    _require_training_extra()
    from .engine.cross_validation import format_cv, run_cross_validation

    import shlex
    import sys
    result = run_cross_validation(args.recipe, _training_overrides(args), args.output,
                                  folds=args.folds,
                                  only=args.fold,
                                  command=" ".join(["openfer", *map(shlex.quote,
                                                                    sys.argv[1:])]))
    print(format_cv(result))
    return 0


def cmd_eval(args) -> int:
    from .data import load_dataset
    from .evaluate import evaluate
    from .metrics import format_comparison, format_report
    from .models.registry import load_model

    device = resolve_device(args.device)
    if len(args.model) == 1:
        model = load_model(args.model[0])
    else:
        from .models.ensemble import load_ensemble
        model = load_ensemble(args.model)
    meta = model.meta
    classes = args.classes.split(",") if args.classes else None
    options = _reader_options(args.option)
    if args.dataset == "rafdb" and {"gender", "race", "age"} & set(getattr(model, "head_sizes",
                                                                        {})):
        options.setdefault("attributes", True)      # a multi-task model's heads get evaluated
    dataset = load_dataset(args.dataset, args.root, args.split, image_size=meta.input_size,
                           channels=meta.channels, classes=classes, **options)
    dataset.require_labels()
    print("\n".join(dataset.notes()), file=sys.stderr)
    other = faces = None
    if args.compare:
        other = load_model(args.compare)
        same_input = (other.meta.input_size, other.meta.channels) == (meta.input_size,
                                                                      meta.channels)
        faces = dataset if same_input else load_dataset(
            args.dataset, args.root, args.split, image_size=other.meta.input_size,
            channels=other.meta.channels, classes=classes, **options)
    report = evaluate(model, dataset, batch_size=args.batch_size, device=device,
                      tta=args.tta, precision=args.precision, compare_with=other,
                      compare_dataset=faces, smooth=args.smooth, fps=args.fps)
    report["split"] = args.split
    report["model_file"] = args.model[0] if len(args.model) == 1 else args.model
    if args.compare:
        report["comparison"]["model_file"] = args.compare
    if args.json:
        print(json.dumps(report))
    else:
        print(f"model {' + '.join(args.model)} ({meta.architecture}) on {dataset.name}")
        print(format_report(report))
        if args.compare:
            print(format_comparison(report["comparison"]))
    return 0


def _reader_options(items: list[str]) -> dict:
    import yaml

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OpenferError(f"--option {item!r}: expected KEY=VALUE, e.g. images=original")
        try:
            options[key] = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError):
            options[key] = value              # not YAML (say a path with ': '): the text
    return options


def cmd_data(args) -> int:
    from .data import ImageFileDataset, load_dataset

    classes = args.classes.split(",") if args.classes else None
    dataset = load_dataset(args.dataset, args.root, args.split, image_size=(args.size, args.size),
                           channels=args.channels, classes=classes,
                           **_reader_options(args.option))
    unreadable = [str(e) for e in dataset.verify()] \
        if args.verify and isinstance(dataset, ImageFileDataset) else []
    labelled = dataset.labels >= 0
    report = {"dataset": args.dataset, "name": dataset.name, "split": args.split,
              "n": len(dataset), "unlabelled": int((~labelled).sum()),
              "classes": [c.value for c in dataset.classes], "counts": dataset.class_counts(),
              "dropped": dict(dataset.dropped), "targets": sorted(dataset.targets),
              "problems": dataset.problems, "verified": bool(args.verify),
              "unreadable": unreadable}
    if args.json:
        print(json.dumps(report))
    else:
        print("\n".join(dataset.notes(limit=20)))
        if report["unlabelled"]:
            print(f"  {report['unlabelled']} samples have no label (prediction only)")
        if report["targets"]:
            print(f"  targets: {', '.join(report['targets'])}")
        if args.verify:
            print(f"verified: {len(dataset) - len(unreadable)} of {len(dataset)} images decode")
            for error in unreadable:
                print(f"  {error}")
    return 1 if unreadable else 0


def _model_or_ensemble(models: list[str] | None) -> str | list[str]:
    """A repeatable ``--model``: one name, or the list of an ensemble's (default: default)."""
    models = models or ["default"]
    return models[0] if len(models) == 1 else models


def cmd_bench(args) -> int:
    from .bench import run

    report = run(_model_or_ensemble(args.model), backend=args.backend, precision=args.precision,
                 threads=args.threads, batch=args.batch, repeats=args.repeats,
                 device=resolve_device(args.device))
    print(json.dumps(report, indent=2))
    return 0


def cmd_models(args) -> int:
    from .checkpoint import shipped_weights
    from .models.registry import get_entry, list_models

    names = list_models(args.pattern)
    shipped = shipped_weights()
    weights = sorted(shipped)
    if args.json:
        print(json.dumps({"architectures": names, "weights": weights}))
        return 0
    for name in names:
        entry = get_entry(name)
        meta = entry.meta
        print(f"{name:<24} {meta.channels}x{meta.input_size[0]}x{meta.input_size[1]}  "
              f"{entry.description}")
    print("\nshipped weights (openfer card NAME for the whole card):" if weights else
          "\nshipped weights: none")
    for name in weights:
        print("  " + _shipped_line(name, shipped[name]))
    return 0


def _shipped_line(name: str, path) -> str:
    """One line on shipped weights: file, architecture, size, first recorded accuracy."""
    from .checkpoint import read_header

    header = read_header(path)
    text = f"{name:<27} {header['architecture']:<13} {path.stat().st_size / 1e6:4.1f} MB"
    dataset, row = next(iter((header["meta"].get("metrics") or {}).items()), (None, {}))
    if "accuracy" in row:
        text += f"  {100 * row['accuracy']:.2f} % {dataset} {row.get('split', '')}"
    return text + (f"  (= {path.stem})" if path.stem != name else "")


def cmd_card(args) -> int:
    from .model_card import card_facts, ensemble_facts, model_card

    if args.json:
        facts = card_facts(args.model[0]) if len(args.model) == 1 else \
            ensemble_facts(args.model)
        print(json.dumps(facts, indent=2))
    else:
        sys.stdout.write(model_card(args.model))
    return 0


def cmd_recipes(args) -> int:
    import yaml

    from .engine.recipe import builtin_recipes

    for name, path in builtin_recipes().items():
        data = yaml.safe_load(path.read_text()) or {}
        print(f"{name:<32} {data.get('description', '')}")
    return 0


def cmd_predict(args) -> int:
    from .predict_cli import run_predict
    return run_predict(args, resolve_device(args.device))


def cmd_export(args) -> int:
    from .models.registry import load_model

    if str(args.model).endswith(".ckpt"):
        from .engine.train import model_from_checkpoint
        model = model_from_checkpoint(args.model)
    else:
        model = load_model(args.model)
    if str(args.output).endswith(".safetensors"):
        from .checkpoint import save_weights
        path = save_weights(model, args.output)
    else:
        from .export import export_onnx
        calibration = None
        if args.calibration_data:
            from .data import load_dataset
            source = str(args.calibration_data)
            name = args.calibration_dataset or ("fer2013" if source.endswith((".csv", ".csv.gz"))
                                                else "folder")
            calibration = load_dataset(name, source, "Training" if name == "fer2013" else "all",
                                       image_size=model.meta.load_size,
                                       channels=model.meta.channels)
        path = export_onnx(model, args.output, dynamic_batch=args.dynamic_batch,
                           quantize=args.quantize, calibration=calibration)
    print(f"wrote {path}")
    return 0


def cmd_serve(args) -> int:
    import os

    try:
        from .serve import ServeConfig, run
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise OpenferError(f"openfer serve needs the [serve] extra ({exc.name} is missing): "
                           "pip install 'openfer[serve]'") from None
    config = ServeConfig(
        model=_model_or_ensemble(args.model), detector=args.detector,
        yunet=args.yunet, mtcnn=args.mtcnn, min_face=args.min_face,
        backend=args.backend,
        precision=args.precision, tta=args.tta, device=resolve_device(args.device),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_video_bytes=int(args.max_video_mb * 1024 * 1024),
        max_video_frames=args.max_video_frames, video_jobs=args.video_jobs,
        max_pixels=args.max_pixels, max_files=args.max_files, max_queue=args.max_queue,
        max_batch=args.max_batch, batch_window_ms=args.batch_window_ms,
        detect_threads=args.detect_threads,
        api_key=args.api_key or os.environ.get("OPENFER_API_KEY") or None,
        cors_origins=args.cors_origin)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        print(f"openfer: warning: serving on {args.host} without an API key; anyone who can "
              "reach this port can use it (--api-key)", file=sys.stderr)
    run(config, host=args.host, port=args.port, workers=args.workers)
    return 0


COMMANDS = {"serve": cmd_serve, "train": cmd_train, "cv": cmd_cv, "eval": cmd_eval,
            "predict": cmd_predict, "export": cmd_export,
            "models": cmd_models, "card": cmd_card, "recipes": cmd_recipes, "data": cmd_data,
            "bench": cmd_bench}

if __name__ == "__main__":
    sys.exit(main())
