"""`fabro-slack-bot run | check | preview`: serve Slack, verify settings, or show an answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from bot import __version__
from bot.blocks.presentation import Presentation
from bot.config import (
    ConfigError,
    Settings,
    configure_logging,
    describe_error,
    env_example,
    load_settings,
    reference_table,
)
from bot.redact import public_url, redact

__all__ = ["main"]

BLOCK_KIT_BUILDER = "https://app.slack.com/block-kit-builder/#"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fabro-slack-bot", description="See, follow and steer Fabro runs from Slack.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="serve Slack (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)")
    sub.add_parser("check", help="verify settings, Fabro and Slack, printing ✓/✗ per item")
    listing = sub.add_parser("settings", help="list every setting with its default and meaning")
    listing.add_argument("--env", action="store_true", help="in the form of .env.example")
    preview = sub.add_parser("preview", help="show the message `/runs <text>` would send, as Slack lays it out")
    preview.add_argument("--demo", action="store_true", help="use built-in sample runs (no configuration)")
    preview.add_argument("--json", action="store_true", help="print the exact message payload instead")
    preview.add_argument("--builder", action="store_true", help="print a Block Kit Builder link to it")
    preview.add_argument("--gallery", action="store_true", help="show every kind of message the bot posts")
    preview.add_argument("text", nargs="?", default="", help='the command text, e.g. "failed sort:elapsed"')
    args = parser.parse_args(argv)

    try:
        if args.command == "run":
            # From here on a SIGTERM or SIGINT is a request to stop, never a sudden death: noted now,
            # taken by the event loop once it runs (importing the app alone takes a moment).
            received: list[int] = []
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda number, _frame: received.append(number))
            settings = load_settings("run")
            configure_logging(settings.log_level, settings.secrets(), settings.log_format)
            from bot.app import serve

            asyncio.run(serve(settings, signalled=lambda: bool(received)))
            return 0
        if args.command == "settings":
            print(env_example() if args.env else reference_table(), end="")
            return 0
        if args.command == "check":
            return asyncio.run(_check())
        if args.gallery:
            return _gallery(as_json=args.json, builder=args.builder)
        return asyncio.run(_preview(args.text, demo=args.demo, as_json=args.json, builder=args.builder))
    except ConfigError as exc:
        print("fabro-slack-bot cannot start; fix these settings (environment or .env):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  ✗ {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader stopped early (`… | head`): end quietly, as rich does for the drawn preview
        # (status 1, no traceback). stdout goes to /dev/null so the final flush cannot raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _gallery(*, as_json: bool, builder: bool = False) -> int:
    from bot.preview.gallery import gallery

    items = gallery(datetime.now(UTC))
    if as_json:
        print(json.dumps([{"title": title, "message": message} for title, message in items], indent=2))
        return 0
    if builder:
        # One link per message: the builder shows one message at a time.
        for title, message in items:
            print(f"{title}\n  {_builder_link(message)}")
        return 0
    console = _console()
    for title, message in items:
        _show(console, message, title=title)
    return 0


def _builder_link(message: dict[str, Any]) -> str:
    return BLOCK_KIT_BUILDER + quote(json.dumps({"blocks": message.get("blocks", [])}, separators=(",", ":")))


def _console() -> Any:
    from bot.preview.terminal import console

    return console()


def _show(console: Any, message: dict[str, Any], *, title: str | None = None) -> None:
    from bot.preview.terminal import render_message

    console.print(render_message(message, title=title))


async def _preview(text: str, *, demo: bool, as_json: bool = False, builder: bool = False) -> int:
    from bot.asking.answers import Answerer
    from bot.asking.dispatch import Caller, Commands
    from bot.core.query import parse
    from bot.fabro.client import FabroClient
    from bot.listeners.boundary import answer_command

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    now = datetime.now(UTC)
    if demo:
        from bot.fabro.demo import DEMO_FABRO_URL, demo_client

        settings = Settings(_env_file=None)
        fabro = demo_client(now)
        web_base: str | None = DEMO_FABRO_URL
    else:
        settings = load_settings("preview")
        assert settings.fabro_api_url and settings.fabro_api_token
        fabro = FabroClient(
            settings.fabro_api_url,
            settings.fabro_api_token.get_secret_value(),
            timeout=settings.fabro_timeout_seconds,
        )
        web_base = settings.fabro_web_url
    command = settings.slash_command
    async with fabro:
        commands = Commands(Answerer(fabro, lambda: now, Presentation(web_base, command)))
        reply = await answer_command(commands, parse(text), Caller())
    message = reply.message
    if as_json:
        payload = {"response_type": "in_channel" if reply.public else "ephemeral", **message}
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    elif builder:
        print(_builder_link(message))
    else:
        who = "the channel" if reply.public else "only you"
        _show(_console(), message, title=f"{command} {text}".strip() + f" · seen by {who}")
    return 0


async def _check() -> int:
    """Each item is checked independently, so one run shows every problem at once. Nothing is
    changed: no database file is created, no migration runs, nothing is posted."""
    from bot.fabro.client import FabroClient
    from bot.fabro.errors import FabroError, FabroUnauthorized

    # Only `check`'s own lines reach the terminal: a library's log line is never the explanation.
    logging.basicConfig(handlers=[logging.NullHandler()], level=logging.CRITICAL, force=True)
    ok = True

    def report(passed: bool, line: str) -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'✓' if passed else '✗'} {line}")

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            report(False, describe_error(error))
        print("  (nothing else was checked: fix these first; the database was not touched)")
        return 1
    problems = settings.check_for("check")
    report(not problems, "settings" + ("" if not problems else ":"))
    for problem in problems:
        print(f"    {problem}")
    if settings.socket_mode:
        print("  mode: Socket Mode (SLACK_APP_TOKEN is set): the bot dials out to Slack, no public URL needed")
    else:
        print(
            f"  mode: HTTP on {settings.host}:{settings.port}: Slack must reach https://<your host>/slack/events"
            " (set SLACK_APP_TOKEN for Socket Mode)"
        )

    secrets = settings.secrets()

    def shown(text: str) -> str:
        return redact(text, secrets)

    if settings.fabro_api_url and settings.fabro_api_token:
        where = public_url(settings.fabro_api_url)
        async with FabroClient(
            settings.fabro_api_url,
            settings.fabro_api_token.get_secret_value(),
            timeout=settings.fabro_timeout_seconds,
        ) as fabro:
            # Reachability and the token are two questions: answer them apart, so the fix is clear.
            try:
                await fabro.health()
                report(True, f"Fabro at {where} is reachable (GET /health)")
                try:
                    await fabro.check_token()
                    report(True, f"Fabro at {where} accepts the API token (GET /api/v1/runs)")
                    for passed, line in await _check_workflows(fabro, settings):
                        report(passed, shown(line))
                except FabroError as exc:
                    what = "refuses the API token" if isinstance(exc, FabroUnauthorized) else "failed to list runs"
                    report(False, shown(f"Fabro at {where} {what}: {exc.detail} (request id {exc.request_id})"))
            except FabroError as exc:
                report(False, shown(f"Fabro at {where} is unreachable: {exc.detail} (request id {exc.request_id})"))

    if settings.slack_bot_token:
        await _check_slack(settings, report)

    await _check_database(settings, report)
    _describe_policies(settings)
    _check_manifests(settings)
    return 0 if ok else 1


async def _check_slack(settings: Settings, report: Any) -> None:
    from bot.slack.clients import slack_client
    from bot.slack.webapi import failure_sentence

    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = slack_client(token, settings.slack_api_url)
    where = public_url(settings.slack_api_url)
    try:
        auth = await client.auth_test()
        report(True, f"Slack accepts the bot token (team {auth.get('team')}, bot user {auth.get('user_id')})")
        granted = {s.strip() for s in (auth.headers.get("x-oauth-scopes") or "").split(",") if s.strip()}
        if granted:
            missing = [scope for scope in SCOPES if scope not in granted]
            report(
                not missing,
                "Slack app scopes" + ("" if not missing else ": missing, reinstall the app from its manifest:"),
            )
            for scope in missing:
                print(f"    {scope} — {SCOPES[scope]}")
    except Exception as exc:  # noqa: BLE001 - any failure is a ✗ sentence, never a traceback
        report(False, redact(f"Slack at {where} {failure_sentence(exc)}", settings.secrets()))
    finally:
        if client.session:
            await client.session.close()


async def _check_database(settings: Settings, report: Any) -> None:
    from bot.store.probe import probe_store

    where = public_url(settings.database_url)
    found = await probe_store(settings.database_url)
    if found.state == "absent":
        report(True, f"database {where} does not exist yet: `run` creates it (schema {found.latest})")
    elif found.state == "current":
        report(True, f"database {where} is reachable and migrated (schema {found.version})")
    elif found.state == "behind":
        report(True, f"database {where} is at schema {found.version} of {found.latest}: `run` migrates it at startup")
    elif found.state == "ahead":
        report(
            False,
            f"database {where} is at schema {found.version}, newer than this bot knows ({found.latest}):"
            " run the newer release, or restore the backup taken before the upgrade",
        )
    else:
        report(False, redact(f"database {where} {found.reason}", settings.secrets()))


def _describe_policies(settings: Settings) -> None:
    """Which replica mode, permission table and identity mode are in force, in so many words."""
    from bot.people.identity import parse_user_links

    if settings.shared_database:
        print(
            "  replicas: PostgreSQL, so any number may share it; Slack requests go to any of them, and one"
            " (holding an advisory lock) runs the alerts"
        )
    else:
        print("  replicas: SQLite, one process; a second one on the same file waits for the first to exit")
    alerts = (
        f"ALERT_CHANNEL {settings.alert_channel}"
        if settings.alert_channel
        else "no ALERT_CHANNEL (channels subscribe with /runs subscribe)"
    )
    print(f"  alerts: every {settings.poll_interval_seconds:g}s, {alerts}")
    _print_permissions(settings)
    pins = len(parse_user_links(settings.user_links))
    how = {
        "github": "people prove their GitHub login with /runs link (GitHub's device flow)",
        "self": "people link any login as typed with /runs link (trusts everyone)",
        "pinned": "only the links in USER_LINKS; /runs link is off",
    }[settings.link_mode]
    print(f"  identity: USER_LINKING={settings.link_mode}, {how}; {pins} pinned in USER_LINKS")
    shared = {
        "minimal": "a run's status, title and link only",
        "full": "everything, as in internal channels",
    }[settings.external_channels]
    print(f"  channels shared with another organisation: EXTERNAL_CHANNELS={settings.external_channels}, {shared}")
    allowed = ", ".join(sorted(settings.allowed_repositories)) or "none (REPOSITORIES is not set)"
    print(f"  work from Slack may start on: {allowed}; workflows from {settings.workflows_dir} and the shipped ones")
    print("  pull requests: Fabro opens them as drafts; GitHub merges them once marked ready for review")
    print("  failed runs: Retry starts a new run; Resume continues the same one from its last checkpoint")


PLACEHOLDER_UNFURL_DOMAIN = "fabro.example.com"


def _check_manifests(settings: Settings) -> None:
    """Warns while a manifest here still has the placeholder unfurl domain (the app cannot be asked)."""
    import re
    from pathlib import Path

    # A list item, not a comment: the manifest's own comments name the placeholder too.
    placeholder = re.compile(rf"^\s*-\s*{re.escape(PLACEHOLDER_UNFURL_DOMAIN)}\b", re.M)
    for name in ("manifest.yml", "manifest.http.yml"):
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
        except (OSError, UnicodeDecodeError):
            continue
        if placeholder.search(text):
            from urllib.parse import urlsplit

            host = urlsplit(settings.fabro_web_url or settings.fabro_api_url or "").hostname
            instead = f"`{host}`" if host else "the host of your Fabro web UI"
            print(
                f"⚠ {name}: features.unfurl_domains still lists the placeholder {PLACEHOLDER_UNFURL_DOMAIN}, so"
                f" pasted links to runs will not unfurl; replace it with {instead} and update the app"
            )


async def _check_workflows(fabro: Any, settings: Settings) -> list[tuple[bool, str]]:
    """Every workflow work can start with, as Fabro's validator sees it (POST /api/v1/validate)."""
    from pathlib import Path

    from bot.fabro.errors import FabroError
    from bot.fabro.manifest import BadWorkflow, build_manifest, load_workflow, workflow_names

    folder = Path(settings.workflows_dir)
    repository = min(settings.allowed_repositories, default="example/example")
    lines: list[tuple[bool, str]] = []
    for name in workflow_names(folder):
        try:
            workflow = load_workflow(folder, name)
            manifest = build_manifest(
                workflow, goal="check", title=f"check {name}", repository=repository, branch=None, labels={}
            )
            validation = await fabro.validate(manifest)
        except BadWorkflow as exc:
            lines.append((False, f"workflow {name}: {exc}"))
            continue
        except FabroError as exc:
            lines.append(
                (False, f"workflow {name}: Fabro did not validate it: {exc.detail} (request id {exc.request_id})")
            )
            continue
        reasons = "; ".join(f"{d.rule}: {d.message}" for d in validation.errors[:5])
        lines.append(
            (
                validation.passed,
                f"workflow {name} is valid (POST /api/v1/validate)"
                if validation.passed
                else f"workflow {name} is invalid: {reasons}",
            )
        )
    return lines


