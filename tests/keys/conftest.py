"""Fixtures of the key tests: SoftHSM2 tokens for the PKCS#11 provider."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"
# SoftHSM2 finds its tokens when the library is first loaded in a process: every test's
# token is made up front, before that.
TOKENS = 10
INIT_TOKEN = ("softhsm2-util", "--init-token", "--free")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iterator[str]]:
    """A SoftHSM2 configuration with its own token folder and TOKENS empty tokens, set for
    this process before the library is first loaded (it reads both once). Yields labels."""
    pkcs11 = pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed")
    del pkcs11
    if not MODULE.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip(f"SoftHSM2 is not installed ({MODULE}; apt-get install softhsm2)")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    labels = [f"t{n}-{secrets.token_hex(3)}" for n in range(TOKENS)]
    for label in labels:
        subprocess.run(
            [*INIT_TOKEN, "--label", label, "--pin", PIN, "--so-pin", "5678"],
            check=True,
            capture_output=True,
            timeout=60,
        )
    yield iter(labels)


@pytest.fixture
def token(softhsm: Iterator[str]) -> str:
    """A fresh, empty token; its label."""
    return next(softhsm)
