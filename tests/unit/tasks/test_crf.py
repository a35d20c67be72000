"""The hand-written CRF against brute force, its IOB2 constraints, and its gradients."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from domaintune.data.labels import tag_list_for
from domaintune.models.crf import CRF, ILLEGAL, compact, expand, iob2_constraints, prefix_mask
from domaintune.tasks.crf_head import crf_loss, crf_tags, legal_tags, new_crf
from domaintune.tasks.token_classification import repair_prediction

LABEL_SETS = [tag_list_for(["A"]), tag_list_for(["A", "B"])]  # 3 and 5 tags


def _random_crf(labels: list[str], constrained: bool, seed: int) -> CRF:
    allowed, start = iob2_constraints(labels) if constrained else (None, None)
    crf = CRF(len(labels), allowed, start)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in crf.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 2)
    return crf


def _path_score(crf: CRF, emissions: torch.Tensor, path: tuple[int, ...]) -> float:
    """The score of one tag path, written out the textbook way (illegal moves cost ILLEGAL)."""
    start, trans = crf.start.tolist(), crf.transitions.tolist()
    allowed, allowed_start = crf.allowed.tolist(), crf.allowed_start.tolist()
    total = (start[path[0]] if allowed_start[path[0]] else ILLEGAL) + float(emissions[0, path[0]])
    for t in range(1, len(path)):
        a, b = path[t - 1], path[t]
        total += (trans[a][b] if allowed[a][b] else ILLEGAL) + float(emissions[t, b])
    return total + crf.end.tolist()[path[-1]]


def _legal(labels: list[str], path: list[int]) -> bool:
    tags = [labels[i] for i in path]
    return repair_prediction(tags) == tags


def _case(labels: list[str], seed: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Emissions (4, 4, C) and a prefix mask with lengths 4, 1, 3 and 0."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [4, 1, 3, 0]
    emissions = torch.randn(len(lengths), 4, len(labels), generator=gen) * 3
    mask = torch.arange(4).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return emissions, mask, lengths


@pytest.mark.parametrize("labels", LABEL_SETS, ids=len)
@pytest.mark.parametrize("constrained", [False, True])
def test_log_likelihood_and_viterbi_match_brute_force(labels: list[str], constrained: bool) -> None:
    rng = random.Random(0)
    for seed in range(5):
        crf = _random_crf(labels, constrained, seed)
        emissions, mask, lengths = _case(labels, seed)
        tags = torch.zeros(4, 4, dtype=torch.long)
        for row, length in enumerate(lengths):
            while length and not _legal(
                labels, gold := [rng.randrange(len(labels)) for _ in range(length)]
            ):
                pass
            if length:
                tags[row, :length] = torch.tensor(gold)
        with torch.no_grad():
            ll = crf.log_likelihood(emissions, tags, mask)
            decoded = crf.decode(emissions, mask)
        for row, length in enumerate(lengths):
            if length == 0:
                assert ll[row].item() == 0.0
                continue
            paths = list(itertools.product(range(len(labels)), repeat=length))
            scores = [_path_score(crf, emissions[row], p) for p in paths]
            top = max(scores)
            log_z = top + math.log(sum(math.exp(s - top) for s in scores))
            gold_score = _path_score(crf, emissions[row], tuple(tags[row, :length].tolist()))
            assert ll[row].item() == pytest.approx(gold_score - log_z, abs=1e-4)
            best = list(paths[scores.index(top)])
            assert decoded[row, :length].tolist() == best
            if constrained:
                assert _legal(labels, best)


def test_decoded_tags_are_always_valid_iob2() -> None:
    """Random emissions and transitions that strongly favour every illegal move still decode
    to valid IOB2 (no O → I-X, no B-X → I-Y, no sequence starting with I-X)."""
    rng = random.Random(13)
    for case in range(300):
        labels = tag_list_for(["A", "B", "C"][: rng.randint(1, 3)])
        crf = new_crf(labels)
        allowed, start = iob2_constraints(labels)
        gen = torch.Generator().manual_seed(case)
        with torch.no_grad():
            crf.transitions.copy_(torch.randn(crf.transitions.shape, generator=gen))
            crf.transitions.add_((~allowed).float() * rng.choice([5.0, 50.0, 1e5]))
            crf.start.copy_((~start).float() * 50.0)
        batch, width = rng.randint(1, 5), rng.randint(1, 12)
        emissions = torch.randn(batch, width, len(labels), generator=gen) * rng.choice([1, 10])
        # Illegal tags get the highest emissions: only the constraints stand in the way.
        emissions[..., [i for i, t in enumerate(labels) if t.startswith("I-")]] += 20.0
        word_mask = torch.rand(batch, width, generator=gen) < 0.7  # first sub-words, not a prefix
        ids = crf_tags(crf, emissions, word_mask)
        for row in range(batch):
            path = [int(ids[row, t]) for t in range(width) if word_mask[row, t]]
            assert _legal(labels, path), [labels[i] for i in path]


def test_gradients_are_finite_and_reach_scores_and_emissions() -> None:
    labels = LABEL_SETS[1]
    crf = new_crf(labels)
    emissions, mask, _ = _case(labels, 3)
    emissions.requires_grad_(True)
    tags = torch.tensor([[1, 2, 0, 3], [0, 0, 0, 0], [3, 4, 4, 0], [0, 0, 0, 0]])
    (-crf.log_likelihood(emissions, tags, mask).sum()).backward()
    for name, param in [("emissions", emissions), *crf.named_parameters()]:
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    assert emissions.grad is not None
    assert emissions.grad[1, 1:].abs().sum() == 0 and emissions.grad[3].abs().sum() == 0
    allowed, _ = iob2_constraints(labels)
    assert crf.transitions.grad is not None
    assert crf.transitions.grad[~allowed].abs().sum() == 0  # illegal moves are not learned


def test_bf16_autocast_emissions_give_a_float32_loss() -> None:
    labels = LABEL_SETS[1]
    crf = _random_crf(labels, True, 1)
    emissions, mask, _ = _case(labels, 1)
    tags = torch.zeros(4, 4, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = emissions.bfloat16().requires_grad_(True)
        ll = crf.log_likelihood(half, tags, mask)
        path = crf.decode(half, mask)
    assert ll.dtype == torch.float32
    ll.sum().backward()
    assert half.grad is not None and torch.isfinite(half.grad).all()
    expected = crf.log_likelihood(half.detach().float(), tags, mask)
    torch.testing.assert_close(ll, expected)
    assert path.shape == (4, 4)


def test_compact_and_expand_are_inverse_on_the_masked_positions() -> None:
    values = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    mask = torch.tensor([[False, True, False, True, True], [True, False, False, False, False]])
    packed = compact(values, mask)
    assert packed.shape == (2, 3, 3)
    assert torch.equal(packed[0], values[0, [1, 3, 4]]) and torch.equal(packed[1, 0], values[1, 0])
    assert prefix_mask(mask).tolist() == [[True, True, True], [True, False, False]]
    back = expand(packed, mask, fill=-1)
    assert torch.equal(back[mask], values[mask]) and (back[~mask] == -1).all()


def test_loss_is_summed_over_sentences_and_counted_in_words() -> None:
    labels = LABEL_SETS[1]
    crf = _random_crf(labels, True, 2)
    logits = torch.randn(2, 6, len(labels))
    ignore = -100
    batch_labels = torch.tensor(
        [[ignore, 1, ignore, 2, 0, ignore], [ignore, 3, 0, ignore, ignore, ignore]]
    )
    total, count = crf_loss(crf, logits, batch_labels, ignore)
    assert count.item() == 5
    tagged = batch_labels != ignore
    ll = crf.log_likelihood(
        compact(logits, tagged), compact(batch_labels, tagged), prefix_mask(tagged)
    )
    assert total.item() == pytest.approx(-ll.sum().item())


def test_gold_continuation_left_without_its_beginning_becomes_a_beginning() -> None:
    labels = LABEL_SETS[1]  # O B-A I-A B-B I-B
    crf = new_crf(labels)
    tags = torch.tensor([[2, 2, 0, 4], [0, 1, 4, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    assert legal_tags(tags, mask, crf).tolist() == [[1, 2, 0, 3], [0, 1, 3, 0]]
    fine = torch.tensor([[1, 2, 0, 3]])
    assert legal_tags(fine, mask[:1], crf) is fine


def test_iob2_constraints() -> None:
    labels = LABEL_SETS[1]  # O B-A I-A B-B I-B
    allowed, start = iob2_constraints(labels)
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[:, 2].tolist() == [False, True, True, False, False]
    assert allowed[:, 4].tolist() == [False, False, False, True, True]
    assert allowed[:, [0, 1, 3]].all()


def test_empty_batch_decodes_to_nothing() -> None:
    crf = new_crf(LABEL_SETS[0])
    mask = torch.zeros(2, 3, dtype=torch.bool)
    ids = crf_tags(crf, torch.randn(2, 3, 3), mask)
    assert isinstance(ids, np.ndarray) and ids.shape == (2, 3)
    total, count = crf_loss(crf, torch.randn(2, 3, 3), torch.full((2, 3), -100), -100)
    assert total.item() == 0.0 and count.item() == 0


@pytest.mark.parametrize("constrained", [False, True])
def test_samples_follow_the_brute_force_distribution(constrained: bool) -> None:
    """Forward filtering / backward sampling draws each path with its CRF probability."""
    labels = LABEL_SETS[0]  # O, B-A, I-A
    crf = _random_crf(labels, constrained, seed=3)
    gen = torch.Generator().manual_seed(0)
    # Softer emissions than _case so that many paths have visible probability.
    emissions = torch.randn(1, 3, len(labels), generator=gen)
    draws = 20_000
    rows = emissions.expand(draws, -1, -1)
    lengths = [3] * (draws // 2) + [2] * (draws // 2)  # two lengths share a batch
    mask = torch.arange(3).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    sampled = crf.sample(rows, mask, torch.Generator().manual_seed(1))
    assert sampled.shape == (draws, 3)
    assert sampled[draws // 2 :, 2].eq(0).all()  # past a row's end: 0
    for length, part in ((3, sampled[: draws // 2]), (2, sampled[draws // 2 :])):
        paths = list(itertools.product(range(len(labels)), repeat=length))
        scores = [_path_score(crf, emissions[0, :length], p) for p in paths]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        counts = {p: 0 for p in paths}
        for row in part[:, :length].tolist():
            counts[tuple(row)] += 1
        for path, weight in zip(paths, weights, strict=True):
            expected = weight / sum(weights)
            observed = counts[path] / len(part)
            # 5 binomial standard deviations (n = 10,000), and illegal paths never drawn
            assert abs(observed - expected) <= 5 * math.sqrt(expected * (1 - expected) / len(part))
            if constrained and not _legal(labels, list(path)):
                assert counts[path] == 0
