"""manifest.yml (Socket Mode) and manifest.http.yml (HTTP mode) are valid Slack app manifests, the same
app but for the mode, and match what the bot serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from bot.cli import SCOPES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "manifest.schema.1.0.0.json").read_text())


def manifest(name: str = "manifest.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def test_both_manifests_validate_against_slacks_schema() -> None:
    jsonschema.validate(manifest(), SCHEMA)
    jsonschema.validate(manifest("manifest.http.yml"), SCHEMA)


def test_the_http_manifest_is_the_socket_mode_one_with_request_urls_to_the_events_path() -> None:
    from bot.app import SLACK_EVENTS_PATH

    http, socket = manifest("manifest.http.yml"), manifest()
    url = f"https://bot.example.com{SLACK_EVENTS_PATH}"
    assert http["features"]["slash_commands"][0].pop("url") == url
    assert http["settings"]["interactivity"].pop("request_url") == url
    assert http["settings"]["event_subscriptions"].pop("request_url") == url
    assert http["settings"].pop("socket_mode_enabled") is False
    assert socket["settings"].pop("socket_mode_enabled") is True
    assert http == socket


def test_the_manifest_is_for_socket_mode_with_the_runs_command() -> None:
    m = manifest()
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["settings"]["interactivity"]["is_enabled"] is True
    command = m["features"]["slash_commands"][0]
    assert command["command"] == "/runs"
    assert "url" not in command and command["usage_hint"]


def test_the_manifest_asks_only_for_scopes_the_bot_uses() -> None:
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
        "channels:read",
        "groups:read",
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


def test_unfurls_are_set_up_with_a_placeholder_domain_to_replace() -> None:
    for name in ("manifest.yml", "manifest.http.yml"):
        domains = manifest(name)["features"]["unfurl_domains"]
        assert domains == ["fabro.example.com"] and all(":" not in d for d in domains)
        text = (ROOT / name).read_text()
        assert "replace with the host of your Fabro web UI" in text
        assert re.search(r"no pasted run link\s*#\s*unfurls", text)  # why it matters, where it is changed


def test_a_broken_manifest_is_caught(tmp_path: Path) -> None:
    broken = manifest()
    broken["features"]["slash_commands"][0]["command"] = "runs"  # must start with /
    try:
        jsonschema.validate(broken, SCHEMA)
    except jsonschema.ValidationError:
        return
    raise AssertionError("schema accepted a command without a slash")
