"""docs/personalization.md: its token examples, run, make tokens Touchflow accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from backend.personalization.verify import (
    BadToken,
    identify_secret,
    read_identify_token,
)

DOC = (Path(__file__).parents[3] / "docs" / "personalization.md").read_text()
SECRET = identify_secret("app-secret-" + "x" * 40, "tfs_docs")


def _block(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", DOC, re.S)
    assert found is not None, f"the {language} example is missing"
    return found.group(1)


def test_the_python_example_makes_a_valid_token() -> None:
    scope: dict[str, object] = {}
    exec(compile(_block("python"), "docs/personalization.md", "exec"), scope)  # noqa: S102
    token = scope["touchflow_identify_token"](SECRET, "åsa@example.se")  # type: ignore[operator]
    named = read_identify_token(SECRET, token, time.time())
    assert (named.email, named.external_id) == ("åsa@example.se", None)
    with pytest.raises(BadToken):
        read_identify_token(identify_secret("another", "tfs_docs"), token, time.time())


def test_the_javascript_example_makes_a_valid_token(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    script = tmp_path / "token.js"
    script.write_text(
        _block("javascript")
        + f"\nprocess.stdout.write(touchflowIdentifyToken({SECRET!r}, 'åsa@example.se'));\n"
    )
    token = subprocess.run([node, str(script)], check=True, capture_output=True, text=True).stdout
    named = read_identify_token(SECRET, token, time.time())
    assert named.email == "åsa@example.se"
