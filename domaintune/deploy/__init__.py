"""Deploy: exports (merged safetensors, ONNX, ONNX int8), batch prediction and serving.

An exporter module provides ``export(run_dir, out_dir, **options) -> dict``: it writes the model,
tokenizer, ``domaintune.json`` (task, labels, CRF scores), ``export.json`` (its self-verification
against the PyTorch model) and a model card ``README.md`` into ``out_dir``, and returns the report.
torch, onnx and onnxruntime are imported inside the functions that need them.
"""

from types import ModuleType

from domaintune.deploy import merge, onnx, quantize

# format name -> exporter module.
EXPORTERS: dict[str, ModuleType] = {
    "safetensors": merge,
    "onnx": onnx,
    "int8": quantize,
}

__all__ = ["EXPORTERS"]
