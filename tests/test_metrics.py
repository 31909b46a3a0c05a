"""Metrics against hand computation, and evaluation across class lists."""

import numpy as np
import pytest
import torch

import openfer
from openfer.data.dataset import ArrayFaceDataset
from openfer.errors import OpenferError
from openfer.evaluate import evaluate
from openfer.labels import Emotion
from openfer.metrics import classification_report, paired_comparison, wilson_interval


def test_report_matches_hand_computation():
    # true:  a a a b b c ;  pred: a a b b c c
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]
    assert report["macro_f1"] == pytest.approx(np.mean(f1))
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["per_class"]["b"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}


def test_classes_absent_from_truth_do_not_enter_mean_class_accuracy():
    report = classification_report([0, 0], [0, 0], ["a", "b"])
    assert report["mean_class_accuracy"] == 1.0 and report["macro_f1"] == 1.0


class Constant(torch.nn.Module):
    """Always predicts one class."""

    def __init__(self, index):
        super().__init__()
        self.index = index
        self.meta = openfer.create_model("deep_emotion").meta

    def forward(self, x):
        logits = torch.zeros(len(x), 7)
        logits[:, self.index] = 1
        return logits


def test_folder_lacking_a_predicted_class_counts_it_wrong():
    images = np.zeros((4, 48, 48), np.uint8)
    dataset = ArrayFaceDataset(images, np.array([0, 0, 1, 1]),
                               (Emotion.HAPPINESS, Emotion.SADNESS), name="two-class folder")
    happy = evaluate(Constant(3), dataset)            # model index 3 = happiness (FER2013 order)
    assert happy["accuracy"] == 0.5
    neutral = evaluate(Constant(6), dataset)          # neutral is not in the folder: all wrong
    assert neutral["accuracy"] == 0.0
    assert neutral["classes"][:7] == list(openfer.create_model("deep_emotion").meta.classes)


def test_evaluate_pairs_a_second_model_face_by_face():
    images = np.zeros((4, 48, 48), np.uint8)
    dataset = ArrayFaceDataset(images, np.array([0, 0, 0, 1]),
                               (Emotion.HAPPINESS, Emotion.SADNESS), name="two-class folder")
    report = evaluate(Constant(3), dataset, compare_with=Constant(4))   # happiness vs sadness
    assert report["comparison"]["a_only"] == 3 and report["comparison"]["b_only"] == 1
    assert report["comparison"]["accuracy_a"] == report["accuracy"] == 0.75
    with pytest.raises(OpenferError, match="4 faces for the first model but 2"):
        evaluate(Constant(3), dataset, compare_with=Constant(4), compare_dataset=ArrayFaceDataset(
            images[:2], np.array([0, 1]), (Emotion.HAPPINESS, Emotion.SADNESS), name="half"))


def test_valence_arousal_metrics_by_hand():
    from openfer.metrics import regression_report
    target = np.array([-0.5, 0.0, 0.5, 1.0, np.nan])
    perfect = regression_report(target, target)
    assert perfect["ccc"] == pytest.approx(1.0) and perfect["rmse"] == 0 and perfect["n"] == 4
    shifted = regression_report(target, target + 0.5)          # same shape, biased by 0.5
    var = np.var([-0.5, 0.0, 0.5, 1.0])
    assert shifted["pcc"] == pytest.approx(1.0)
    assert shifted["ccc"] == pytest.approx(2 * var / (2 * var + 0.25))
    assert shifted["rmse"] == pytest.approx(0.5)
    assert shifted["sagr"] == pytest.approx(0.5)               # -0.5 -> 0.0 and 0.0 -> 0.5 flip


def test_ccc_loss_is_one_minus_mean_ccc():
    from openfer.losses import ccc_loss
    from openfer.metrics import regression_report
    rng = np.random.default_rng(0)
    target = torch.tensor(rng.uniform(-1, 1, (64, 2)))
    prediction = target * 0.5 + torch.tensor(rng.normal(0, 0.2, (64, 2)))
    expected = 1 - np.mean([regression_report(target[:, i].numpy(), prediction[:, i].numpy())
                            ["ccc"] for i in range(2)])
    assert float(ccc_loss(prediction, target)) == pytest.approx(expected, abs=1e-9)
    assert float(ccc_loss(target, target)) == pytest.approx(0.0, abs=1e-9)


def test_paired_comparison_counts_the_faces_one_model_alone_gets_right():
    # 20 faces: both right on 5, only A on 10, only B on 1, both wrong on 4.
    a = [True] * 5 + [True] * 10 + [False] * 1 + [False] * 4
    b = [True] * 5 + [False] * 10 + [True] * 1 + [False] * 4
    result = paired_comparison(a, b)
    assert (result["a_only"], result["b_only"]) == (10, 1)
    assert result["accuracy_a"] == 15 / 20 and result["accuracy_b"] == 6 / 20
    assert result["difference"] == pytest.approx(9 / 20)
    # exact two-sided McNemar: 2 * P(X <= 1), X ~ Binomial(11, 1/2) = 2 * 12 / 2048
    assert result["mcnemar_p"] == pytest.approx(24 / 2048)
    low, high = result["difference_ci95"]
    assert low < 9 / 20 < high and high - low == pytest.approx(
        2 * 1.959964 * ((11 / 20 - (9 / 20) ** 2) / 20) ** 0.5)


def test_identical_answers_are_no_difference_and_mismatched_lengths_are_refused():
    same = paired_comparison([True, False, True], [True, False, True])
    assert same["mcnemar_p"] == 1.0 and same["difference"] == 0.0
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_comparison([True, False], [True])


def test_accuracy_comes_with_wilsons_95_percent_interval():
    assert wilson_interval(50, 100) == pytest.approx([0.4038, 0.5962], abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.27 < high < 0.28             # never below 0, unlike the normal one
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.72 < low < 0.73             # exactly 1, not 1 - 1e-16
    report = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    assert report["accuracy_ci95"] == pytest.approx(wilson_interval(3, 4))
