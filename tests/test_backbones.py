"""Plain-torch backbones with torchvision's keys, and pretrained-weight loading."""

import pytest
import torch
import torch.nn.functional as F

import openfer
from conftest import SHARED
from openfer.errors import OpenferError
from openfer.models.backbones import (densenet121, inception_v3, mobilenet_v2, resnet18,
                                      resnet34, resnet50)
from openfer.models.pretrained import load_pretrained

MOBILENET = SHARED / "weights" / "mobilenet_v2-b0353104.pth"


def count(model):
    return sum(p.numel() for p in model.parameters())


# torchvision 0.28's counts (../shared/docs/REFERENCE_COUNTS.md; resnet34/50 from torchvision).
@pytest.mark.parametrize("builder, params, keys", [
    (resnet18, 11_689_512, 122), (resnet34, 21_797_672, 218), (resnet50, 25_557_032, 320),
    (densenet121, 7_978_856, 727), (inception_v3, 23_834_568, 566),
    (mobilenet_v2, 3_504_872, 314)])
def test_counts_match_torchvision(builder, params, keys):
    model = builder()
    assert count(model) == params and len(model.state_dict()) == keys


@pytest.mark.parametrize("builder, size, channels", [
    (resnet18, 112, 512), (densenet121, 112, 1024), (inception_v3, 139, 2048),
    (mobilenet_v2, 96, 1280)])
def test_features_head_split_and_other_input_sizes(builder, size, channels):
    model = builder(num_classes=7).eval()
    features = model.forward_features(torch.rand(2, 3, size, size))
    assert features.shape[1] == channels
    assert model.forward_head(features, pre_logits=True).shape == (2, channels)
    assert model.forward_head(features).shape == (2, 7)


def test_densenet_features_end_without_relu():
    model = densenet121().eval()
    features = model.forward_features(torch.rand(1, 3, 64, 64))
    assert (features < 0).any(), "Emotion-GCN pools the pre-activation norm5 output"


@pytest.fixture(scope="module")
def mobilenet_checkpoint():
    if not MOBILENET.is_file():
        pytest.skip(f"{MOBILENET} not found (../shared is not beside the repository)")
    return MOBILENET


def test_torchvision_checkpoint_loads_with_every_key(mobilenet_checkpoint):
    report = load_pretrained(mobilenet_v2(), mobilenet_checkpoint)
    assert report.ok and len(report.loaded) == 314 and not report.dropped


def test_loaded_network_names_a_real_photo(mobilenet_checkpoint):
    skimage_data = pytest.importorskip("skimage.data")
    model = mobilenet_v2().eval()
    load_pretrained(model, mobilenet_checkpoint)
    photo = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(photo, size=(224, 336), mode="bilinear", antialias=True)[..., 56:280]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model((x - mean) / std).softmax(-1)[0].topk(3).indices.tolist()
    assert top[0] == 967, f"expected ImageNet class 967 'espresso', got {top}"


def test_common_checkpoint_layouts_and_head_replacement(tmp_path):
    source = resnet18()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
               "epoch": 3}
    torch.save(wrapped, tmp_path / "msceleb_style.pth")
    model = openfer.create_model("resnet18", pretrained=str(tmp_path / "msceleb_style.pth"))
    assert model.pretrained_report.dropped == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert model.fc.out_features == 7


def test_missing_and_unexpected_keys_are_errors(tmp_path):
    state = resnet18().state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(OpenferError, match=r"missing from the checkpoint: \['layer1.0.conv1"
                                           r".weight'\]; not in the model: \['extra.weight'\]"):
        load_pretrained(resnet18(), tmp_path / "bad.pth")


def test_offline_url_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    with pytest.raises(OpenferError, match=r"download https://example.org/w/resnet18.pth and "
                                           r"save it as .*weights/resnet18.pth"):
        load_pretrained(resnet18(), "https://example.org/w/resnet18.pth")


def test_pickles_that_need_code_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))
    torch.save({"state_dict": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(OpenferError, match="cannot load it safely"):
        load_pretrained(resnet18(), tmp_path / "evil.pth")


def test_explicit_download_failure_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENFER_HOME", str(tmp_path))
    with pytest.raises(OpenferError, match=r"cannot download http://127.0.0.1:9/w/r18.pth .*"
                                           r"save it as .*weights/r18.pth"):
        load_pretrained(resnet18(), "http://127.0.0.1:9/w/r18.pth", download=True)
