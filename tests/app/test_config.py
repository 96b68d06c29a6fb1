"""Settings: clear lines for what is missing or malformed, and never a secret in them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Purpose, load_settings


def problems(purpose: Purpose = "run", /, **env: Any) -> list[str]:
    try:
        load_settings(purpose, env_file=None, **env)
    except ConfigError as exc:
        return exc.problems
    return []


def test_missing_settings_are_listed_one_per_line() -> None:
    found = problems()
    assert [p.split(":")[0] for p in found] == [
        "FABRO_API_URL",
        "FABRO_API_TOKEN",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
    ]


def test_socket_mode_does_not_need_a_signing_secret() -> None:
    assert (
        problems(
            fabro_api_url="https://fabro.example.com",
            fabro_api_token="t",
            slack_bot_token="xoxb-1",
            slack_app_token="xapp-1",
        )
        == []
    )


def test_preview_needs_only_fabro() -> None:
    assert [p.split(":")[0] for p in problems("preview")] == ["FABRO_API_URL", "FABRO_API_TOKEN"]


def test_a_malformed_token_is_named_but_never_shown() -> None:
    secret = "xoxp-0123456789-secret-value"
    found = problems(slack_bot_token=secret)
    assert any(p.startswith("SLACK_BOT_TOKEN: must be a bot token") for p in found)
    assert all(secret not in p for p in found)


def test_a_fabro_url_with_api_v1_is_explained() -> None:
    assert any("without /api/v1" in p for p in problems(fabro_api_url="https://fabro.example.com/api/v1"))


def test_settings_come_from_the_environment_and_a_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("FABRO_API_URL=https://from-dotenv.example.com\nFABRO_API_TOKEN=t\n")
    monkeypatch.setenv("FABRO_API_TOKEN", "from-env")
    settings = load_settings("preview", env_file=tmp_path / ".env")
    assert settings.fabro_api_url == "https://from-dotenv.example.com"
    assert settings.fabro_api_token is not None and settings.fabro_api_token.get_secret_value() == "from-env"


def test_slack_api_url_gets_its_trailing_slash() -> None:
    settings = load_settings(
        "preview",
        env_file=None,
        fabro_api_url="https://f.example.com",
        fabro_api_token="t",
        slack_api_url="http://127.0.0.1:9/api",
    )
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", "http"), ("log_level", "loud"), ("database_url", "mysql://x"), ("slash_command", "runs")],
)
def test_malformed_values_are_reported_by_their_variable_name(name: str, value: str) -> None:
    assert any(p.startswith(name.upper() + ":") for p in problems(**{name: value}))


def test_the_settings_repr_hides_secrets() -> None:
    settings = load_settings(
        "preview", env_file=None, fabro_api_url="https://f.example.com", fabro_api_token="fabro_dev_supersecret"
    )
    assert "supersecret" not in repr(settings)


def test_malformed_and_missing_settings_are_reported_together() -> None:
    found = problems(slack_bot_token="xoxp-wrong-kind", alert_channel="#ops", action_allowlist="@ada")
    names = [p.split(":")[0] for p in found]
    assert names[:3] == ["SLACK_BOT_TOKEN", "ALERT_CHANNEL", "ACTION_ALLOWLIST"]
    assert names[3:] == [
        "FABRO_API_URL",
        "FABRO_API_TOKEN",
        "SLACK_SIGNING_SECRET",
    ]  # not a second "missing" for the token
    assert any("not a name" in p for p in found) and any("@ada" in p for p in found)


def test_the_database_password_is_a_secret_too() -> None:
    settings = load_settings(
        "preview",
        env_file=None,
        fabro_api_url="https://fabro.example.com",
        fabro_api_token="t",
        database_url="postgresql://bot:s3cr%40t-pass@db:5432/bot",
    )
    assert "s3cr@t-pass" in settings.secrets()


def test_the_database_password_is_masked_in_the_settings_repr() -> None:
    settings = load_settings(
        "preview",
        env_file=None,
        fabro_api_url="https://fabro.example.com",
        fabro_api_token="t",
        database_url="postgresql://bot:hunter2hunter2@db:5432/bot",
    )
    assert "hunter2hunter2" not in repr(settings) and "postgresql://bot:**********@db:5432/bot" in repr(settings)


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("port", "abc", "PORT: must be a whole number"),
        ("health_port", "70000", "HEALTH_PORT: must be at most 65535"),
        ("fabro_timeout_seconds", "0", "FABRO_TIMEOUT_SECONDS: must be more than 0"),
        ("fabro_event_stream", "perhaps", "FABRO_EVENT_STREAM: must be on or off"),
        ("user_linking", "maybe", "USER_LINKING: must be 'github', 'self' or 'pinned'"),
        ("follow_max", "0", "FOLLOW_MAX: must be at least 1"),
        ("external_channels", "partial", "EXTERNAL_CHANNELS: must be 'minimal' or 'full'"),
    ],
)
def test_a_malformed_value_is_told_in_the_settings_words_not_pydantics(setting: str, value: str, said: str) -> None:
    found = problems("preview", **{setting: value}, fabro_api_url="https://f.example.com", fabro_api_token="t")
    assert any(p.startswith(said) for p in found), found
    assert not any("Input should" in p or "unable to parse" in p for p in found)


@pytest.mark.parametrize(("value", "read"), [("", "minimal"), (" Full ", "full"), ("MINIMAL", "minimal")])
def test_external_channels_defaults_to_minimal_and_reads_any_case(value: str, read: str) -> None:
    settings = load_settings(
        "preview", env_file=None, fabro_api_url="https://f.example.com", fabro_api_token="t", external_channels=value
    )
    assert settings.external_channels == read
    unset = load_settings("preview", env_file=None, fabro_api_url="https://f.example.com", fabro_api_token="t")
    assert unset.external_channels == "minimal"
