"""Recipe loading: defaults, dotted overrides, one-line errors, YAML round trip, no torch."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from domaintune.config import (
    MethodConfig,
    ObjectiveConfig,
    Recipe,
    TaskConfig,
    apply_overrides,
    dump_recipe,
    load_recipe,
)
from domaintune.config.load import parse_override, read_yaml
from domaintune.errors import ConfigError, DomaintuneError

REPO_ROOT = Path(__file__).resolve().parents[3]
MINIMAL: dict[str, Any] = {"task": {"name": "classification"}, "data": {"train": "train.csv"}}


def write_recipe(folder: Path, data: dict[str, Any], name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    return write_recipe(tmp_path, MINIMAL)


def error_lines(source: Any, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_recipe(source, overrides)
    return str(info.value).splitlines()


def union_names(union: Any) -> list[str]:
    """The ``name`` Literal values of every member of an Annotated discriminated union."""
    inner = typing.get_args(union)[0]
    members = typing.get_args(inner) or (inner,)
    return [n for m in members for n in typing.get_args(m.model_fields["name"].annotation)]


# ------------------------------------------------------------------------------------ defaults
def test_minimal_recipe_loads_with_defaults(recipe_file: Path) -> None:
    recipe = load_recipe(recipe_file)
    assert isinstance(recipe, Recipe)
    assert recipe.task.name == "classification"
    assert recipe.task.problem == "single_label"
    assert recipe.data.train == "train.csv"
    assert recipe.data.format == "auto"
    assert recipe.data.validation is None and recipe.data.test is None
    assert recipe.data.clean.normalize is True and recipe.data.clean.dedupe is True
    assert (recipe.data.split.validation, recipe.data.split.test) == (0.1, 0.1)
    assert recipe.model.name == "minilm"
    assert recipe.method.name == "full"
    assert recipe.objectives == []
    assert recipe.train.lr == 5e-5  # the tuned default of method full for classification
    assert recipe.train.batch_size == 16
    assert recipe.train.group_by_length is True
    assert recipe.train.early_stopping is None
    assert recipe.output_dir is None


def test_file_and_dict_sources_give_the_same_recipe(recipe_file: Path) -> None:
    assert load_recipe(recipe_file) == load_recipe(MINIMAL)


def test_load_recipe_does_not_modify_the_given_dict() -> None:
    data = {"task": {"name": "classification"}, "data": {"train": "a.csv"}}
    load_recipe(data, ["train.lr=0.1", "data.train=b.csv"])
    assert data == {"task": {"name": "classification"}, "data": {"train": "a.csv"}}


# ----------------------------------------------------------------------------------- overrides
@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("train.lr=1e-4", ["train", "lr"], 1e-4),
        ("train.lr=3.0e-5", ["train", "lr"], 3e-5),
        ("train.epochs=2E1", ["train", "epochs"], 20.0),
        ("train.group_by_length=false", ["train", "group_by_length"], False),
        ("train.batch_size=8", ["train", "batch_size"], 8),
        ("method.target_modules=[query, value]", ["method", "target_modules"], ["query", "value"]),
        ("data.validation=null", ["data", "validation"], None),
        ("model.name=org/name", ["model", "name"], "org/name"),
        ("output_dir=", ["output_dir"], ""),
        ("data.text_column=a=b", ["data", "text_column"], "a=b"),
    ],
)
def test_parse_override_yaml_types_the_value(text: str, path: list[str], value: Any) -> None:
    got_path, got_value = parse_override(text)
    assert got_path == path
    assert got_value == value
    assert type(got_value) is type(value)


def test_apply_overrides_sets_nested_values_and_creates_sections() -> None:
    data = {"task": {"name": "classification"}, "data": {"train": "a.csv", "clean": {}}}
    out = apply_overrides(data, ["train.lr=1e-4", "data.clean.dedupe=false", "data.train=b.csv"])
    assert out["train"] == {"lr": 1e-4}
    assert isinstance(out["train"]["lr"], float)
    assert out["data"] == {"train": "b.csv", "clean": {"dedupe": False}}
    assert data["data"] == {"train": "a.csv", "clean": {}}  # the input is copied, not changed


def test_recipe_file_reads_exponent_floats_like_overrides(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("task: {name: classification}\ndata: {train: a.csv}\ntrain: {lrr: 1e-4}\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: train.lrr: 0.0001: ")  # a number, not the string '1e-4'
    assert read_yaml(path)["train"] == {"lrr": 1e-4}


def test_overrides_reach_the_validated_recipe(recipe_file: Path) -> None:
    recipe = load_recipe(
        recipe_file,
        [
            "train.lr=1e-4",
            "train.group_by_length=false",
            "method.name=lora",
            "method.r=4",
            "objectives=[{name: l2sp, weight: 0.5}]",
            "data.clean.dedupe=false",
            "train.early_stopping.patience=2",
        ],
    )
    assert recipe.train.lr == 1e-4 and isinstance(recipe.train.lr, float)
    assert recipe.train.group_by_length is False
    assert recipe.method.name == "lora" and recipe.method.r == 4
    assert recipe.objectives[0].name == "l2sp" and recipe.objectives[0].weight == 0.5
    assert recipe.data.clean.dedupe is False and recipe.data.clean.normalize is True
    assert recipe.train.early_stopping is not None
    assert recipe.train.early_stopping.patience == 2


def test_later_override_wins(recipe_file: Path) -> None:
    assert load_recipe(recipe_file, ["train.lr=0.1", "train.lr=0.2"]).train.lr == 0.2


@pytest.mark.parametrize("text", ["train.lr", "=3", "train..lr=3", ".lr=3"])
def test_malformed_override_is_a_one_line_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(MINIMAL, [text])
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert repr(text) in message and "train.lr=1e-4" in message


# -------------------------------------------------------------------------------------- errors
def test_typo_key_names_file_field_and_suggests_the_key(recipe_file: Path) -> None:
    lines = error_lines(recipe_file, ["train.lrr=1e-4"])
    assert len(lines) == 1
    line = lines[0]
    assert line.startswith(f"{recipe_file}: train.lrr: ")
    assert "unknown key" in line
    assert "did you mean 'lr'?" in line
    assert " → " in line


@pytest.mark.parametrize(
    ("overrides", "field", "suggestion"),
    [
        (["trian.lr=1"], "trian", "train"),
        (["method.name=lora", "method.rr=4"], "method.rr", "r"),
        (["method.name=freeze", "method.layerz=2"], "method.layerz", "layers"),
        (["task.problm=multi_label"], "task.problm", "problem"),
        (["objectives=[{name: l2sp, wieght: 1}]"], "objectives.0.wieght", "weight"),
        (["data.clean.normalise=false"], "data.clean.normalise", "normalize"),
        (["data.split.sed=1"], "data.split.sed", "seed"),
        (["train.early_stopping.patiense=2"], "train.early_stopping.patiense", "patience"),
    ],
)
def test_typo_keys_in_nested_and_union_sections(
    overrides: list[str], field: str, suggestion: str
) -> None:
    (line,) = error_lines(MINIMAL, overrides)
    assert line.startswith(f"<recipe>: {field}: ")
    assert f"did you mean '{suggestion}'?" in line


def test_unknown_key_without_close_match_lists_the_valid_keys() -> None:
    (line,) = error_lines(MINIMAL, ["method.name=lora", "method.zzzzzz=1"])
    keys = (
        "alpha, dora, dropout, head_lr, loraplus_lr_ratio, modules_to_save, name, r, rslora, "
        "target_modules"
    )
    assert f"valid keys: {keys}" in line


@pytest.mark.parametrize(
    ("section", "union"),
    [("task", TaskConfig), ("method", MethodConfig), ("objectives", ObjectiveConfig)],
)
def test_union_tags_never_appear_in_error_paths(section: str, union: Any) -> None:
    """Every member of every union: pydantic's tag is dropped from the reported field path."""
    inner = typing.get_args(union)[0]
    for member in typing.get_args(inner) or (inner,):
        (name,) = typing.get_args(member.model_fields["name"].annotation)
        # required fields (dann's target file) get a value, so the unknown key is the one error
        required = {k: "x" for k, f in member.model_fields.items() if f.is_required()}
        data = dict(MINIMAL)
        entry = {**required, "name": name, "zzzzzz": 1}
        data[section] = [entry] if section == "objectives" else entry
        expected = "objectives.0.zzzzzz" if section == "objectives" else f"{section}.zzzzzz"
        lines = error_lines(data)
        assert lines == [line for line in lines if line.startswith(f"<recipe>: {expected}: ")]
        assert len(lines) == 1, (name, lines)


