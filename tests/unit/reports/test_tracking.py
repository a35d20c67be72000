"""``train.report_to``: trackers get the metrics.jsonl records; a missing package fails early."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from domaintune import api
from domaintune.config import load_recipe
from domaintune.errors import ConfigError
from tests.conftest import recipe_dict, write_classification


def test_a_missing_tracker_package_is_a_one_line_config_error(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in {"mlflow", "tensorboard", "tensorboardX"} else real(name),
    )
    recipe = load_recipe(
        recipe_dict(tiny_bert, write_classification(tmp_path / "d"), report_to=["mlflow"])
    )
    with pytest.raises(ConfigError, match=r"train.report_to: 'mlflow'.*→ pip install mlflow"):
        api.run(recipe, output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_tensorboard_gets_the_logged_records(tiny_bert: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboardX")  # also reads the event files below
    recipe = load_recipe(
        recipe_dict(
            tiny_bert,
            write_classification(tmp_path / "d"),
            report_to=["tensorboard"],
            log_every=1,
            eval_every=4,
        ),
        ["train.max_steps=8"],
    )
    run_dir = api.run(recipe, output_dir=tmp_path / "run").run_dir
    events = list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert events
    tags = _scalar_tags(events)
    assert {"train/loss", "train/lr", "eval/f1_macro", "test/accuracy"} <= set(tags)
    assert tags.count("train/loss") == 8


def test_mlflow_gets_params_and_metrics_in_a_local_store(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("mlflow") is None:
        pytest.skip("mlflow is not installed (pip install 'domaintune[mlflow]')")
    import mlflow

    from domaintune.training.tracking import mlflow_store

    recipe = load_recipe(
        recipe_dict(
            tiny_bert,
            write_classification(tmp_path / "d"),
            report_to=["mlflow"],
            log_every=1,
            eval_every=4,
        ),
        ["train.max_steps=8"],
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # MLflow's default store would be ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "elsewhere").as_uri())
    run_dir = api.run(recipe, output_dir=tmp_path / "run").run_dir
    assert (run_dir / "mlruns" / "mlflow.db").is_file()
    assert not any(elsewhere.iterdir()) and not (tmp_path / "elsewhere").exists()
    uri, artifacts = mlflow_store(run_dir)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(run_dir.resolve().name)
    assert experiment is not None and experiment.artifact_location == artifacts
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["train.lr"] == "0.001" and run.data.params["task.name"] == (
        "classification"
    )
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == list(range(1, 9))
    assert {"train/lr", "eval/f1_macro", "test/accuracy", "validation/f1_macro"} <= set(
        run.data.metrics
    )
    results = json.loads((run_dir / "results.json").read_text())
    assert run.data.metrics["test/accuracy"] == pytest.approx(results["test"]["accuracy"])


def _scalar_tags(events: list[Path]) -> list[str]:
    """Scalar tags of TensorBoard event files (TFRecord framing: length, crc, event, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    tags = []
    for path in events:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            tags += [value.tag for value in event.summary.value]
    return tags
