"""Settings from the environment and a `.env` file; problems are reported, secrets never shown."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.core.durations import parse_duration
from bot.people.identity import parse_user_links
from bot.people.permissions import ActionClass, Rule, effective_rules, parse_rule
from bot.redact import redact, url_passwords

__all__ = [
    "ConfigError",
    "Setting",
    "Settings",
    "configure_logging",
    "describe_error",
    "env_example",
    "load_settings",
    "reference",
    "reference_table",
]

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

    fabro_api_url: str | None = Field(
        default=None,
        description="base URL of your Fabro server, without `/api/v1`; a path prefix (`https://host/fabro`) is kept",
        json_schema_extra={"required": "yes", "example": "https://fabro.example.com"},
    )
    fabro_api_token: SecretStr | None = Field(
        default=None,
        description="Fabro API token (`fabro_dev_…` or a user token)",
        json_schema_extra={"required": "yes", "secret": True},
    )
    fabro_web_url: str | None = Field(
        default=None, description="Fabro web UI, for “Open in Fabro” when Fabro sends no `links.web`"
    )
    fabro_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="longest a Fabro call may take, retries included"
    )
    fabro_max_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="largest Fabro answer read (32 MiB); more is a Fabro error"
    )
    fabro_max_event_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="largest line of Fabro's event stream (1 MiB); more is a Fabro error and the stream reconnects",
    )
    slack_bot_token: SecretStr | None = Field(
        default=None,
        description="the app's Bot User OAuth Token, `xoxb-…`",
        json_schema_extra={"required": "yes", "secret": True},
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        description="the app's Signing Secret: verifies that requests come from Slack",
        json_schema_extra={"required": "HTTP mode", "secret": True},
    )
    slack_app_token: SecretStr | None = Field(
        default=None,
        description="app-level token, `xapp-…` with `connections:write`; when set, the bot uses Socket Mode",
        json_schema_extra={"required": "Socket Mode", "secret": True},
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="where every Slack Web API call goes (proxies, tests)"
    )
    slash_command: str = Field(default="/runs", description="the command name, if your workspace already has a `/runs`")
    host: str = Field(default="0.0.0.0", description="HTTP mode: the address to listen on")
    port: int = Field(default=3000, ge=0, le=65535, description="HTTP mode: the port to listen on")
    database_url: str = Field(
        default="sqlite:///./fabro-slack-bot.db",
        description="durable state: `sqlite:///…` (one process) or `postgresql://…` (any number of replicas)",
    )
    log_level: str = Field(default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`")
    alert_channel: str | None = Field(
        default=None,
        description="channel id (`C…`) that gets the default alerts; other channels use `/runs subscribe`",
    )
    poll_interval_seconds: float = Field(
        default=30.0, ge=1, le=3600, description="how often the alert cycle asks Fabro what changed"
    )
    shutdown_grace_seconds: float = Field(
        default=8.0,
        ge=0,
        le=300,
        description=(
            "on SIGTERM, how long work in flight (requests being answered, an alert cycle) may take to"
            " finish before it is cancelled; keep it below your orchestrator's kill timeout (Docker: 10 s)"
        ),
    )
    alert_digest_threshold: int = Field(
        default=5, ge=1, le=100, description="more new alerts than this for one channel in one cycle become one digest"
    )
    action_allowlist: str | None = Field(
        default=None,
        description=(
            "deprecated, removed in the next release: read as every `ALLOW_*` class that is not set"
            " (user ids `U…` and user-group ids `S…`, comma-separated)"
        ),
    )
    subscription_allowlist: str | None = Field(
        default=None, description="deprecated, removed in the next release: read as `ALLOW_ROUTE` when that is not set"
    )
    allow_answer: str | None = Field(
        default=None,
        description=(
            "who may answer a run's question or ask Fabro about a run: `*`, `owner`, `admins`, user ids `U…`,"
            " user-group ids `S…`, comma-separated; unset: `*`"
        ),
    )
    allow_approve: str | None = Field(
        default=None, description="who may approve or deny (same syntax); unset: `owner,admins`"
    )
    allow_operate: str | None = Field(
        default=None,
        description=(
            "who may retry, resume, cancel, steer, interrupt or pause a run, open a preview of its sandbox,"
            " or end another's follow (same syntax); unset: `owner,admins`"
        ),
    )
    allow_start: str | None = Field(
        default=None, description="who may start runs and automations from Slack (same syntax); unset: `admins`"
    )
    allow_ship: str | None = Field(
        default=None,
        description="who may create, merge and close pull requests (same syntax); unset: `owner,admins`",
    )
    allow_route: str | None = Field(
        default=None,
        description=(
            "who may change where alerts go: subscriptions, summaries, channel set-up (same syntax); unset: `admins`"
        ),
    )
    health_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="a port serving only `/healthz`, `/readyz` and `/metrics` (how Socket Mode replicas are probed)",
    )
    fabro_event_stream: bool = Field(
        default=True,
        description="`on`: follow Fabro's event stream for alerts within seconds; `off`: rely on polling alone",
    )
    follow_max: int = Field(default=50, ge=1, le=500, description="most runs followed at once")
    retention_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description=(
            "what ended longer ago is deleted: settled alerts, settled actions, follows and index entries of"
            " ended runs (never what is pending or waiting on someone)"
        ),
    )
    cost_alert_usd: float | None = Field(
        default=None,
        gt=0,
        description="a run whose cost crosses this many dollars is told once, with its cost per stage (kind `cost`)",
    )
    daily_budget_usd: float | None = Field(
        default=None,
        gt=0,
        description="the day's spend crossing this many dollars is told once a day where `cost` was asked for",
    )
    index_backfill_pages: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="pages of 100 runs read to fill the run index on first start or after an outage",
    )
    log_max_bytes: int = Field(
        default=5 * 1024 * 1024,
        ge=1024,
        description="largest run log posted in Slack (5 MiB); a longer one keeps its last bytes",
    )
    user_links: str | None = Field(
        default=None,
        description="pinned links from GitHub logins to Slack users: `login=U…` pairs, comma-separated",
    )
    user_linking: Literal["github", "self", "pinned"] | None = Field(
        default=None,
        description=(
            "`github`: people prove their GitHub login with the device flow; `pinned`: only `USER_LINKS`;"
            " `self`: anyone links any login (trusting); unset: `github` with `GITHUB_CLIENT_ID`, else `pinned`"
        ),
    )
    github_client_id: str | None = Field(
        default=None, description="client id of a GitHub OAuth app with the device flow enabled (`USER_LINKING=github`)"
    )
    github_url: str = Field(
        default="https://github.com", description="GitHub (Enterprise) web address, for the device flow"
    )
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub (Enterprise) API address, to read the proven login"
    )
    remind_after: str = Field(
        default="30m",
        description=(
            "a question or approval still waiting this long gets one reminder (`90s`, `30m`, `2h`, `1d`);"
            " `off` for none"
        ),
    )
    escalate_after: str = Field(
        default="off", description="still waiting this long: one escalation to `ESCALATE_TO`; `off` for none"
    )
    escalate_to: str | None = Field(
        default=None,
        description="who an escalation names: user ids `U…` and user-group ids `S…`, comma-separated",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="`text`, or `json` for one JSON object per line"
    )
    repositories: str | None = Field(
        default=None,
        description="GitHub repositories (`owner/name`, comma-separated) channels may start work on; unset: none",
    )
    workflows_dir: str = Field(
        default="./workflows",
        description="your own workflows in Fabro's layout, besides the shipped `implement`",
    )
    external_channels: Literal["minimal", "full"] = Field(
        default="minimal",
        description=(
            "in channels shared with another organisation (Slack Connect): `minimal` shows a run's status,"
            " title and link only; `full` shows everything, as in internal channels"
        ),
    )

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
        if value == "":
            return None
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("external_channels", mode="before")
    @classmethod
    def _external_channels(cls, value: object) -> object:
        if value is None or value == "":
            return "minimal"
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("github_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None and not re.fullmatch(r"[A-Za-z0-9._-]{4,64}", value):
            raise ValueError("must be a GitHub OAuth app's client id (Iv1.… or Ov23…)")
        return value

    @property
    def link_mode(self) -> str:
        """How people are linked to Fabro logins: USER_LINKING, else github with GITHUB_CLIENT_ID, else pinned."""
        if self.user_linking is not None:
            return self.user_linking
        return "github" if self.github_client_id else "pinned"

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

    @field_validator("allow_answer", "allow_approve", "allow_operate", "allow_start", "allow_ship", "allow_route")
    @classmethod
    def _rule(cls, value: str | None) -> str | None:
        entries = parse_rule(value)  # raises, naming the entries that are wrong
        return ",".join(sorted(entries)) or None

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

    @field_validator("fabro_api_url", "fabro_web_url", "slack_api_url", "github_url", "github_api_url")
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

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # A database URL may carry a password: show it as pydantic shows SecretStr.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                for password in url_passwords(value):
                    value = value.replace(password, "**********").replace(quote(password, safe=""), "**********")
            yield name, value

    @property
    def permission_rules(self) -> dict[ActionClass, Rule]:
        """Who may act in each class: its ALLOW_* setting, else a deprecated allowlist, else the default."""
        allow = {cls: getattr(self, f"allow_{cls.value}") for cls in ActionClass}
        return effective_rules(
            allow, action_allowlist=self.action_allowlist, subscription_allowlist=self.subscription_allowlist
        )

    def deprecations(self) -> list[str]:
        """One line per deprecated setting in use, saying what replaces it."""
        lines = []
        if self.action_allowlist:
            lines.append(
                "ACTION_ALLOWLIST is deprecated and will be removed in the next release: it now stands for "
                "every ALLOW_* class not set on its own; set ALLOW_ANSWER, ALLOW_APPROVE, ALLOW_OPERATE, "
                "ALLOW_START, ALLOW_SHIP and ALLOW_ROUTE instead"
            )
        if self.subscription_allowlist:
            lines.append(
                "SUBSCRIPTION_ALLOWLIST is deprecated and will be removed in the next release: "
                "it now stands for ALLOW_ROUTE; set ALLOW_ROUTE instead"
            )
        return lines

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
        problems = [f"{name}: missing — {_HELP[name]}" for name in needed if getattr(self, name.lower()) is None]
        if self.user_linking == "github" and not self.github_client_id:
            problems.append("GITHUB_CLIENT_ID: missing — USER_LINKING=github needs a GitHub OAuth app's client id")
        return problems

    def secrets(self) -> list[str]:
        """The secret values, so log output can be scrubbed of them."""
        values = (self.fabro_api_token, self.slack_bot_token, self.slack_signing_secret, self.slack_app_token)
        found = [v.get_secret_value() for v in values if v is not None]
        return found + url_passwords(self.database_url)


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
    # Only the location and the rule, in the settings' words: pydantic's message may quote the
    # (secret) input, and "Input should be a valid integer, unable to parse string" is its own jargon.
    name = ".".join(str(part) for part in error.get("loc", ())).upper() or "SETTINGS"
    message = error.get("msg", "is invalid")
    if message.startswith("Value error, "):
        return f"{name}: {message[len('Value error, ') :]}"
    context = error.get("ctx") or {}
    rule = _RULES.get(error.get("type", ""))
    if rule is not None:
        # A rule naming a bound pydantic did not give keeps pydantic's own message.
        with contextlib.suppress(KeyError, IndexError):
            message = rule.format(**{k: _shown(v) for k, v in context.items()})
    return f"{name}: {message}"


_RULES = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be on or off (also true/false, yes/no, 1/0)",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
    "string_type": "must be text",
}


def _shown(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass(frozen=True)
class Setting:
    """One setting as a person configures it: its variable, whether it is needed, its default, its meaning."""

    name: str
    required: str
    default: str
    meaning: str
    secret: bool


def reference() -> list[Setting]:
    """Every setting of `Settings`, in declaration order: the source of `.env.example` and the docs."""
    found = []
    for field_name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        found.append(
            Setting(
                name=field_name.upper(),
                required=str(extra.get("required", "no")),
                default=_shown_default(field.default),
                meaning=field.description or "",
                secret=bool(extra.get("secret", False)),
            )
        )
    return found


def _shown_default(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


ENV_EXAMPLE_HEADER = """\
# Settings of the Fabro runs bot. Copy this file to .env and fill in what you need.
# Required settings come uncommented; every other line shows the default, commented out.
# Generated from bot/config.py by `fabro-slack-bot settings --env` (a test keeps them equal);
# docs/configuration.md explains each one.
"""


ENV_EXAMPLE_COMPOSE = """\
# ── Read by compose.yaml only, not by the bot (docs/deployment.md) ──
# password of the bundled PostgreSQL; compose builds DATABASE_URL from it
# POSTGRES_PASSWORD=
# the bot's public DNS name: Caddy serves HTTPS for it in front of the HTTP-mode replicas
# BOT_PUBLIC_HOST=bot.example.com
# http: two replicas in HTTP mode behind Caddy; socket: one replica in Socket Mode
# COMPOSE_PROFILES=http
"""

# The variables compose.yaml reads from .env besides the bot's own settings.
COMPOSE_VARIABLES = ("POSTGRES_PASSWORD", "BOT_PUBLIC_HOST", "COMPOSE_PROFILES")


def env_example() -> str:
    """The text of `.env.example`: every setting with its meaning and its default."""
    lines = [ENV_EXAMPLE_HEADER]
    for setting in reference():
        need = {"no": "", "yes": " (required)"}.get(setting.required, f" (required in {setting.required})")
        lines.append(f"# {setting.meaning.replace('`', '')}{need}")
        if setting.required == "yes":
            lines.append(f"{setting.name}=")
        else:
            lines.append(f"# {setting.name}={setting.default}")
        lines.append("")
    lines.append(ENV_EXAMPLE_COMPOSE)
    return "\n".join(lines)


def reference_table() -> str:
    """The Markdown table of every setting, as docs/configuration.md shows it."""
    rows = ["| variable | required | default | meaning |", "|---|---|---|---|"]
    for setting in reference():
        default = f"`{setting.default}`" if setting.default else ""
        rows.append(f"| `{setting.name}` | {setting.required} | {default} | {setting.meaning} |")
    return "\n".join(rows) + "\n"


def _prefixed(value: SecretStr | None, prefix: str, message: str) -> SecretStr | None:
    if value is None or not value.get_secret_value().strip():
        return None
    if not value.get_secret_value().startswith(prefix):
        raise ValueError(message)
    return value


def configure_logging(level: str, secrets: list[str], fmt: str = "text") -> None:
    """One line per event, plain or JSON; any secret that slips into a line becomes [redacted]."""
    inner = _json_formatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler = logging.StreamHandler()
    handler.setFormatter(_Redacting(inner, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries speak at INFO about their own workings ("Scheduler started", "Added job", "A new
    # session has been established", each request): only their warnings and errors are the bot's news.
    numeric = logging.getLevelName(level)
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    # Asked for DEBUG, Slack's libraries say what they do at INFO, never more: at DEBUG Slack's SDK
    # logs the bodies it sends, preview links (secrets) and everything people wrote.
    if numeric <= logging.DEBUG:
        for chatty in ("slack_sdk", "slack_bolt"):
            logging.getLogger(chatty).setLevel(logging.INFO)


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


# Identifiers a log call may carry as real fields (`extra={"request_id": …}`), so log search can
# filter on them: Fabro's request id, Slack's, and an alert's key.
LOG_FIELDS = ("request_id", "slack_request_id", "alert")


def _json_formatter() -> logging.Formatter:
    """`{"ts", "level", "logger", "message", "request_id"?, "slack_request_id"?, "alert"?, "error"?}`,
    rendered by structlog from the standard library's records."""
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        processors=[
            _record_fields,
            structlog.processors.format_exc_info,
            _error_field,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
    )


def _record_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record: logging.LogRecord = event["_record"]
    entry: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": event["event"],
    }
    for name in LOG_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            entry[name] = str(value)
    if "exc_info" in event:
        entry["exc_info"] = event["exc_info"]
    return entry


def _error_field(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if "exception" in event:
        event["error"] = event.pop("exception")
    return event
