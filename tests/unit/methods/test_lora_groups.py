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
    cfg = LoraConfig(name="lora", loraplus_lr_ratio=16, head_lr=1e-4, train_norms=False)
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


def test_no_weight_decay_on_renamed_norms_and_biases() -> None:
    from domaintune.config.sections import TrainConfig
    from domaintune.training.optim import build_optimizer

    cfg = LoraConfig(name="lora", modules_to_save=["LayerNorm"])
    model = apply(_model(), cfg)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3, weight_decay=0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    for group in optimizer.param_groups:
        for p in group["params"]:
            one_d = p.ndim < 2
            assert group["weight_decay"] == (0.0 if one_d else 0.1), names[id(p)]
    decayed = [
        names[id(p)] for g in optimizer.param_groups if g["weight_decay"] for p in g["params"]
    ]
    assert decayed and not any("LayerNorm" in n for n in decayed)
