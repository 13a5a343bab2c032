"""Fixtures of the cluster tests: the stand-in app's folder."""
from __future__ import annotations

from pathlib import Path

import pytest

from support.cluster import STANDIN_APP


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "standin_app.py").write_text(STANDIN_APP)
    return tmp_path
