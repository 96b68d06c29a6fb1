"""manifest.yml (Socket Mode) and manifest.http.yml (HTTP mode) are valid Slack app manifests, the same
app but for the mode, and match what the bot serves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.cli import SCOPES

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ("manifest.yml", "manifest.http.yml")


def schema(major: int) -> dict[str, Any]:
    """Slack's manifest schema for one major version, vendored from slackapi/manifest-schema with
    its licence (tests/fixtures/manifest.schema.LICENSE)."""
    loaded: dict[str, Any] = json.loads((ROOT / "tests" / "fixtures" / f"manifest.schema.{major}.0.0.json").read_text())
    return loaded


def schema_for(data: dict[str, Any]) -> dict[str, Any]:
    """The schema Slack's own manifest.schema.json dispatches to, by `_metadata.major_version`."""
    return schema(int(data.get("_metadata", {}).get("major_version", 1)))


def validate(data: dict[str, Any], against: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(against, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    validator.validate(data)


def manifest(name: str = "manifest.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


@pytest.mark.parametrize("name", MANIFESTS)
def test_each_manifest_validates_against_slacks_schema_for_its_major_version(name: str) -> None:
    data = manifest(name)
    assert data["_metadata"]["major_version"] in (1, 2)  # the versions Slack's schema knows
    validate(data, schema_for(data))


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


@pytest.mark.parametrize("major", [1, 2])
def test_either_schema_catches_a_broken_manifest(major: int) -> None:
    broken = manifest()
    broken["features"]["slash_commands"][0]["command"] = "runs"  # must start with /
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, schema(major))
    unknown = manifest("manifest.http.yml")
    unknown["settings"]["socket_mode"] = True  # a misspelt key is not ignored
    with pytest.raises(jsonschema.ValidationError):
        validate(unknown, schema(major))
