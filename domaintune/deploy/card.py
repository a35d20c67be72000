"""The model card (``README.md``) of an export: model, method, task, data, recipe, metrics."""

from __future__ import annotations

import json
from typing import Any

from domaintune.deploy.load import LoadedRun

LOADING = {
    "safetensors": """```python
from transformers import AutoModelFor{auto}, AutoTokenizer

model = AutoModelFor{auto}.from_pretrained("{out}")
tokenizer = AutoTokenizer.from_pretrained("{out}")
```
{crf_note}
With domaintune (same predictions as the run, CRF included):
`domaintune predict {out} input.jsonl -o predictions.jsonl`""",
    "onnx": """```python
import onnxruntime as ort
from transformers import AutoTokenizer

session = ort.InferenceSession("{out}/model.onnx")
tokenizer = AutoTokenizer.from_pretrained("{out}")
enc = tokenizer(["some text"], return_tensors="np")
logits = session.run(["logits"], {{k: v for k, v in enc.items() if k in
                                   [i.name for i in session.get_inputs()]}})[0]
```
{crf_note}
With domaintune (no PyTorch model needed):
`domaintune predict {out} input.jsonl -o predictions.jsonl`""",
}
LOADING["int8"] = LOADING["onnx"]


def model_card(loaded: LoadedRun, report: dict[str, Any]) -> str:
    """Markdown model card for an export (``report`` is the export's ``export.json``)."""
    root = loaded.run.root
    results: dict[str, Any] = {}
    if (root / "results.json").is_file():
        results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    recipe = (
        loaded.run.recipe.read_text(encoding="utf-8")
        if loaded.run.recipe.is_file()
        else "(no recipe.resolved.yaml in the run folder)"
    )
    state = loaded.task.state()
    labels = state.get("labels", [])
    data = loaded.data
    sizes = results.get("data", {}).get("sizes", {})
    files = [
        f"- {name}: `{getattr(data, name) or data.dataset or '-'}` "
        f"({sizes.get(name, '?')} examples)"
        for name in ("train", "validation", "test")
    ]
    test = {k: v for k, v in results.get("test", {}).items() if isinstance(v, (int, float))}
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in test.items()) or "| - | - |"
    check = report["verification"]
    fmt = report["format"]
    auto = "TokenClassification" if loaded.task.kind == "tokens" else "SequenceClassification"
    crf_note = (
        "The CRF head's transition scores are in `domaintune.json` (`crf`): the model alone gives "
        "emissions; decode them with Viterbi under those scores (domaintune does).\n"
        if state.get("crf")
        else ""
    )
    tolerance = (
        f"must be ≤ {check['tolerance']}"
        if check["tolerance"] is not None
        else "no tolerance: quantisation changes logits"
    )
    extras = {k: v for k, v in report.items() if k not in {"verification", "run", "output"}}
    return f"""# {results.get("model", "model")} · {report.get("method")} · {report.get("task")}

Exported by domaintune (`{fmt}`) from the run `{root}`.

- **Base model:** {results.get("model", "?")}
- **Method:** {report.get("method")}
- **Task:** {report.get("task")} ({loaded.task.kind}), max_length {data.max_length}
- **Labels ({len(labels)}):** {", ".join(map(str, labels))}

## Data

{chr(10).join(files)}

## Test metrics (PyTorch, from the run's results.json)

| metric | value |
|---|---|
{metrics}

## Export verification

Logits of this export against the PyTorch model on {check["examples"]} examples of
`{check["sample"]}`: max abs difference **{check["max_abs_diff"]:.3g}**
({tolerance}), {check["compared"]} agreement **{check["label_agreement"]:.4f}**.

```json
{json.dumps(extras, indent=1)}
```

## How to load it

{LOADING[fmt].format(auto=auto, out=report["output"], crf_note=crf_note)}

## Recipe (recipe.resolved.yaml)

```yaml
{recipe.rstrip()}
```
"""
