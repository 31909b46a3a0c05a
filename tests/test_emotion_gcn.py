"""Emotion-GCN against the original's counts and the GCN's equations."""

import numpy as np
import pytest
import torch

import openfer
from openfer.errors import OpenferError
from openfer.models.emotion_gcn import node_embeddings
from openfer.models.label_graph import AFFECTNET_SPEARMAN, label_graph


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_counts_and_keys_match_the_original():
    model = openfer.create_model("emotion_gcn")
    assert count(model) == 7_631_825          # the adjacency A counted, as in the original
    keys = list(model.state_dict())
    assert keys[0] == "A" and keys[-2:] == ["gc1.weight", "gc2.weight"]
    assert model.gc1.weight.shape == (300, 512) and model.gc2.weight.shape == (512, 1024)
    assert count(openfer.create_model("emotion_gcn_multi_task")) == 6_963_081


def test_gcn_output_is_a_hat_x_w_then_feature_dot_classifiers():
    torch.manual_seed(0)
    model = openfer.create_model("emotion_gcn").eval()
    a_hat = torch.tensor(label_graph(AFFECTNET_SPEARMAN), dtype=torch.float32).t()  # Â = Aᵀ
    x = model.embeddings
    h1 = torch.nn.functional.leaky_relu(a_hat @ x @ model.gc1.weight, 0.2)
    h2 = a_hat @ h1 @ model.gc2.weight
    assert torch.allclose(model.node_classifiers(), h2, atol=1e-5)
    image = torch.rand(1, 3, 112, 112)                    # one image: no inp[0] trick needed
    with torch.no_grad():
        logits, va = model(image)
        f = torch.amax(model.forward_features(image), dim=(2, 3))
    assert torch.allclose(torch.cat([logits, va], 1), f @ h2.t(), atol=1e-4)


def test_default_embeddings_are_glove_50d_zero_padded():
    emb = node_embeddings()
    assert emb.shape == (9, 300) and torch.count_nonzero(emb[:, 50:]) == 0
    cosine = torch.nn.functional.cosine_similarity(emb[4], emb[6], dim=0)   # fear, anger
    assert cosine > 0.8


def test_embedding_sources(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(9, 300)).astype(np.float32)
    np.save(tmp_path / "emb.npy", vectors)
    torch.save(torch.from_numpy(vectors).expand(4, 9, 300).clone(), tmp_path / "emb.pt")
    words = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "valence",
             "arousal")
    (tmp_path / "glove.txt").write_text("the 0.1 0.2\n" + "".join(
        f"{w} " + " ".join(f"{v:.4f}" for v in vectors[i]) + "\n" for i, w in enumerate(words)))
    for name in ("emb.npy", "emb.pt", "glove.txt"):
        assert torch.allclose(node_embeddings(tmp_path / name), torch.from_numpy(vectors),
                              atol=1e-4), name
    (tmp_path / "short.txt").write_text("neutral 1 2\n")
    with pytest.raises(OpenferError, match="no vectors for"):
        node_embeddings(tmp_path / "short.txt")


def test_learned_embeddings_ablation_adds_parameters():
    model = openfer.create_model("emotion_gcn", learn_embeddings=True)
    assert count(model) == 7_631_825 + 9 * 300


def test_breg_next_variants_match_the_originals_counts_and_keys():
    assert count(openfer.create_model("breg_next")) == 3_072_567
    assert count(openfer.create_model("breg_next_multi_task")) == 3_072_825
    gcn = openfer.create_model("emotion_gcn_breg_next")
    assert count(gcn) == 3_291_784                    # the unused model._fc0 kept, as there
    keys = set(gcn.state_dict())
    assert {"A", "gc1.weight", "gc2.weight", "model._conv0.weight", "model._fc0.weight",
            "model._model.0._layer_stack.6._shortcut._a"} <= keys
    assert gcn.gc2.weight.shape == (512, 128)
    with torch.no_grad():
        logits, va = gcn.eval()(torch.rand(1, 3, 112, 112))
    assert logits.shape == (1, 7) and va.shape == (1, 2)


def test_bounded_shortcut_is_the_papers_arctan_mapping():
    from openfer.models.breg_next import BoundedShortcut
    shortcut = BoundedShortcut()
    with torch.no_grad():
        shortcut._a.fill_(2.0)
        shortcut._c.fill_(0.5)
    x = torch.linspace(-3, 3, 13)
    root = (0.5 ** 2 + 1) ** 0.5
    assert torch.allclose(shortcut(x), torch.atan(2 * x / root) / (2 * root))


# -- training: expressions and valence/arousal together --------------------------------------

