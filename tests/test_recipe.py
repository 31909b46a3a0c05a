"""Recipes: shipped settings, overrides, and errors that name the file and line."""

import pytest

from openfer.engine.recipe import builtin_recipes, load_recipe
from openfer.errors import RecipeError


def test_deep_emotion_recipe_reproduces_the_reference_settings():
    recipe = load_recipe("deep_emotion_fer2013")
    assert recipe["model"]["name"] == "deep_emotion"
    assert recipe["optimizer"]["name"] == "adam" and recipe["optimizer"]["lr"] == 0.005
    assert recipe["data"]["batch_size"] == 128 and recipe["trainer"]["max_epochs"] == 100
    assert recipe["augment"] is None and recipe["scheduler"]["name"] == "none"


def test_paper_variant_recipe():
    recipe = load_recipe("deep_emotion_paper_fer2013")
    assert (recipe["data"]["batch_size"], recipe["trainer"]["max_epochs"]) == (32, 500)


def test_every_shipped_recipe_loads():
    for name in builtin_recipes():
        assert load_recipe(name)["name"] == name


def test_overrides_are_parsed_as_yaml():
    recipe = load_recipe("deep_emotion_fer2013", ["optimizer.lr=0.01", "data.root=/x.csv",
                                                  "augment.hflip=0.5", "trainer.devices=2"])
    assert recipe["optimizer"]["lr"] == 0.01 and recipe["data"]["root"] == "/x.csv"
    assert recipe["augment"] == {"hflip": 0.5} and recipe["trainer"]["devices"] == 2


def test_unknown_key_names_file_line_and_accepted_keys(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: deep_emotion\noptimizer:\n  name: adam\n  lr_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"r.yaml, line 5: unknown key 'optimizer.lr_rate'; "
                                          r"accepted keys here: name, lr"):
        load_recipe(path)


def test_wrong_types_and_choices(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  name: deep_emotion\ntrainer:\n  max_epochs: ten\n")
    with pytest.raises(RecipeError, match="line 4: 'trainer.max_epochs' must be a number"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="'optimizer.name' must be one of adam, adamw, sgd"):
        load_recipe("deep_emotion_fer2013", ["optimizer.name=lbfgs"])
    with pytest.raises(RecipeError, match="not of the form key=value"):
        load_recipe("deep_emotion_fer2013", ["optimizer.lr"])


def test_invalid_yaml_and_missing_recipe(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yaml, line 2: not valid YAML"):
        load_recipe(path)
    with pytest.raises(RecipeError, match="neither a file nor a shipped recipe"):
        load_recipe("no_such_recipe")


def test_a_recipe_nested_thousands_deep_is_refused_with_its_name(tmp_path):
    """Found by fuzzing: PyYAML's parser recursed out of the stack on such a file."""
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\nmodel: " + "[" * 5000 + "\n")
    with pytest.raises(RecipeError, match="deep.yaml: not a recipe: its YAML nests"):
        load_recipe(path)
    recipe = load_recipe("deep_emotion_fer2013", ["data.root=" + "[" * 5000])
    assert recipe["data"]["root"] == "[" * 5000          # not YAML: kept as the text


def test_a_recipe_based_on_another_takes_its_settings_and_changes_some(tmp_path):
    """``base:`` names a shipped recipe or a file (relative to the recipe's folder); the file's
    keys go on top, section by section; ``name`` and ``description`` are the file's own."""
    (tmp_path / "mine.yaml").write_text(
        "base: deep_emotion_fer2013\noptimizer:\n  lr: 0.001\naugment:\n  hflip: 0.5\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "longer.yaml").write_text(
        "base: ../mine.yaml\nname: longer\ntrainer:\n  max_epochs: 300\n")
    shipped = load_recipe("deep_emotion_fer2013")
    mine = load_recipe(tmp_path / "mine.yaml")
    assert mine["name"] == "mine" and mine["description"] is None
    assert mine["optimizer"] == {**shipped["optimizer"], "lr": 0.001}
    assert mine["augment"] == {"hflip": 0.5} and mine["model"] == shipped["model"]
    longer = load_recipe(tmp_path / "sub" / "longer.yaml", ["data.batch_size=64"])
    assert longer["name"] == "longer" and longer["trainer"]["max_epochs"] == 300
    assert longer["optimizer"]["lr"] == 0.001 and longer["data"]["batch_size"] == 64
    assert "base" not in longer


def test_shipped_second_stages_and_baselines_state_only_what_differs():
    stage1, stage2 = load_recipe("fmpn_ckplus_stage1"), load_recipe("fmpn_ckplus")
    assert (stage1["fmpn"]["stage"], stage2["fmpn"]["stage"]) == ("mask", "joint")
    assert stage2["trainer"]["monitor"] == "val/accuracy" and stage2["data"]["batch_size"] == 16
    assert stage2["model"] == stage1["model"] and stage2["data"]["options"] == {"fold": 0}
    center = load_recipe("resnet18_centerloss_rafdb")
    softmax = load_recipe("resnet18_softmax_rafdb")
    assert (softmax["method"], center["method"]) == ("classification", "center_loss")
    assert {k: v for k, v in center.items() if k not in ("method", "name", "description",
                                                         "loss", "_source")} == \
        {k: v for k, v in softmax.items() if k not in ("method", "name", "description", "loss",
                                                       "_source")}


def test_a_bad_base_is_an_error_that_names_the_file_and_line(tmp_path):
    cases = {
        "missing.yaml": ("name: x\nbase: no_such_recipe\n", r"missing.yaml, line 2: base "
                         r"'no_such_recipe': recipe 'no_such_recipe' is neither a file"),
        "number.yaml": ("base: 3\n", r"number.yaml, line 1: 'base' must name a shipped recipe"),
        "nul.yaml": ('base: "a\\0b"\n', r"nul.yaml, line 1: base 'a\\x00b'"),
        "long.yaml": (f"base: {'x' * 5000}\n", r"long.yaml, line 1: base 'xxx"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(RecipeError, match=message):
            load_recipe(tmp_path / name)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(RecipeError, match=r"b.yaml, line 1: base 'a.yaml' makes a cycle"):
        load_recipe(tmp_path / "a.yaml")
    # An error inside the base recipe names the base recipe's file and line.
    (tmp_path / "parent.yaml").write_text("model:\n  name: deep_emotion\n  widht: 3\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\n")
    with pytest.raises(RecipeError, match=r"parent.yaml, line 3: unknown key 'model.widht'"):
        load_recipe(tmp_path / "child.yaml")


def test_a_plateau_schedule_without_validation_is_refused_with_what_to_do():
    """ReduceLROnPlateau watches trainer.monitor (val/accuracy by default): with no validation
    split Lightning would stop at the end of the first epoch; the recipe check says so first."""
    with pytest.raises(RecipeError, match=r"plateau .*val/accuracy.*data.val_split is not set"):
        load_recipe("multitask_fer2013", ["data.val_split=null"])
    recipe = load_recipe("multitask_fer2013", ["data.val_split=null", "trainer.monitor=train/loss",
                                               "trainer.monitor_mode=min"])
    assert recipe["scheduler"]["name"] == "plateau"
    assert load_recipe("multitask_fer2013", ["data.val_split=null", "scheduler.name=cosine"])
