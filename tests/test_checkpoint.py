"""Weight files: safetensors + metadata, checksummed, written atomically."""

import json

import pytest
import torch
from safetensors.torch import save_file

import openfer
from openfer.checkpoint import read_header, save_weights
from openfer.errors import OpenferError
from openfer.fileio import atomic_open


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = openfer.create_model("deep_emotion", classes=["happy", "sad"])
    path = save_weights(model, tmp_path / "m.safetensors", metrics={"fer2013": {"accuracy": 0.5}})
    loaded = openfer.load_model(path)
    assert loaded.meta.classes == ("happiness", "sadness")
    assert loaded.meta.metrics == {"fer2013": {"accuracy": 0.5}}
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    header = read_header(path)
    assert header["architecture"] == "deep_emotion" and len(header["sha256"]) == 64


def test_altered_weights_fail_the_checksum(tmp_path):
    path = save_weights(openfer.create_model("deep_emotion"), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF                      # flip bits inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(OpenferError, match="do not match their checksum"):
        openfer.load_model(path)


def test_foreign_and_non_safetensors_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(OpenferError, match="no openfer metadata"):
        openfer.load_model(foreign)
    pickle = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickle)
    with pytest.raises(OpenferError, match="not a readable safetensors file"):
        openfer.load_model(pickle)


def test_atomic_write_leaves_previous_file_on_failure(tmp_path):
    target = tmp_path / "file.json"
    target.write_text(json.dumps({"version": 1}))
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as handle:
            handle.write('{"version": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]   # no temporary left behind


@pytest.mark.parametrize("change, message", [
    ({"architecture": "eeep_emotion"}, "unknown model 'eeep_emotion'"),
    ({"kwargs": {"num_classes": 8}}, "num_classes=8 needs a matching class list"),
    ({"kwargs": {"bogus": 1}}, "unexpected keyword argument 'bogus'"),
    ({"kwargs": [1]}, "does not describe a model openfer can build"),
    ({"meta": {"x": 1}}, "metadata is incomplete or malformed"),
])
def test_altered_metadata_is_an_error_that_names_the_file(change, message, tmp_path):
    """Found by fuzzing (a mutated architecture name once escaped without the file's name)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from openfer.checkpoint import load_weights

    path = save_weights(openfer.create_model("deep_emotion"), tmp_path / "w.safetensors")
    with safe_open(str(path), "pt") as handle:
        header = json.loads(handle.metadata()["openfer"])
    altered = tmp_path / "altered.safetensors"
    save_file(load_file(str(path)), str(altered),
              metadata={"openfer": json.dumps(dict(header, **change))})
    with pytest.raises(openfer.OpenferError, match=message) as error:
        load_weights(altered)
    assert str(error.value).startswith(str(altered))
