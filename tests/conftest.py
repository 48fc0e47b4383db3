"""Shared fixtures. Every test runs offline, with its own embedding cache."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LABEL_SETS = REPO / "label_sets"
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