def test_several_errors_are_reported_together(recipe_file: Path) -> None:
    lines = error_lines(
        recipe_file,
        ["train.lrr=1e-4", "train.batch_size=0", "method.name=lorra", "task.problem=x"],
    )
    assert len(lines) == 4
    assert all(line.startswith(f"{recipe_file}: ") for line in lines)
    fields = {line.split(": ")[1] for line in lines}
    assert fields == {"train.lrr", "train.batch_size", "method.name", "task.problem"}
    assert all(" → " in line for line in lines)


@pytest.mark.parametrize(
    ("overrides", "field", "value", "bound"),
    [
        (["train.lr=0"], "train.lr", "0", "greater than 0"),
        (["train.lr=20"], "train.lr", "20", "at most 10"),
        (["train.warmup_ratio=1.5"], "train.warmup_ratio", "1.5", "less than 1"),
        (["train.batch_size=0"], "train.batch_size", "0", "at least 1"),
        (["data.max_length=4"], "data.max_length", "4", "at least 8"),
        (["data.split.validation=0.6"], "data.split.validation", "0.6", "less than 0.5"),
        (["method.name=lora", "method.r=2000"], "method.r", "2000", "at most 1024"),
        (["objectives=[{name: l2sp, weight: 0}]"], "objectives.0.weight", "0", "greater than 0"),
    ],
)
def test_out_of_range_value_names_the_bound(
    overrides: list[str], field: str, value: str, bound: str
) -> None:
    (line,) = error_lines(MINIMAL, overrides)
    assert line.startswith(f"<recipe>: {field}: {value}: ")
    assert f"→ use a value {bound}" in line


