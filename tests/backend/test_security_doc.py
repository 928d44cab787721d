"""docs/security.md names the test that proves each claim: every one it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 30
    missing = []
    for path, name in references:
        source = (ROOT / path).read_text() if (ROOT / path).exists() else ""
        # The Slack tutorial's tests are collected under a "test_tutorial_" prefix.
        defined = name.replace("test_tutorial_", "test_")
        tutorial = (ROOT / "examples/touchflow-slack-notify/tests/test_slack_notify.py").read_text()
        if not re.search(rf"def {name}\(", source) and not (
            name.startswith("test_tutorial_") and re.search(rf"def {defined}\(", tutorial)
        ):
            missing.append(f"{path}::{name}")
    assert missing == []
