"""Recipe sections for objectives: extra loss terms added inside the training step."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from domaintune.config.sections import Section


class L2SPConfig(Section):
    """L2-SP: pull weights towards their pretrained values (Li et al., 2018)."""

    name: Literal["l2sp"] = Field(description="Objective name.")
    weight: float = Field(0.01, gt=0, description="Coefficient of 0.5 * ||theta - theta0||^2.")


class FGMConfig(Section):
    """FGM: train also on inputs whose word embeddings moved one gradient step (Miyato et al. 2017).

    Each step adds ``weight`` x the task loss on ``embeddings + r_adv``, with
    ``r_adv = epsilon * g / ||g||`` (``g`` the clean loss's gradient with respect to one example's
    word embeddings, the L2 norm taken over that example's tokens): one more forward and backward.
    """

    name: Literal["fgm"] = Field(description="Objective name.")
    # 0.25, not the 1.0 of the BERT snippets (whose whole-batch norm makes it about 1/sqrt(16)
    # per example): measured in docs/objectives.md, 1.0 cost 11 macro-F1 points on
    # financial-phrasebank and 0.9 entity-F1 on ncbi-disease; 0.25 cost 1.2 and gained 0.6.
    epsilon: float = Field(
        0.25, gt=0, le=100, description="L2 norm of each example's embedding perturbation."
    )
    weight: float = Field(1.0, gt=0, le=100, description="Coefficient of the adversarial loss.")


class PGDConfig(Section):
    """PGD: several projected gradient-ascent steps on the word embeddings (Madry et al. 2018).

    Starting from zero, ``steps`` times: ``r <- project(r + alpha * g / ||g||)`` onto the ball of
    radius ``epsilon`` (per example, L2); the task loss at the last ``r`` is added with ``weight``.
    Costs ``steps`` more forwards (``steps + 1`` in all) and ``steps`` more backwards a step.
    """

    name: Literal["pgd"] = Field(description="Objective name.")
    # A quarter of the snippets' 1.0 / 0.3, as for FGM (docs/objectives.md): 1.0 cost 22
    # macro-F1 points on financial-phrasebank and 1.7 entity-F1 on ncbi-disease; 0.25 cost 1.4
    # and gained 1.1.
    epsilon: float = Field(
        0.25, gt=0, le=100, description="Radius of the L2 ball (per example) r stays in."
    )
    alpha: float = Field(0.075, gt=0, le=100, description="L2 length of each ascent step.")
    steps: int = Field(3, ge=1, le=20, description="Ascent steps (adversarial forwards).")
    weight: float = Field(1.0, gt=0, le=100, description="Coefficient of the adversarial loss.")


class DANNConfig(Section):
    """DANN: a domain classifier behind a gradient-reversal layer (Ganin et al. 2016).

    The classifier learns to tell source (the recipe's training data) from target (``target``)
    pooled last hidden states; the reversed gradient makes the encoder's features domain-invariant.
    """

    name: Literal["dann"] = Field(description="Objective name.")
    target: str = Field(
        description="Unlabelled target-domain file, read like the recipe's data (same format "
        "and columns); labels in it are ignored for training."
    )
    test: str | None = Field(
        None,
        description="Labelled target-domain file whose metrics go into results.json "
        "('target'); default: the target file itself when it has labels.",
    )
    weight: float = Field(1.0, gt=0, le=100, description="Coefficient of the domain loss.")
    gamma: float = Field(
        10.0, gt=0, le=100, description="Schedule lambda = 2 / (1 + exp(-gamma * p)) - 1."
    )
    pooling: Literal["mean", "first"] = Field(
        "mean",
        description="Feature of an example: the mean of its last hidden states over real tokens, "
        "or the first token's ([CLS]).",
    )
    hidden_size: int = Field(
        256, ge=1, le=8192, description="Hidden units of the domain classifier's one hidden layer."
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in the domain classifier.")
    batch_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Target examples per micro-batch (default: train.batch_size).",
    )


class EWCConfig(Section):
    """EWC: a Fisher-weighted pull towards the stage's starting weights (Kirkpatrick et al., 2017).

    The Fisher is estimated on an earlier task's data (``data``) with the starting model, loaded
    from an earlier run's ``fisher.safetensors`` (``fisher_from``), or both with ``online``.
    """

    name: Literal["ewc"] = Field(description="Objective name.")
    weight: float = Field(
        100.0, gt=0, le=1e9, description="lambda in lambda/2 * sum F_i (theta_i - theta*_i)^2."
    )
    data: list[str] = Field(
        default_factory=list,
        description="The earlier task's (training) files to estimate the Fisher on, read like "
        "this recipe's data (format from the extension); 'stage:<name>' in a pipeline means "
        "that stage's training file.",
    )
    fisher_from: str | None = Field(
        None,
        description="A run folder (or 'stage:<name>' in a pipeline) whose fisher.safetensors "
        "to load instead of estimating (with online: to decay and add to the new estimate).",
    )
    samples: int = Field(
        1000, ge=1, le=1_000_000, description="Most examples of 'data' the Fisher is estimated on."
    )
    estimator: Literal["true", "empirical"] = Field(
        "true",
        description="true: labels sampled from the model's own predictions (the Fisher of "
        "Kirkpatrick et al.; single-label classification and tagging, softmax or CRF head: a "
        "whole tag sequence from the CRF); empirical: the gold labels (any head).",
    )
    online: bool = Field(
        False,
        description="Online EWC (Schwarz et al., 2018): Fisher = gamma * loaded (fisher_from) + "
        "new estimate (data), anchored at this stage's starting weights.",
    )
    gamma: float = Field(
        1.0, gt=0, le=1, description="online only: decay of the loaded running Fisher."
    )
    seed: int = Field(0, description="Seed of the example sample and the sampled labels.")

    @model_validator(mode="after")
    def _one_source(self) -> EWCConfig:
        if self.online and not self.data:
            raise ValueError("online: true needs data (the newest task's files) → set data")
        if not self.online and bool(self.data) == bool(self.fisher_from):
            raise ValueError(
                "give exactly one of data (estimate the Fisher) or fisher_from (load it), or "
                "set online: true to combine them"
            )
        return self


class DistillConfig(Section):
    """LwF-style distillation from the model as it was at the start of the stage (Li & Hoiem)."""

    name: Literal["distill"] = Field(description="Objective name.")
    weight: float = Field(1.0, gt=0, le=1e6, description="Coefficient of the distillation term.")
    temperature: float = Field(
        2.0, gt=0, le=100, description="Softmax temperature T; the KL is scaled by T^2."
    )


ObjectiveConfig = Annotated[
    L2SPConfig | EWCConfig | DistillConfig | FGMConfig | PGDConfig | DANNConfig,
    Field(discriminator="name"),
]
