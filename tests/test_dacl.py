"""DACL: the model against the original's count and keys, the sparse center loss against its
formulas, and a short run of each of the paper's three methods."""

import pytest
import torch

import openfer
from openfer.engine.recipe import load_recipe
from openfer.engine.train import train
from openfer.losses import center_loss, init_centers, sparse_center_loss


def test_dacl_matches_the_original_count_keys_and_outputs():
    model = openfer.create_model("dacl_resnet18")
    assert sum(p.numel() for p in model.parameters()) == 103_042_311
    keys = list(model.state_dict())
    assert len(keys) == 145
    assert keys[-5:] == ["attention.7.num_batches_tracked", "attention_heads.weight",
                         "attention_heads.bias", "fc.weight", "fc.bias"]
    assert model.attention[0].in_features == 25_088
    f, logits, attention = model.train().forward_train(torch.rand(2, 3, 224, 224))
    assert f.shape == (2, 512) and logits.shape == (2, 7) and attention.shape == (2, 512)
    assert ((attention > 0) & (attention < 1)).all()


def test_attention_is_sized_from_the_feature_map():
    model = openfer.create_model("dacl_resnet18", input_size=96)
    assert model.attention[0].in_features == 512 * 3 * 3
    assert model.meta.input_size == (96, 96)
    assert model.eval()(torch.rand(1, 3, 96, 96)).shape == (1, 7)


def test_sparse_center_loss_value_and_gradients_follow_the_formulas():
    torch.manual_seed(0)
    m, d, k = 6, 5, 3
    x = torch.randn(m, d, requires_grad=True)
    a = torch.rand(m, d, requires_grad=True)
    c = torch.randn(k, d, requires_grad=True)
    y = torch.tensor([0, 2, 2, 1, 0, 2])
    loss = sparse_center_loss(x, y, a, c)
    diff = x.detach() - c.detach()[y]
    assert torch.allclose(loss, (a.detach() * diff ** 2).sum() / (2 * m))
    (0.01 * loss).backward()                                # λ = 0.01 upstream
    assert torch.allclose(x.grad, 0.01 * a.detach() * diff / m)
    assert torch.allclose(a.grad, 0.01 * diff ** 2 / (2 * m))
    expected = torch.zeros(k, d)
    for j in range(k):
        members = y == j
        expected[j] = (a.detach()[members] * (c.detach()[j] - x.detach()[members])).sum(0) / \
            (1 + members.sum())
    assert torch.allclose(c.grad, expected), "center update Δc is not scaled by λ (original)"


def test_plain_center_loss_is_the_sparse_one_with_unit_attention():
    x, c = torch.randn(4, 3), torch.randn(2, 3)
    y = torch.tensor([0, 1, 1, 0])
    assert torch.allclose(center_loss(x, y, c), ((x - c[y]) ** 2).sum() / 8)


def test_center_initialisation_scale():
    centers = init_centers(7, 512)
    assert centers.shape == (7, 512)
    assert abs(centers.std().item() - (2 / 7) ** 0.5) < 0.03


@pytest.mark.slow
@pytest.mark.parametrize("recipe, model_args", [
    ("dacl_rafdb", ["model.args.input_size=64"]),
    ("resnet18_centerloss_rafdb", ["model.args.input_size=64"]),
    ("resnet18_softmax_rafdb", ["model.args.input_size=64"]),
])
def test_each_method_trains_on_real_faces(fer2013_csv, tmp_path, recipe, model_args):
    overrides = ["data.dataset=fer2013", f"data.root={fer2013_csv}", "data.train_split=Training",
                 "data.val_split=PublicTest", "data.limit_train=256", "data.limit_val=64",
                 "data.image_size=72", "data.batch_size=32", "trainer.max_epochs=1",
                 "trainer.progress_bar=false", "model.args.classes=null", *model_args]
    summary = train(load_recipe(recipe, overrides), output_dir=tmp_path)
    assert summary["epochs"] == 1 and summary["metrics"]["n"] == 64
    model = openfer.load_model(tmp_path / "best.safetensors")
    assert model.meta.crop_fraction == pytest.approx(64 / 72)
