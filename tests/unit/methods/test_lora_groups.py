"""LoRA's optimizer groups: LoRA+ (B matrices faster) and the head's own learning rate."""

from __future__ import annotations

from transformers import BertConfig, BertForTokenClassification

from domaintune.config.methods import LoraConfig
from domaintune.methods.peft import apply, param_groups


def _model() -> BertForTokenClassification:
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
    )
    return BertForTokenClassification(config)


def test_one_learning_rate_by_default() -> None:
    cfg = LoraConfig(name="lora")
    assert param_groups(apply(_model(), cfg), cfg, 1e-3) is None


def test_loraplus_and_head_lr_split_every_trainable_parameter_once() -> None:
    cfg = LoraConfig(name="lora", loraplus_lr_ratio=16, head_lr=1e-4)
    model = apply(_model(), cfg)
    groups = param_groups(model, cfg, 1e-3)
    assert groups is not None
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr = {g["lr"]: [names[id(p)] for p in g["params"]] for g in groups}
    assert set(by_lr) == {1e-3, 1.6e-2, 1e-4}
    assert all("lora_A" in n for n in by_lr[1e-3])
    assert all("lora_B" in n for n in by_lr[1.6e-2])
    assert sorted(n.rsplit(".", 1)[-1] for n in by_lr[1e-4]) == ["bias", "weight"]
    assert all("classifier.modules_to_save" in n for n in by_lr[1e-4])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(n for ns in by_lr.values() for n in ns) == sorted(trainable)