@pytest.mark.parametrize(
    ("overrides", "field", "union"),
    [
        (["method.name=lorra"], "method.name", MethodConfig),
        (["task.name=clasification"], "task.name", TaskConfig),
        (["objectives=[{name: ewcc}]"], "objectives.0.name", ObjectiveConfig),
    ],
)
def test_unknown_name_lists_the_valid_names(overrides: list[str], field: str, union: Any) -> None:
    (line,) = error_lines(MINIMAL, overrides)
    assert line.startswith(f"<recipe>: {field}: ")
    assert "unknown name" in line
    valid = union_names(union)
    assert valid
    for name in valid:
        assert repr(name) in line.split("→", 1)[1]


@pytest.mark.parametrize(
    ("override", "fix"),
    [
        ("train.batch_size=abc", "use a whole number"),
        ("train.group_by_length=maybe", "use true or false"),
        ("train.lr=fast", "use a number"),
        ("train.optimizer=adam", "use 'adamw' or 'sgd'"),
        ("train=3", "write this section as a mapping"),
    ],
)
def test_wrong_type_suggests_a_fix(override: str, fix: str) -> None:
    (line,) = error_lines(MINIMAL, [override])
    assert fix in line


def test_missing_required_section_and_missing_name() -> None:
    assert error_lines({"data": {"train": "a.csv"}}) == [
        "<recipe>: task: required field is missing → add it"
    ]
    (line,) = error_lines({"task": {}, "data": {"train": "a.csv"}})
    assert line.startswith("<recipe>: task: ") and "'name'" in line


def test_data_without_a_source_says_what_to_give() -> None:
    (line,) = error_lines({"task": {"name": "classification"}, "data": {"format": "csv"}})
    assert line.startswith("<recipe>: data: ")
    assert "data.train" in line and "data.dataset" in line


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("task: {name: classification}\ndata:\n  train: [a.csv\n  test: b.csv\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: line 4, column ")
    assert "fix the YAML syntax" in line


def test_bad_indentation_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "indent.yaml"
    path.write_text("task:\n  name: classification\n data:\n   train: a.csv\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: line 3, ")


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- task\n- data\n")
    (line,) = error_lines(path)
    assert line.startswith(f"{path}: ") and "mapping" in line and "got list" in line


def test_empty_file_reports_both_required_sections(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing yet\n")
    lines = error_lines(path)
    assert lines == [
        f"{path}: task: required field is missing → add it",
        f"{path}: data: required field is missing → add it",
    ]


def test_missing_recipe_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    lines = error_lines(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: recipe file not found → ")


def test_config_error_is_a_domaintune_error() -> None:
    with pytest.raises(DomaintuneError):
        load_recipe({"task": {"name": "nope"}, "data": {"train": "a"}})


# ----------------------------------------------------------------------------------- round trip
def test_dump_then_load_gives_an_equal_recipe(tmp_path: Path) -> None:
    recipe = load_recipe(
        {
            "task": {
                "name": "classification",
                "problem": "multi_label",
                "threshold": 0.4,
                "label_separator": ";",
            },
            "model": {"name": "org/model", "revision": "main"},
            "data": {
                "train": "训练.csv",
                "text_pair_column": "b",
                "splits": {"train": "tr"},
                "clean": {"dedupe": False},
                "split": {"seed": 7},
            },
            "method": {"name": "lora", "r": 4, "target_modules": ["query", "value"]},
            "objectives": [{"name": "l2sp", "weight": 1e-3}],
            "train": {
                "lr": 1e-5,
                "epochs": 0.5,
                "early_stopping": {"patience": 2},
                "max_grad_norm": None,
                "optimizer": "sgd",
            },
            "eval": {"metric": "f1_macro", "greater_is_better": True},
            "output_dir": "runs/x",
        }
    )
    text = dump_recipe(recipe)
    path = tmp_path / "resolved.yaml"
    path.write_text(text, encoding="utf-8")
    again = load_recipe(path)
    assert again == recipe
    assert again.model_dump() == recipe.model_dump()
    assert dump_recipe(again) == text
    assert "训练.csv" in text  # written as text, not escaped


def test_dump_of_defaults_round_trips() -> None:
    recipe = load_recipe(MINIMAL)
    assert load_recipe(yaml.safe_load(dump_recipe(recipe))) == recipe


# ------------------------------------------------------------------------------------- no torch
def test_loading_a_recipe_does_not_import_torch() -> None:
    code = (
        "import sys, domaintune.config as c\n"
        "r = c.load_recipe({'task': {'name': 'token_classification'}, "
        "'data': {'train': 'a.conll'}, 'method': {'name': 'lora'}}, ['train.lr=1e-4'])\n"
        "c.dump_recipe(r)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'datasets') "
        "if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "print(c.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(REPO_ROOT)  # this checkout was tested
