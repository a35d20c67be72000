"""Replay mixes the stated share of earlier examples into train only, the same for a seed."""

from __future__ import annotations

from pathlib import Path

from domaintune.config import DataConfig
from domaintune.data.pipeline import load_splits
from domaintune.data.replay import mix_replay
from tests.conftest import write_conll


def _mixed(tmp_path: Path, seed: int, fraction: float = 0.05) -> tuple[object, object]:
    now = write_conll(tmp_path / "now", n_train=40, seed=1)
    earlier = write_conll(tmp_path / "earlier", n_train=200, seed=2)
    other = write_conll(tmp_path / "other", n_train=60, seed=3)
    cfg = DataConfig(
        format="conll",
        train=str(now["train"]),
        validation=str(now["dev"]),
        test=str(now["test"]),
        replay={
            "files": [str(earlier["train"]), str(other["train"])],
            "fraction": fraction,
            "seed": seed,
        },
    )
    plain = load_splits(cfg.model_copy(update={"replay": None}), "tokens")
    return plain, mix_replay(load_splits(cfg, "tokens"), cfg, "tokens")


def test_replay_mixes_the_stated_share_into_train_only(tmp_path: Path) -> None:
    plain, mixed = _mixed(tmp_path, seed=0)
    n_train = len(plain.splits["train"])  # type: ignore[attr-defined]
    train = mixed.splits["train"]  # type: ignore[attr-defined]
    assert len(train) == n_train + 10 + 3  # 5% of 200 and 5% of 60
    assert train[:n_train] == plain.splits["train"]  # type: ignore[attr-defined]
    for split in ("validation", "test"):
        assert mixed.splits[split] == plain.splits[split]  # type: ignore[attr-defined]
    stats = mixed.stats["replay"]  # type: ignore[attr-defined]
    assert stats["examples"] == 13 and list(stats["files"].values()) == [10, 3]
    assert stats["share_of_train"] == round(13 / len(train), 4)
    assert mixed.stats["sizes"]["train"] == len(train)  # type: ignore[attr-defined]


def test_replay_is_deterministic_by_seed(tmp_path: Path) -> None:
    _, a = _mixed(tmp_path, seed=7, fraction=0.2)
    _, b = _mixed(tmp_path, seed=7, fraction=0.2)
    _, c = _mixed(tmp_path, seed=8, fraction=0.2)
    assert a.splits["train"] == b.splits["train"]  # type: ignore[attr-defined]
    assert a.splits["train"] != c.splits["train"]  # type: ignore[attr-defined]
