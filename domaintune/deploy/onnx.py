"""``onnx`` export: classification and token classification, dynamic batch and sequence axes.

Exporter: ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript), opset 18. Measured on a
BERT with transformers 5.24 and torch 2.13: the TorchScript exporter (``dynamo=False``) traces
the attention-mask code with the sample's shapes and is off by up to 1e-2 on other shapes; the
dynamo exporter matches PyTorch to ~1e-8 at any batch and length. optimum-onnx was not used: its
0.1 release targets transformers 4.x. The graph gives logits (emissions for a CRF head: its
scores are in ``domaintune.json`` and decoded outside the graph). Methods that cannot merge
(adapter, prefix, prompt_tuning) are exported as the adapted model, their modules traced in.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from domaintune.deploy.bundle import FP32_TOLERANCE, folder_size, verify_and_report, write_bundle
from domaintune.deploy.load import MODEL_INPUTS, ONNX_FILE, LoadedRun, load_run, open_export
from domaintune.errors import ConfigError, ModelError

OPSET = 18


def export_onnx(loaded: LoadedRun, path: Path, opset: int = OPSET) -> list[str]:
    """Write ``loaded``'s model as one ONNX file with dynamic (batch, sequence) axes.

    Returns:
        The graph's input names.

    """
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
        import torch
    except ImportError:  # pragma: no cover - an optional dependency
        raise ConfigError(
            "onnx export needs onnx and onnxscript → pip install 'domaintune[deploy]'"
        ) from None

    names = [n for n in MODEL_INPUTS if n in loaded.tokenizer.model_input_names]
    names = ["input_ids", "attention_mask", *[n for n in names if n == "token_type_ids"]]

    class Logits(torch.nn.Module):
        """Positional inputs in, logits out: the signature the exporter needs."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).logits  # type: ignore[no-any-return]

    # A padded batch of 2 × 7: sizes other than 0 and 1 keep both axes symbolic.
    ids = torch.full((2, 7), loaded.tokenizer.unk_token_id or 1, dtype=torch.long)
    if loaded.tokenizer.cls_token_id is not None:
        ids[:, 0] = loaded.tokenizer.cls_token_id
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    sample = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                Logits(loaded.model).eval(),
                tuple(sample[n] for n in names),
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in names),),  # *inputs
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many types: report any in one line
        lines = [line for line in str(exc).splitlines() if line.startswith("<class")]
        why = (lines or str(exc).splitlines() or [""])[0][:200]
        raise ModelError(
            f"{loaded.run.root}: model: cannot export to ONNX ({type(exc).__name__}: {why}) "
            "→ use --format safetensors or the run folder"
        ) from None
    assert program is not None
    program.save(str(path))
    return names


def export(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    sample: str | Path | None = None,
    opset: int = OPSET,
    **_: Any,
) -> dict[str, Any]:
    """Write ``model.onnx`` (fp32) with the tokenizer and task file, and verify it (≤1e-4).

    Args:
        run_dir: A finished run folder.
        out_dir: The export folder (created).
        sample: Texts to verify on (default: the run's test file).
        opset: ONNX opset of the graph.

    Returns:
        The export report (also ``export.json``).

    """
    loaded = load_run(run_dir)
    out = Path(out_dir)
    write_bundle(loaded, out, "onnx")
    inputs = export_onnx(loaded, out / ONNX_FILE, opset)
    exported = open_export(out, "onnx")
    extra = {"opset": opset, "inputs": inputs, "bytes": folder_size(out)}
    return verify_and_report(loaded, exported, out, "onnx", sample, FP32_TOLERANCE, extra)
