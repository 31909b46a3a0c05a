"""Every reader of untrusted input, as a fuzz target: ``target(path) -> result``.

A target either returns a result or raises :class:`openfer.errors.OpenferError` (or the
service's :class:`~openfer.serve.uploads.UploadError`) with a message that names the file;
anything else is a bug. Shared by the property tests (``tests/test_fuzz.py``), the corpus run
(``fuzz/run_corpus.py``) and the coverage-guided run (``fuzz/atheris_fuzz.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable


def _image(path: Path):
    from openfer.data.images import read_image_bounded
    return read_image_bounded(path)[0].shape


def _image_small(path: Path):
    from openfer.data.images import read_image
    return read_image(path, 1).shape


def _upload(path: Path):
    from openfer.serve.uploads import decode_upload
    return decode_upload(path.read_bytes(), path.name, max_bytes=10_000_000,
                         max_pixels=40_000_000)[0].shape


@functools.lru_cache(maxsize=1)
def _recognizer():
    from openfer import Recognizer
    return Recognizer("default", detector="haar")


def _predict(path: Path):
    result = _recognizer().predict(path)[0]
    if result.error is not None:      # the predict path reports, never raises, per input
        from openfer.errors import DataFormatError
        raise DataFormatError(path, result.error.split(": ", 1)[-1])
    return len(result.faces)


def _fer2013(path: Path):
    from openfer.data.fer2013 import read_csv
    return len(read_csv(path)[0])


def _rafdb_labels(path: Path):
    from openfer.data.rafdb import read_labels
    return len(read_labels(path))


def _rafdb_compound_labels(path: Path):
    from openfer.data.rafdb import read_labels
    return len(read_labels(path, "compound"))


def _rafdb_attributes(path: Path):
    from openfer.data.rafdb import read_manual_attributes
    return read_manual_attributes(path)[1]


def _expw_labels(path: Path):
    from openfer.data.expw import read_labels, unique_faces
    return len(unique_faces(read_labels(path), path)[0])


def _affectnet(path: Path):
    from openfer.data.affectnet import read_csv
    return len(read_csv(path))


def _affwild2_expr(path: Path):
    from openfer.data.affwild2 import read_expr
    return len(read_expr(path))


def _affwild2_va(path: Path):
    from openfer.data.affwild2 import read_va
    return len(read_va(path))


def _ckplus_emotion(path: Path):
    from openfer.data.ckplus import read_emotion_file
    return read_emotion_file(path)


def _mmi_index(path: Path):
    from openfer.data.mmi import read_index
    return len(read_index(path))


def _mmi_aus(path: Path):
    from openfer.data.mmi_aus import apex_frame, read_apex_spans
    return apex_frame(read_apex_spans(path), 100)


def _jaffe_ratings(path: Path):
    from openfer.data.jaffe import read_ratings
    return len(read_ratings(path))


def _ferplus_votes(path: Path):
    from openfer.data.ferplus import read_vote_file
    return sum(len(rows) for rows in read_vote_file(path).values())


def _ferplus_label_csv(path: Path):
    from openfer.data.ferplus import read_label_csv
    return len(read_label_csv(path))


def _fmpn_labels(path: Path):
    from openfer.data.fmpn_layout import read_label_pickle
    return len(read_label_pickle(path))


def _fmpn_list(path: Path):
    from openfer.data.folds import read_name_list
    return len(read_name_list(path))


def _recipe(path: Path):
    from openfer.engine.recipe import load_recipe
    return load_recipe(path)["name"]


def _checkpoint(path: Path):
    from openfer.engine.checkpointing import read_checkpoint
    return sorted(read_checkpoint(path))


def _weights(path: Path):
    from openfer.checkpoint import load_weights
    return type(load_weights(path)).__name__


#: name -> (file suffix, target)
TARGETS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "image": (".jpg", _image),
    "image_gray": (".png", _image_small),
    "upload": (".bin", _upload),
    "predict": (".jpg", _predict),
    "fer2013_csv": (".csv", _fer2013),
    "rafdb_labels": (".txt", _rafdb_labels),
    "rafdb_compound_labels": (".txt", _rafdb_compound_labels),
    "rafdb_attributes": (".txt", _rafdb_attributes),
    "expw_labels": (".lst", _expw_labels),
    "affectnet_csv": (".csv", _affectnet),
    "affwild2_expr": (".txt", _affwild2_expr),
    "affwild2_va": (".txt", _affwild2_va),
    "ckplus_emotion": (".txt", _ckplus_emotion),
    "jaffe_ratings": (".csv", _jaffe_ratings),
    "mmi_index": (".csv", _mmi_index),
    "mmi_aus": ("-oao_aucs.xml", _mmi_aus),
    "ferplus_votes": (".csv", _ferplus_votes),
    "ferplus_label_csv": (".csv", _ferplus_label_csv),
    "fmpn_labels": (".pkl", _fmpn_labels),
    "fmpn_list": (".csv", _fmpn_list),
    "recipe": (".yaml", _recipe),
    "checkpoint": (".ckpt", _checkpoint),
    "weights": (".safetensors", _weights),
}


def expected_errors() -> tuple[type[BaseException], ...]:
    from openfer.errors import OpenferError
    from openfer.serve.uploads import UploadError
    return (OpenferError, UploadError)


def names_the_file(error: BaseException, path: Path) -> bool:
    return path.name in str(error) or str(path) in str(error)
