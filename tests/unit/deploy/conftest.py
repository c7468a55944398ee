"""The ``helm`` binary that ``make test`` builds (scripts/install-helm.sh)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILT_HELM = REPO / ".tools" / "bin" / "helm"


@pytest.fixture(scope="session")
def helm() -> Path:
    if BUILT_HELM.is_file():
        return BUILT_HELM
    found = shutil.which("helm")
    if found is None:
        pytest.fail("helm not found: run `bash scripts/install-helm.sh` (make test does)")
    return Path(found)
