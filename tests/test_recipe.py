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
