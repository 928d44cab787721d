"""The custom-node tutorial's package: installed, discovered, documented word for word.

Its own unit tests (examples/touchflow-slack-notify/tests) run here too, and
tests/runtime/test_builtin_flows.py runs the node in a published flow.
"""

from __future__ import annotations

import importlib.util
import re
from importlib.metadata import distribution
from pathlib import Path

from nodes.sdk import ENTRY_POINT_GROUP, Family, discover

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "touchflow-slack-notify"
TUTORIAL = ROOT / "docs" / "custom-nodes.md"
TITLED_BLOCK = re.compile(r'```\w+ title="([^"]+)"\n(.*?)```', re.DOTALL)


def _load_tutorial_tests() -> dict[str, object]:
    path = EXAMPLE / "tests" / "test_slack_notify.py"
    spec = importlib.util.spec_from_file_location("tutorial_test_slack_notify", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {f"test_tutorial_{n[5:]}": f for n, f in vars(module).items() if n.startswith("test_")}


# The tutorial's own tests, collected as tests of this module.
globals().update(_load_tutorial_tests())


def test_the_package_is_installed_with_its_entry_point() -> None:
    dist = distribution("touchflow-slack-notify")
    [entry] = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    assert entry.value == "touchflow_slack_notify:NODE_TYPES"


def test_discovery_puts_it_in_the_action_family() -> None:
    registry = discover()
    assert [e for e in registry.errors if e.source.startswith("slack ")] == []
    node_type = registry.get("slack.notify")
    assert node_type is not None and node_type.name == "Post to Slack"
    assert node_type in registry.by_family()[Family.action]
    schema = node_type.config_model.model_json_schema()
    assert schema["properties"]["webhook_url"]["title"] == "Webhook URL"
    assert schema["required"] == ["webhook_url"]


def test_every_file_the_tutorial_shows_is_the_packages_file() -> None:
    blocks = TITLED_BLOCK.findall(TUTORIAL.read_text())
    shown = {path for path, _ in blocks}
    assert shown == {
        "pyproject.toml",
        "src/touchflow_slack_notify/__init__.py",
        "src/touchflow_slack_notify/node.py",
        "tests/test_slack_notify.py",
    }
    for path, code in blocks:
        assert code == (EXAMPLE / path).read_text(), f"docs/custom-nodes.md is out of date: {path}"


def test_it_appears_in_the_editor_palette_under_actions() -> None:
    from backend.web.editor.view import palette

    groups = {family: items for family, _, items in palette(discover())}
    [item] = [i for i in groups["action"] if i.type_id == "slack.notify"]
    assert (item.name, item.color) == ("Post to Slack", "#4a154b")
    assert item.description.startswith("Posts a message")


def test_the_guide_lists_the_icons_the_sdk_accepts() -> None:
    from nodes.sdk import ICON_NAMES

    text = TUTORIAL.read_text()
    listed = re.search(
        r"`nodes\.sdk\.ICON_NAMES` \(`check_declaration` says so\s+when it is not\):(.*?)\n-",
        text,
        re.DOTALL,
    )
    assert listed is not None
    assert set(re.findall(r"`([a-z-]+)`", listed.group(1))) == set(ICON_NAMES)