def _print_permissions(settings: Settings) -> None:
    """The effective permission table, and a line for each deprecated setting still in use."""
    from bot.people.permissions import Permissions

    print("  who may act from Slack:")
    for setting, who, source in Permissions(settings.permission_rules).table():
        print(f"    {setting:<14} {who}  ({source})")
    for line in settings.deprecations():
        print(f"  ! {line}")


# The bot scopes manifest.yml asks for, and what breaks without each.
SCOPES = {
    "commands": "the /runs command",
    "chat:write": "posting and updating alerts",
    "chat:write.public": "alerts in public channels the bot was not invited to",
    "channels:history": "after a crash, finding alerts already posted (else they may be posted twice)",
    "groups:history": "the same in private channels",
    "channels:read": "telling channels shared with another organisation (else they show only status, title, link)",
    "groups:read": "the same for private channels",
    "app_mentions:read": "answering a question by replying in its alert's thread",
    "usergroups:read": "user groups (S…) in the ALLOW_* settings",
    "users:read": "admins in the ALLOW_* settings, people's names and time zones (else UTC)",
    "links:read": "seeing links to runs pasted in channels",
    "links:write": "unfurling those links into a compact card of the run",
    "reactions:write": "marking a thread message whose words were passed to the agent",
    "im:write": "direct messages to the person a run waits on",
    "im:history": "after a crash, finding direct messages already sent (else they may be sent twice)",
    "files:write": "a run's log, patch and graph, uploaded into its thread",
}
