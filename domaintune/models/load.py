"""One model loader: built-in alias, local folder, ``.gguf`` file, run folder or hub id."""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domaintune.config.sections import ModelConfig
from domaintune.errors import ModelError
from domaintune.models.aliases import ALIASES, resolve_alias


@dataclass(frozen=True)
class ModelSource:
    """Where ``from_pretrained`` should load from."""

    path: str
    is_local: bool
    revision: str | None = None
    trust_remote_code: bool = False


def quiet_libraries() -> None:
    """Silence transformers' load reports and progress bars; our own progress bar reports."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    # Accelerate warns on every checkpoint of a model with tied weights (BERT's MLM decoder)
    # that it saved the shared tensor once: expected, and reloading restores the tie.
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)


def _refuse_unmerged(folder: Path, given: str) -> None:
    """A run whose method cannot merge keeps its adapter apart: its final/ is the bare base."""
    import json

    saved = folder / "domaintune.json"
    if not saved.is_file():
        return
    method = json.loads(saved.read_text(encoding="utf-8")).get("method", {})
    if method.get("merged") is False:
        raise ModelError(
            f"model.init_from: {given!r}: trained with method "
            f"{method['config']['name']!r}, which cannot be merged into the weights → start "
            "from a run of a method that merges (full, freeze, bitfit, lora, adalora, ia3)"
        )


def resolve_source(cfg: ModelConfig) -> ModelSource:
    """Resolve ``model.init_from`` or ``model.name`` to a loadable folder or hub id.

    A ``.gguf`` file is dequantised once into a cached safetensors folder.
    """
    if cfg.init_from is not None:
        folder = Path(cfg.init_from).expanduser()
        if (folder / "final").is_dir():
            folder = folder / "final"
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"model.init_from: {cfg.init_from!r}: no config.json there → point "
                "it at a finished run folder or its final/ folder"
            )
        _refuse_unmerged(folder, cfg.init_from)
        return ModelSource(str(folder), True)
    name = cfg.name
    path = resolve_alias(name) if name in ALIASES else Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"model.name: {name!r}: GGUF file not found → check the path")
        return ModelSource(str(gguf_to_folder(path)), True)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model.name: {name!r}: folder has no config.json → point it at a "
                "Hugging Face model folder (save_pretrained output)"
            )
        return ModelSource(str(path), True, None, cfg.trust_remote_code)
    if "/" not in name or name.startswith((".", "/", "~")):
        close = difflib.get_close_matches(name, list(ALIASES), n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else (f"use an alias ({', '.join(ALIASES)}), a local folder, or a hub id 'org/name'")
        )
        raise ModelError(
            f"model.name: {name!r}: not a built-in alias, a folder or a .gguf file → {hint}"
        )
    return ModelSource(name, False, cfg.revision, cfg.trust_remote_code)


def gguf_cache_dir() -> Path:
    """Per-user cache of dequantised GGUF models."""
    return Path.home() / ".cache" / "domaintune" / "models"


def gguf_to_folder(gguf: Path, cache_root: Path | None = None) -> Path:
    """Dequantise a GGUF file once into a safetensors folder and return that folder.

    Loading a GGUF takes ~14 s and yields a model that training, ``save_pretrained`` and peft
    refuse unless it is dequantised; the cached folder reloads in ~2 s with identical logits.
    """
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    folder = (cache_root or gguf_cache_dir()) / f"{gguf.stem}-{key[:12]}"
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        kwargs: dict[str, Any] = {
            "gguf_file": gguf.name,
            "quantization_config": GgufConfig(dequantize=True),
        }
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
        model.hf_quantizer = None  # type: ignore[assignment]
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(
            f"model.name: {str(gguf)!r}: cannot convert GGUF ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:150]}) → use a GGUF of a supported "
            "architecture or a safetensors folder"
        ) from None
    tmp.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def load_tokenizer(source: ModelSource) -> Any:
    """Load the fast tokenizer; decoders without a pad token get ``pad = eos``."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.path, revision=source.revision, trust_remote_code=source.trust_remote_code
        )
    except OSError as exc:
        raise ModelError(
            f"model: {source.path!r}: cannot load the tokenizer "
            f"({str(exc).splitlines()[0][:150]}) → check the name, the network, or "
            "use a local folder"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(
            f"model: {source.path!r}: only fast (Rust) tokenizers are supported → "
            "use a model that ships tokenizer.json"
        )
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(
                f"model: {source.path!r}: tokenizer has neither pad nor eos token → "
                "use another model"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_type(source: ModelSource) -> str:
    """The ``model_type`` of the source's config (e.g. ``bert``, ``llama``)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(
            source.path, revision=source.revision, trust_remote_code=source.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model: {source.path!r}: cannot read its config ({str(exc).splitlines()[0][:150]}) "
            "→ check the name, the network, or use a local folder"
        ) from None
    return str(config.model_type)


def load_model(source: ModelSource, auto_class: Any, **kwargs: Any) -> Any:
    """Load ``auto_class.from_pretrained`` with one-line errors and an fp32 default."""
    import torch

    try:
        model = auto_class.from_pretrained(
            source.path,
            revision=source.revision,
            trust_remote_code=source.trust_remote_code,
            dtype=torch.float32,
            **kwargs,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"model: {source.path!r}: cannot load as {auto_class.__name__} "
            f"({str(exc).splitlines()[0][:160]}) → check the model name and that "
            "it supports this task"
        ) from None
    return model
