"""FGM + DANN under two data-parallel processes give the same weights as one process.

Token classification: the halves of a batch hold different token counts, so the adversarial
loss matches only if it is normalised by the global count, like the task loss; DANN's domain
classifier (outside DDP) matches only if its gradients are averaged over the processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.conftest import recipe_dict, write_conll


@pytest.mark.slow  # three processes start: about 40 s of CPU
def test_two_processes_match_one(
    tiny_bert_no_dropout: Path, ner_data: dict[str, Path], tmp_path: Path
) -> None:
    recipe = recipe_dict(
        tiny_bert_no_dropout, ner_data, "token_classification", max_steps=4, batch_size=8, lr=5e-3
    )
    target = write_conll(tmp_path / "target", n_train=16, seed=3)
    recipe["objectives"] = [
        {"name": "fgm"},
        {"name": "dann", "target": str(target["train"]), "dropout": 0.0},
    ]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    finals = {}
    for n in (1, 2):
        out = tmp_path / f"p{n}"
        cli = [sys.executable, "-m", "domaintune.cli", "train", str(path), "-o", str(out)]
        done = subprocess.run(
            [*cli, "--processes", str(n)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        finals[n] = load_file(str(out / "final" / "model.safetensors"))
    for name, one in finals[1].items():
        assert (one - finals[2][name]).abs().max().item() < 2e-5, name
