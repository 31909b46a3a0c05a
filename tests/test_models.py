"""The registry and Deep-Emotion, against the original implementations' counts and behaviour."""

import pytest
import torch

import openfer
from openfer.errors import OpenferError


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_and_creates():
    assert openfer.list_models("deep_emotion*") == ["deep_emotion", "deep_emotion_paper"]
    model = openfer.create_model("deep_emotion")
    assert model.meta.classes == ("anger", "disgust", "fear", "happiness", "sadness",
                                  "surprise", "neutral")
    assert model.meta.input_size == (48, 48) and model.meta.channels == 1
    assert model.openfer_config == {"architecture": "deep_emotion", "kwargs": {}}


def test_deep_emotion_reference_matches_original_count_and_keys():
    model = openfer.create_model("deep_emotion")
    assert count(model) == 66_877          # ../shared/docs/REFERENCE_COUNTS.md
    keys = list(model.state_dict())
    assert len(keys) == 25
    assert keys[:5] == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "conv3.weight"]
    assert keys[-5:] == ["localization.3.bias", "fc_loc.0.weight", "fc_loc.0.bias",
                         "fc_loc.2.weight", "fc_loc.2.bias"]
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_deep_emotion_paper_variant_count_and_shapes():
    model = openfer.create_model("deep_emotion_paper")
    # conv 100 + 3*910, localisation 80 + 730 + 2,912 + 198, fc 40,550 + 357 (METHODS.md 3b)
    assert count(model) == 47_657
    assert model(torch.rand(2, 1, 48, 48) * 255).shape == (2, 7)
    assert model.meta.mean == (0.0,) and model.meta.std == pytest.approx((1 / 255,))


def test_spatial_transformer_starts_at_identity():
    model = openfer.create_model("deep_emotion").eval()
    x = torch.rand(3, 1, 48, 48)
    assert torch.allclose(model.stn(x), x, atol=1e-5)


def test_dropout_follows_eval_mode_unlike_the_original():
    x = torch.rand(4, 1, 48, 48)
    fixed = openfer.create_model("deep_emotion").eval()
    assert torch.equal(fixed(x), fixed(x))
    original = openfer.create_model("deep_emotion", reference_dropout_bug=True).eval()
    torch.manual_seed(0)
    first = original(x)
    assert not torch.equal(first, original(x)), "the original keeps dropout on at evaluation"


def test_paper_variant_l2_penalty_is_keras_l2_on_fc_layers():
    model = openfer.create_model("deep_emotion_paper")
    expected = 0.01 * sum(p.pow(2).sum() for p in (model.fc1.weight, model.fc1.bias,
                                                    model.fc2.weight, model.fc2.bias))
    assert torch.allclose(model.regularization_loss(), expected)


def test_custom_classes_change_the_head():
    model = openfer.create_model("deep_emotion", classes=["happy", "sad", "neutral"])
    assert model.meta.classes == ("happiness", "sadness", "neutral")
    assert model(torch.rand(2, 1, 48, 48)).shape == (2, 3)
    with pytest.raises(OpenferError, match="needs a matching class list"):
        openfer.create_model("deep_emotion", num_classes=3)


def test_unknown_model_and_bad_arguments_are_clear():
    with pytest.raises(OpenferError, match="unknown model 'deep_emotoin'"):
        openfer.create_model("deep_emotoin")
    with pytest.raises(OpenferError, match="its arguments are: num_classes"):
        openfer.create_model("deep_emotion", depth=3)
    with pytest.raises(OpenferError, match="architecture without shipped weights"):
        openfer.load_model("deep_emotion_paper")


def test_fernet_family_sizes():
    medium = openfer.create_model("fernet_m")
    assert count(medium) == 1_174_439          # DESIGN.md's measured CPU network: 1.17 M
    assert count(openfer.create_model("fernet_s")) == 294_615
    assert medium(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_crop_fraction_resizes_then_centre_crops():
    from openfer.data.transforms import to_model_input
    meta = openfer.create_model("resnet18", input_size=64).meta.replace(crop_fraction=64 / 72)
    assert meta.load_size == (72, 72)
    batch = torch.zeros(1, 3, 72, 72, dtype=torch.uint8)
    batch[..., 4:68, 4:68] = 255                  # the centre 64x64 crop is white
    x = to_model_input(batch, meta)
    assert x.shape == (1, 3, 64, 64)
    assert torch.allclose(x, to_model_input(torch.full((1, 3, 64, 64), 255, dtype=torch.uint8),
                                            meta.replace(crop_fraction=1.0)))
