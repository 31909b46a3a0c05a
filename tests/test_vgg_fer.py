"""Khaireddin & Chen's VGG variant (arXiv 2105.03588): the authors' network, ten-crop training
and testing, and the recipe of their public code."""

import pytest
import torch

import openfer
from openfer.data.transforms import BatchAugment, ten_crops
from openfer.engine.recipe import load_recipe
from openfer.engine.train import train
from openfer.models.vgg_fer import VGGFER


def test_ten_crops_are_torchvisions_tencrop_face_by_face():
    """Corners (top-left, top-right, bottom-left, bottom-right), centre, then the same of the
    mirror image; the centre of 48 -> 40 starts at row and column 4."""
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).view(2, 1, 48, 48)
    crops = ten_crops(x, 40)
    assert crops.shape == (20, 1, 40, 40)
    mirror = x.flip(-1)
    for face in range(2):
        expected = [x[face, :, t:t + 40, c:c + 40] for t, c in
                    ((0, 0), (0, 8), (8, 0), (8, 8), (4, 4))]
        expected += [mirror[face, :, t:t + 40, c:c + 40] for t, c in
                     ((0, 0), (0, 8), (8, 0), (8, 8), (4, 4))]
        for i, crop in enumerate(expected):
            assert torch.equal(crops[face * 10 + i], crop), (face, i)


def test_the_network_is_the_authors_with_their_30_million_parameters():
    model = openfer.create_model("vgg_fer")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.bias is not None for c in convs)               # the code's convolutions
    expected = sum(9 * cin * cout + cout + 2 * cout for cin, cout in
                   ((1, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
                    (256, 512), (512, 512)))
    expected += (2048 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 7 + 7)
    assert sum(p.numel() for p in model.parameters()) == expected == 29_890_759
    fernet = openfer.create_model("fernet_m").meta               # reads the FERNets' input
    assert (model.meta.input_size, model.meta.mean, model.meta.std) == (
        fernet.input_size, fernet.mean, fernet.std)


def test_evaluation_averages_the_logits_of_the_ten_crops_of_the_whole_face():
    torch.manual_seed(0)
    model = VGGFER().eval()
    faces = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        per_crop = model.forward_head(model.forward_features(ten_crops(faces, 40)))
        assert torch.allclose(model(faces), per_crop.view(3, 10, 7).mean(1), atol=1e-5)
        centre = VGGFER(test_crops=1).eval()
        centre.load_state_dict(model.state_dict())
        expected = model.forward_head(model.forward_features(faces[..., 4:44, 4:44]))
        assert torch.allclose(centre(faces), expected, atol=1e-5)
    model.train()
    assert model(torch.rand(5, 1, 40, 40)).shape == (5, 7)       # training: the crops
    with pytest.raises(ValueError, match="test_crops"):
        VGGFER(test_crops=5)


def test_ten_crop_augmentation_makes_ten_inputs_a_face_erased_per_crop():
    torch.manual_seed(0)
    augment = BatchAugment.from_config({"hflip": 0.0, "ten_crop": 40, "erasing": 1.0,
                                        "erasing_fill": "zero"})
    faces = torch.full((4, 1, 48, 48), 0.5)
    out = augment(faces)
    assert out.shape == (40, 1, 40, 40) and augment.views_per_face == 10
    erased = (out == 0).flatten(1)
    assert erased.any(1).all()                                    # every crop has its rectangle
    assert len({tuple(row.nonzero().flatten().tolist()) for row in erased}) == 40
    with pytest.raises(ValueError, match="erasing_fill"):
        BatchAugment(erasing_fill="grey")


def test_rotation_and_shift_apply_to_the_share_of_faces_asked():
    torch.manual_seed(0)
    faces = torch.rand(1, 1, 48, 48).expand(400, 1, 48, 48).contiguous()
    for key in ("rotation", "translate"):
        value = 10 if key == "rotation" else 0.2
        out = BatchAugment(hflip=0.0, **{key: value, f"{key}_p": 0.5})(faces)
        unchanged = ((out - faces).abs().flatten(1).max(1).values < 1e-5).float().mean()
        assert 0.4 < unchanged < 0.6, (key, unchanged)
        untouched = BatchAugment(hflip=0.0, **{key: value, f"{key}_p": 0.0})(faces)
        assert torch.allclose(untouched, faces, atol=1e-5)


def test_the_recipe_is_the_authors_codes(tmp_path):
    recipe = load_recipe("vgg_fer2013")
    assert recipe["model"]["name"] == "vgg_fer" and recipe["data"]["batch_size"] == 64
    assert recipe["optimizer"] == {**recipe["optimizer"], "name": "sgd", "lr": 0.01,
                                   "momentum": 0.9, "nesterov": True, "weight_decay": 0.0001}
    assert (recipe["scheduler"]["name"], recipe["scheduler"]["gamma"],
            recipe["scheduler"]["patience"]) == ("plateau", 0.75, 5)
    assert recipe["trainer"]["max_epochs"] == 300 and recipe["augment"]["ten_crop"] == 40


@pytest.mark.slow
def test_ten_crop_training_repeats_each_label_and_validates_on_whole_faces(fer2013_subset,
                                                                          tmp_path):
    """Two steps of 4 faces (40 crops each) and a validation of 16 whole faces run, and the
    training accuracy is counted per crop."""
    recipe = load_recipe("vgg_fer2013", [
        f"data.root={fer2013_subset}", "trainer.progress_bar=false", "data.batch_size=4",
        "data.limit_train=8", "data.limit_val=16", "trainer.max_epochs=1",
        "trainer.precision=32-true"])
    summary = train(recipe, output_dir=tmp_path)
    assert summary["metrics"]["n"] == 16
    model = openfer.load_model(tmp_path / "best.safetensors")
    assert isinstance(model, VGGFER) and model.meta.architecture == "vgg_fer"


def test_ten_crop_needs_the_classification_method():
    """Methods with their own training step (center loss, DACL, multi-task, ...) would pair ten
    crops with one label: refused when the task is built."""
    from openfer.engine.train import TASKS
    from openfer.errors import RecipeError
    recipe = load_recipe("resnet18_centerloss_rafdb", ["augment.ten_crop=40"])
    with pytest.raises(RecipeError, match="augment.ten_crop"):
        TASKS[recipe["method"]](recipe)
