"""The package passes the linters it is held to (ruff and mypy strict, set in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_tool(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_passes():
    result = run_tool("ruff", "check", "gendurable")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes():
    result = run_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
