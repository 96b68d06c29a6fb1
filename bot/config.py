"""Settings from the environment and a `.env` file; problems are reported, secrets never shown."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.durations import parse_duration
from bot.people.identity import parse_user_links
from bot.redact import redact

__all__ = ["ConfigError", "Settings", "configure_logging", "describe_error", "load_settings"]

Purpose = Literal["run", "check", "preview"]

_HELP = {
    "FABRO_API_URL": "the base URL of your Fabro server, without /api/v1 (e.g. https://fabro.example.com)",
    "FABRO_API_TOKEN": "a Fabro API token (fabro_dev_… or a user token)",
    "SLACK_BOT_TOKEN": "the app's Bot User OAuth Token (xoxb-…)",
    "SLACK_SIGNING_SECRET": "the app's Signing Secret (Basic Information page); needed in HTTP mode",
    "SLACK_APP_TOKEN": "an app-level token (xapp-…) with connections:write; set it for Socket Mode",
}


class Settings(BaseSettings):
    """Every setting, by its environment variable name. Only `check_for()` decides what is required."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    fabro_api_url: str | None = None
    fabro_api_token: SecretStr | None = None
    fabro_web_url: str | None = None
    fabro_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    fabro_max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    fabro_max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    slash_command: str = "/runs"
    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    database_url: str = "sqlite:///./fabro-slack-bot.db"
    log_level: str = "INFO"
    alert_channel: str | None = None
    poll_interval_seconds: float = Field(default=30.0, ge=1, le=3600)
    alert_digest_threshold: int = Field(default=5, ge=1, le=100)
    action_allowlist: str | None = None
    subscription_allowlist: str | None = None
    health_port: int | None = Field(default=None, ge=0, le=65535)
    fabro_event_stream: bool = True
    follow_max: int = Field(default=50, ge=1, le=500)
    retention_days: int = Field(default=90, ge=1, le=3650)
    cost_alert_usd: float | None = Field(default=None, gt=0)
    daily_budget_usd: float | None = Field(
        default=None, gt=0
    )  # the day's spend crossing it is told once a day  # a run costing more is told once (kind `cost`)
    index_backfill_pages: int = Field(default=20, ge=1, le=1000)  # of 100 runs, read on first start or after an outage
    log_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)  # a run log posted in Slack: its last bytes
    user_links: str | None = None
    user_linking: Literal["self", "pinned"] = "self"
    remind_after: str = "30m"
    escalate_after: str = "off"
    escalate_to: str | None = None
    log_format: Literal["text", "json"] = "text"
    repositories: str | None = None  # owner/name, comma-separated: where work may be started from Slack
    workflows_dir: str = "./workflows"

    @field_validator("health_port", mode="before")
    @classmethod
    def _blank_port(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("user_links")
    @classmethod
    def _user_links(cls, value: str | None) -> str | None:
        parse_user_links(value)  # raises with the entries that are wrong
        return value

    @field_validator("log_format", "user_linking", mode="before")
    @classmethod
    def _format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("remind_after", "escalate_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)  # raises, saying what would work
        return value

    @field_validator("action_allowlist", "subscription_allowlist", "escalate_to")
    @classmethod
    def _allowlist(cls, value: str | None) -> str | None:
        entries = [part.strip() for part in (value or "").split(",") if part.strip()]
        wrong = [e for e in entries if not re.fullmatch(r"[UWS][A-Z0-9]{2,}", e)]
        if wrong:
            raise ValueError(
                "must be Slack user ids (U…) and user group ids (S…), comma-separated; "
                f"not {', '.join(wrong[:3])} (names and @handles do not work)"
            )
        return ",".join(entries) or None

    @field_validator("repositories")
    @classmethod
    def _repositories(cls, value: str | None) -> str | None:
        entries = [part.strip() for part in (value or "").split(",") if part.strip()]
        wrong = [e for e in entries if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", e)]
        if wrong:
            raise ValueError(f"must be GitHub repositories as owner/name, comma-separated; not {', '.join(wrong[:3])}")
        return ",".join(entries) or None

    @field_validator("alert_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", value):
            raise ValueError(
                "must be a channel id such as C0123456789 (channel details → About → Channel ID), not a name"
            )
        return value

    @field_validator("fabro_api_url", "fabro_web_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")) or len(value) < 10:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("fabro_api_url")
    @classmethod
    def _without_api_suffix(cls, value: str | None) -> str | None:
        if value and value.rstrip("/").endswith("/api/v1"):
            raise ValueError("must be the server's base URL, without /api/v1")
        return value.rstrip("/") if value else value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str | None) -> str:
        # slack_sdk joins method names onto this URL; without the slash the path is lost.
        value = value or "https://slack.com/api/"
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _prefixed(value, "xoxb-", "must be a bot token starting with xoxb-")

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        return _prefixed(value, "xapp-", "must be an app-level token starting with xapp-")

    @field_validator("fabro_api_token", "slack_signing_secret")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("slash_command")
    @classmethod
    def _command(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith("/") or not 2 <= len(value) <= 32 or " " in value:
            raise ValueError("must look like /runs (a slash and up to 31 characters)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # A database URL may carry a password: show it as pydantic shows SecretStr.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str) and urlsplit(value).password:
                value = value.replace(f":{urlsplit(value).password}@", ":**********@", 1)
            yield name, value

    @property
    def routing_allowlist(self) -> tuple[str, str | None]:
        """Who may change where messages go, and the setting that says so (None: everyone)."""
        if self.subscription_allowlist:
            return "SUBSCRIPTION_ALLOWLIST", self.subscription_allowlist
        if self.action_allowlist:
            return "ACTION_ALLOWLIST", self.action_allowlist
        return "SUBSCRIPTION_ALLOWLIST", None

    @property
    def allowed_repositories(self) -> frozenset[str]:
        """REPOSITORIES, lower-case (GitHub's names are case-insensitive); empty: work starts nowhere."""
        return frozenset(r.lower() for r in (self.repositories or "").split(",") if r)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def shared_database(self) -> bool:
        """PostgreSQL: several replicas may share it. SQLite: one process."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    def check_for(self, purpose: Purpose) -> list[str]:
        """One line per missing setting that `purpose` needs."""
        needed = ["FABRO_API_URL", "FABRO_API_TOKEN"]
        if purpose in ("run", "check"):
            needed.append("SLACK_BOT_TOKEN")
            if not self.socket_mode:
                needed.append("SLACK_SIGNING_SECRET")
        return [f"{name}: missing — {_HELP[name]}" for name in needed if getattr(self, name.lower()) is None]

    def secrets(self) -> list[str]:
        """The secret values, so log output can be scrubbed of them."""
        values = (self.fabro_api_token, self.slack_bot_token, self.slack_signing_secret, self.slack_app_token)
        found = [v.get_secret_value() for v in values if v is not None]
        password = urlsplit(self.database_url).password if "@" in self.database_url else None
        return found + ([unquote(password)] if password else [])


@dataclass
class ConfigError(Exception):
    """Settings that cannot work, one readable line each."""

    problems: list[str]

    def __str__(self) -> str:
        return "\n".join(self.problems)


def load_settings(purpose: Purpose, *, env_file: str | Path | None = ".env", **overrides: Any) -> Settings:
    """Settings for `purpose`, or a ConfigError listing every problem at once: malformed
    values and missing ones together, so one round of fixes is enough."""
    try:
        settings = Settings(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = [describe_error(error) for error in exc.errors()]
        # Set the malformed ones aside (as unset) to see what else is missing.
        malformed = {str(error["loc"][0]) for error in exc.errors() if error.get("loc")}
        unset = {name: Settings.model_fields[name].default for name in malformed if name in Settings.model_fields}
        try:
            rest = Settings(_env_file=env_file, **{**overrides, **unset})
        except ValidationError:
            raise ConfigError(problems) from None
        missing = [p for p in rest.check_for(purpose) if p.split(":", 1)[0].lower() not in malformed]
        raise ConfigError(problems + missing) from None
    problems = settings.check_for(purpose)
    if problems:
        raise ConfigError(problems)
    return settings


def describe_error(error: ErrorDetails) -> str:
    # Only the location and the rule: pydantic's message may quote the (secret) input.
    name = ".".join(str(part) for part in error.get("loc", ())).upper() or "SETTINGS"
    message = error.get("msg", "is invalid")
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return f"{name}: {message}"


def _prefixed(value: SecretStr | None, prefix: str, message: str) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None
    if not value.get_secret_value().startswith(prefix):
        raise ValueError(message)
    return value


def configure_logging(level: str, secrets: list[str], fmt: str = "text") -> None:
    """One line per event, plain or JSON; any secret that slips into a line becomes [redacted]."""
    inner = _JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler = logging.StreamHandler()
    handler.setFormatter(_Redacting(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # At DEBUG, Slack's SDK logs the bodies it sends: preview links (secrets) and everything people wrote.
    for chatty in ("slack_sdk", "slack_bolt"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, logging.getLevelName(level)))


class _Redacting(logging.Formatter):
    """Scrubs secrets from the finished line, tracebacks included."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = [s for s in secrets if len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if "\n" in message or "\r" in message:
            # A value from outside must never start a line of its own (a forged log entry).
            flat = message.replace("\r", "\\r").replace("\n", "\\n")
            record = logging.makeLogRecord({**record.__dict__, "msg": flat, "args": None})
        return redact(self._inner.format(record), self._secrets)


class _JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id"?, "slack_request_id"?, "alert"?, "error"?}`.

    Identifiers already in the message (Fabro's request_id=…, an alert's key) are also
    lifted into their own fields, so log search can filter on them.
    """

    _REQUEST_ID = re.compile(r"(?<!slack_)request[ _]id[=:]? ?`?([0-9A-Za-z-]{8,})")
    _SLACK_REQUEST_ID = re.compile(r"slack_request_id=([0-9A-Za-z-]{6,})")
    _ALERT = re.compile(r"\b((?:failed|question|approval|digest):[0-9A-Za-z_:-]{6,})")

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import datetime

        message = record.getMessage()
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if match := self._REQUEST_ID.search(message):
            entry["request_id"] = match.group(1)
        if match := self._SLACK_REQUEST_ID.search(message):
            entry["slack_request_id"] = match.group(1)
        if match := self._ALERT.search(message):
            entry["alert"] = match.group(1)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