def _train_on_synthetic_affectnet(root, tmp_path, model_name: str, epochs: int):
    from openfer.data import load_dataset
    from openfer.engine.recipe import load_recipe
    from openfer.engine.train import train
    from openfer.evaluate import evaluate

    recipe = load_recipe("emotion_gcn_affectnet", [
        f"data.root={root}", f"model.name={model_name}", "model.args={input_size: 32}",
        "data.options={align: false}", "augment=null", "optimizer.name=adam",
        "optimizer.lr=0.0005", "optimizer.weight_decay=0", "data.batch_size=32",
        f"trainer.max_epochs={epochs}", "trainer.progress_bar=false"])
    summary = train(recipe, output_dir=tmp_path / "run")
    rows = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "train/loss_cont" in rows and "val/valence/ccc" in rows and "val/arousal/ccc" in rows
    assert summary["metrics"]["n"] == 96
    model = openfer.load_model(tmp_path / "run" / "best.safetensors")
    assert model.meta.heads_trained == ("arousal", "valence")      # recorded for inference
    return evaluate(model, load_dataset("affectnet7", root, "val", image_size=(32, 32),
                                        channels=3))


def test_multi_task_breg_next_learns_expressions_and_valence_arousal_together(
        synthetic_affectnet, tmp_path):
    pytest.importorskip("lightning")
    report = _train_on_synthetic_affectnet(synthetic_affectnet, tmp_path, "breg_next_multi_task",
                                           epochs=6)
    assert report["accuracy"] > 0.9, report["accuracy"]                  # chance 1/7
    assert report["heads"]["valence"]["ccc"] > 0.7, report["heads"]       # chance 0
    assert report["heads"]["arousal"]["ccc"] > 0.7, report["heads"]

    # openfer's inference gives the same valence and arousal with each expression
    from openfer.data import load_dataset
    from openfer.infer import Recognizer
    from openfer.metrics import regression_report

    val = load_dataset("affectnet7", synthetic_affectnet, "val", image_size=(32, 32),
                       channels=3)
    rec = Recognizer(tmp_path / "run" / "best.safetensors", detector="none", precision="fp32")
    images = [val[i][0].permute(1, 2, 0).numpy() for i in range(len(val))]
    faces = [result.faces[0] for result in rec.predict(images)]
    for name in ("valence", "arousal"):
        predicted = np.array([face.extras[name] for face in faces])
        ccc = regression_report(np.asarray(val.targets[name]), predicted)["ccc"]
        assert ccc == pytest.approx(report["heads"][name]["ccc"], abs=0.02), name


def test_emotion_gcn_breg_next_trains_with_the_joint_loss_and_learns_expressions(
        synthetic_affectnet, tmp_path):
    """The GCN ties the valence and arousal regressors to the expression classifiers (their
    graph rows are mixtures of the expression rows), so from scratch on 224 images they lag
    far behind the separate heads above; the expression part must still learn, and evaluation
    must report valence/arousal."""
    pytest.importorskip("lightning")
    report = _train_on_synthetic_affectnet(synthetic_affectnet, tmp_path, "emotion_gcn_breg_next",
                                           epochs=8)
    assert report["accuracy"] > 0.6, report["accuracy"]                  # chance 1/7
    assert {"valence", "arousal"} <= set(report["heads"])
    assert all(-1 <= report["heads"][d]["ccc"] <= 1 for d in ("valence", "arousal"))


def test_lambda_multi_weights_the_valence_arousal_loss():
    pytest.importorskip("lightning")
    from openfer.engine.emotion_gcn import EmotionGCNTask
    from openfer.engine.recipe import load_recipe

    torch.manual_seed(0)
    logits, va = torch.randn(8, 7), torch.randn(8, 2)
    labels = torch.randint(0, 7, (8,))
    targets = {"valence": torch.rand(8), "arousal": torch.rand(8)}
    parts = {}
    for weight in (0.0, 1.0, 2.5):
        task = EmotionGCNTask(load_recipe("emotion_gcn_affectnet", [
            "model.name=emotion_gcn_multi_task", f"loss.lambda_multi={weight}"]))
        categorical, cont = task._losses(logits, va, labels, targets)
        parts[weight] = float(categorical + task.lambda_multi * cont)
    assert parts[2.5] - parts[0.0] == pytest.approx(2.5 * (parts[1.0] - parts[0.0]), rel=1e-5)
    targets["valence"][:7] = float("nan")        # one labelled sample: no CCC, no V/A loss
    task = EmotionGCNTask(load_recipe("emotion_gcn_affectnet",
                                      ["model.name=emotion_gcn_multi_task"]))
    assert float(task._losses(logits, va, labels, targets)[1]) == 0.0


def test_class_list_must_be_the_graph_nodes_in_their_order():
    """Each output column is a graph node; a permuted class list would silently relabel them."""
    from openfer.errors import OpenferError

    aliases = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "angry"]
    assert openfer.create_model("emotion_gcn_breg_next", classes=aliases).meta.classes[1] == \
        "happiness"
    fer2013_order = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
    with pytest.raises(OpenferError, match="graph's expression nodes in this order"):
        openfer.create_model("emotion_gcn_breg_next", classes=fer2013_order)
