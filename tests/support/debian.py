"""Debian packages some tests need (promtool, Chromium): installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

INSTALL_TIMEOUT_SECONDS = 900


def ensure_installed(binary: str, *packages: str) -> str:
    """The path of `binary`, installing the Debian `packages` first when it is missing.

    Skips (saying why) where apt-get cannot be used: not Debian, or not root."""
    found = shutil.which(binary)
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(
            f"{binary} is missing and apt-get install {' '.join(packages)} cannot run here (needs Debian, root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=INSTALL_TIMEOUT_SECONDS)
    found = shutil.which(binary)
    assert found, f"apt-get installed {packages} but {binary} is still not on PATH"
    return found
