"""A language model that computes vocabulary logits only at the positions that have a target.

transformers' ``...ForMaskedLM`` projects every position onto the vocabulary, though only the
~15% masked ones are scored; for MiniLM that projection (384 × 30,522 per token) costs as much
as the six encoder layers. This wrapper runs the model's body, gathers the target positions and
applies the LM head to those rows only. transformers has no option for it (``logits_to_keep``
keeps a suffix, not arbitrary positions), hence the hand-written module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import ModelOutput


def body_and_head(model: nn.Module, objective: str) -> tuple[nn.Module, nn.Module] | None:
    """The body (hidden states) and the head (hidden → logits), or None if not separable."""
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model  # type: ignore[operator]
    config = getattr(base, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None) is not None:
        return None
    if getattr(config, "logit_scale", None) is not None:
        return None
    body = getattr(base, getattr(base, "base_model_prefix", ""), None)
    if not isinstance(body, nn.Module) or body is base:
        return None
    if objective == "mlm":
        head = getattr(base, "cls", None) or getattr(base, "lm_head", None)
    else:
        head = base.get_output_embeddings()
    return (body, head) if isinstance(head, nn.Module) else None


class TargetPositionsLM(nn.Module):
    """Wrap a ``...ForMaskedLM`` / ``...ForCausalLM`` model; logits come out as (N, V).

    ``target_positions`` are flat indices into the (B × T) grid; the model's own full forward is
    used (and then gathered) for architectures whose head cannot be split off safely.
    """

    def __init__(self, model: nn.Module, objective: str) -> None:
        """Wrap ``model`` for ``objective`` (``mlm`` or ``clm``)."""
        super().__init__()
        self.model = model
        self.objective = objective
        parts = body_and_head(model, objective)
        self.split = parts is not None
        # Keep the parts out of the module tree: they are submodules of self.model already.
        self._parts: tuple[nn.Module, nn.Module] | None = parts

    def forward(
        self, input_ids: torch.Tensor, target_positions: torch.Tensor, **inputs: Any
    ) -> ModelOutput:
        """Logits (N, V) for the N flat positions in ``target_positions``."""
        if self.objective == "clm":
            # No KV cache in a training/scoring pass: it costs memory, and transformers ignores
            # packed position_ids (the block-diagonal mask) when a cache is present.
            inputs.setdefault("use_cache", False)
        if self._parts is not None:
            body, head = self._parts
            hidden = body(input_ids=input_ids, **inputs)[0]  # (B, T, H)
            rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, target_positions)  # (N, H)
            return ModelOutput(logits=head(rows))  # (N, V)
        logits = self.model(input_ids=input_ids, **inputs).logits  # (B, T, V)
        return ModelOutput(logits=logits.reshape(-1, logits.shape[-1])[target_positions])


def keeps_packed_examples_apart(model: nn.Module) -> bool:
    """Whether a causal LM scores packed examples exactly as it scores them alone.

    Packed means several examples in one row, position ids restarting at 0, no attention mask.
    transformers 5 builds a block-diagonal mask from such position ids for most decoders
    (Llama, Mistral, Qwen, ...); a model that does not would let packed examples see each
    other, so this probe decides whether packing is used.
    """
    was_training = model.training
    model.eval()
    vocab = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    ids = torch.tensor([[5, 9, 3, 7]]) % vocab  # (1, 4)
    device = next(model.parameters()).device
    packed = torch.cat([ids, ids], dim=1).to(device)  # (1, 8)
    positions = torch.arange(4).repeat(2).unsqueeze(0).to(device)  # (1, 8): 0..3, 0..3
    try:
        with torch.no_grad():
            alone = model(input_ids=ids.to(device), use_cache=False).logits  # (1, 4, V)
            both = model(input_ids=packed, position_ids=positions, use_cache=False).logits
    except (TypeError, ValueError, RuntimeError):
        return False
    finally:
        model.train(was_training)
    return bool(torch.allclose(both[:, 4:].float(), alone.float(), atol=1e-4, rtol=1e-4))
