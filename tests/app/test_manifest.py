"""manifest.yml is a valid Slack app manifest and matches what the bot serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from bot.cli import SCOPES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "manifest.schema.1.0.0.json").read_text())


def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_the_manifest_validates_against_slacks_schema():
    jsonschema.validate(manifest(), SCHEMA)


def test_the_manifest_is_for_socket_mode_with_the_runs_command():
    m = manifest()
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["settings"]["interactivity"]["is_enabled"] is True
    command = m["features"]["slash_commands"][0]
    assert command["command"] == "/runs"
    assert "url" not in command and command["usage_hint"]


def test_the_manifest_asks_only_for_scopes_the_bot_uses():
    assert set(manifest()["oauth_config"]["scopes"]["bot"]) == {
        "users:read",
        "links:read",
        "links:write",
        "reactions:write",
        "commands",
        "chat:write",
        "chat:write.public",
        "channels:history",
        "groups:history",
        "app_mentions:read",
        "usergroups:read",
        "im:write",
        "im:history",
        "files:write",
    }
    assert set(SCOPES) == set(manifest()["oauth_config"]["scopes"]["bot"])  # `check` knows each one
    assert manifest()["features"]["app_home"]["messages_tab_enabled"] is True  # where DMs are read
    events = ["app_mention", "app_home_opened", "link_shared"]
    assert manifest()["settings"]["event_subscriptions"]["bot_events"] == events


def test_unfurls_are_set_up_with_a_placeholder_domain_to_replace():
    domains = manifest()["features"]["unfurl_domains"]
    assert domains == ["fabro.example.com"] and all(":" not in d for d in domains)
    assert "replace with the host of your Fabro web UI" in (ROOT / "manifest.yml").read_text()


def test_the_http_mode_instructions_name_the_path_the_bot_serves():
    text = (ROOT / "manifest.yml").read_text()
    assert re.search(r"request_url:\s+https://\S+/slack/events", text)
    from bot.app import SLACK_EVENTS_PATH

    assert SLACK_EVENTS_PATH == "/slack/events"


def test_a_broken_manifest_is_caught(tmp_path):
    broken = manifest()
    broken["features"]["slash_commands"][0]["command"] = "runs"  # must start with /
    try:
        jsonschema.validate(broken, SCHEMA)
    except jsonschema.ValidationError:
        return
    raise AssertionError("schema accepted a command without a slash")
