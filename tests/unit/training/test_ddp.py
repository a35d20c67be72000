"""Two data-parallel processes give the same result as one with the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from safetensors.torch import load_file

from tests.conftest import recipe_dict


def test_two_processes_match_one(
    tiny_bert_no_dropout: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    # Token classification: the two halves of a batch hold different token counts, so only a
    # loss normalised by the global count (not averaged per process) matches one process.
    recipe = recipe_dict(
        tiny_bert_no_dropout, ner_data, "token_classification", epochs=2, batch_size=8, lr=5e-3
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    finals = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "domaintune.cli",
                "train",
                str(path),
                "-o",
                str(out),
                "--processes",
                str(n),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        finals[n] = load_file(str(out / "final" / "model.safetensors"))
        results = yaml.safe_load((out / "results.json").read_text())
        assert results["train"]["processes"] == n
    start = load_file(str(tiny_bert_no_dropout / "model.safetensors"))
    for name, one in finals[1].items():
        assert (one - finals[2][name]).abs().max().item() < 2e-5, name
    assert (
        finals[1]["bert.encoder.layer.0.attention.self.query.weight"]
        - start["encoder.layer.0.attention.self.query.weight"]
    ).abs().max().item() > 1e-3
