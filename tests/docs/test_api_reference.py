"""``make docs``: the API reference builds from the docstrings with warnings as errors.

The same command as the Makefile's ``docs`` target, into a temporary directory: a docstring
whose reST is broken, a cross-reference that resolves to nothing, or an object documented twice
fails here, in ``make test``, not only when someone builds the docs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html"]
    done = subprocess.run(
        [*command, str(ROOT / "docs"), str(tmp_path)], capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout + done.stderr
    index = (tmp_path / "api" / "index.html").read_text()
    for page in ("ratekeeper", "aio", "integrations", "config", "types"):
        assert f'href="{page}.html"' in index
    public = (tmp_path / "api" / "ratekeeper.html").read_text()
    assert 'id="ratekeeper.Limiter.acquire"' in public  # inherited from the base: documented
