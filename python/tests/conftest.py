"""Shared fixtures: the repository, the `atlas` binary the results are compared with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBLEMS = REPO / "examples" / "problems"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def problem_files():
    return sorted(
        p
        for p in PROBLEMS.iterdir()
        if p.suffix in (".toml", ".json", ".yaml", ".yml") and p.name != "optima.json"
    )


@pytest.fixture(scope="session")
def atlas_bin() -> Path:
    """The `atlas` command line of this checkout (ATLAS_BIN, else target/release/atlas,
    built by `cargo build --release` when missing)."""
    path = Path(os.environ.get("ATLAS_BIN", REPO / "target" / "release" / "atlas"))
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "atlas"], cwd=REPO, check=True
        )
    assert path.exists(), f"no atlas binary at {path}"
    return path


@pytest.fixture(scope="session")
def optima():
    return json.loads((PROBLEMS / "optima.json").read_text())


def run_cli(atlas_bin: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(atlas_bin), *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )
