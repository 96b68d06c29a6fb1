"""`fabro-slack-bot check` never lies and never changes anything: every failure is a sentence,
nothing is created or migrated, and it says which modes and permissions are in force."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from bot.store import open_store
from tests.app.test_cli import fake_env, run_cli
from tests.fakes.fabro import FakeFabro
from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
LIBRARY_WORDS = ("Error", "Exception", "Traceback", "aiohttp", "psycopg", "Pool", "Timeout")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_check_with_invalid_settings_creates_no_database_file(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db", "PORT": "not a port", "FABRO_API_URL": "ftp://x"}
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 1
    assert "✗ PORT:" in out and "✗ FABRO_API_URL: must be an http:// or https:// URL" in out
    assert list(tmp_path.iterdir()) == [] and err == ""


async def test_check_with_missing_settings_neither_creates_nor_migrates_the_database(tmp_path: Path) -> None:
    code, out, err = await run_cli("check", env={"DATABASE_URL": f"sqlite:///{tmp_path}/bot.db"}, cwd=tmp_path)
    assert code == 1 and "FABRO_API_URL: missing" in out
    assert f"✓ database sqlite:///{tmp_path}/bot.db does not exist yet: `run` creates it" in out
    assert list(tmp_path.iterdir()) == [] and err == ""


async def test_check_reads_a_migrated_sqlite_file_without_touching_it(
    tmp_path: Path, fabro: FakeFabro, slack: FakeSlack
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    store = open_store(url)
    await store.open()
    await store.close()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    code, out, err = await run_cli("check", env=fake_env(fabro, slack, DATABASE_URL=url), cwd=tmp_path)
    assert code == 0, out + err
    assert f"✓ database {url} is reachable and migrated (schema " in out
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


async def test_a_file_that_is_not_a_database_is_named_so(tmp_path: Path, fabro: FakeFabro, slack: FakeSlack) -> None:
    (tmp_path / "bot.db").write_text("not a database " * 200)
    env = fake_env(fabro, slack, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 1 and "is not a SQLite database" in out and err == ""


async def test_an_unreachable_postgresql_is_a_sentence_not_a_driver_error(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    url = f"postgresql://bot:pw-secret-1@127.0.0.1:{_closed_port()}/bot"
    code, out, err = await run_cli("check", env=fake_env(fabro, slack, DATABASE_URL=url), cwd=tmp_path)
    assert code == 1 and err == ""
    line = next(line for line in out.splitlines() if "database" in line and line.startswith("✗"))
    assert "refused the connection: is PostgreSQL running there, on that port?" in line
    assert not any(word in line for word in LIBRARY_WORDS) and "pw-secret-1" not in out


async def test_an_unknown_postgresql_database_is_named(
    fabro: FakeFabro, slack: FakeSlack, postgres_server: str, tmp_path: Path
) -> None:
    url = postgres_server.rsplit("/", 1)[0] + "/no_such_database_here"
    code, out, err = await run_cli("check", env=fake_env(fabro, slack, DATABASE_URL=url), cwd=tmp_path)
    assert code == 1 and "has no such database or user" in out and err == ""


async def test_a_migrated_postgresql_is_read_in_a_read_only_transaction(
    fabro: FakeFabro, slack: FakeSlack, postgres_url: str, tmp_path: Path
) -> None:
    store = open_store(postgres_url)
    await store.open()
    await store.close()
    code, out, err = await run_cli("check", env=fake_env(fabro, slack, DATABASE_URL=postgres_url), cwd=tmp_path)
    assert code == 0, out + err
    assert "is reachable and migrated (schema " in out
    assert "replicas: PostgreSQL, so any number may share it" in out


async def test_an_unreachable_slack_is_a_sentence_without_library_lines(fabro: FakeFabro, tmp_path: Path) -> None:
    env = {
        "FABRO_API_URL": fabro.url,
        "FABRO_API_TOKEN": fabro.token,
        "SLACK_BOT_TOKEN": "xoxb-" + "1" * 20,
        "SLACK_SIGNING_SECRET": "s" * 32,
        "SLACK_API_URL": f"http://127.0.0.1:{_closed_port()}/api/",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
    }
    code, out, err = await run_cli("check", env=env, cwd=tmp_path, timeout=60)
    assert code == 1 and err == ""
    line = next(line for line in out.splitlines() if line.startswith("✗ Slack"))
    assert "could not be reached: the connection was refused or dropped" in line
    assert not any(word in line for word in LIBRARY_WORDS)


async def test_a_slack_host_that_does_not_resolve_is_named_as_dns(fabro: FakeFabro, tmp_path: Path) -> None:
    env = {
        "FABRO_API_URL": fabro.url,
        "FABRO_API_TOKEN": fabro.token,
        "SLACK_BOT_TOKEN": "xoxb-" + "1" * 20,
        "SLACK_APP_TOKEN": "xapp-" + "1" * 20,
        "SLACK_API_URL": "http://slack.invalid/api/",
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
    }
    code, out, err = await run_cli("check", env=env, cwd=tmp_path, timeout=60)
    assert code == 1 and err == ""
    assert "✗ Slack at http://slack.invalid/api/ could not be reached: its host name cannot be found (DNS" in out
    assert "mode: Socket Mode (SLACK_APP_TOKEN is set)" in out


async def test_check_says_which_replica_mode_permissions_and_identity_mode_are_in_force(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    env = fake_env(
        fabro,
        slack,
        DATABASE_URL=f"sqlite:///{tmp_path}/bot.db",
        SUBSCRIPTION_ALLOWLIST="U1AAA,U2BBB",
        USER_LINKING="pinned",
        USER_LINKS="octocat=U1AAA",
    )
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert "mode: HTTP on 0.0.0.0:3000" in out
    assert "replicas: SQLite, one process" in out
    assert "ALLOW_ANSWER   everyone  (default)" in out
    assert "ALLOW_APPROVE  the run's owner and workspace admins  (default)" in out
    assert "ALLOW_ROUTE    U1AAA and U2BBB  (SUBSCRIPTION_ALLOWLIST (deprecated))" in out
    assert "! SUBSCRIPTION_ALLOWLIST is deprecated" in out
    assert "identity: USER_LINKING=pinned, only the links in USER_LINKS; /runs link is off; 1 pinned" in out
    assert "shared with another organisation: EXTERNAL_CHANNELS=minimal, a run's status, title and link only" in out
    # What Fabro decides that a user would not guess: drafts, and resuming besides retrying.
    assert "pull requests: Fabro opens them as drafts; GitHub merges them once marked ready for review" in out
    assert "failed runs: Retry starts a new run; Resume continues the same one from its last checkpoint" in out


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ("proxy", "answered HTTP 502, not Slack's API (check SLACK_API_URL and any proxy)"),
        ("garbled", "answered something other than Slack's API (check SLACK_API_URL and any proxy)"),
    ],
)
async def test_a_slack_url_that_is_not_slacks_api_is_said_so(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, answer: str, said: str
) -> None:
    if answer == "proxy":
        slack.proxy_error["auth.test"] = 502  # a proxy's HTML page
    else:
        slack.garbled.add("auth.test")  # JSON cut off midway
    env = fake_env(fabro, slack, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 1 and err == ""
    line = next(line for line in out.splitlines() if line.startswith("✗ Slack"))
    assert line == f"✗ Slack at {slack.api_url} {said}"


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        (
            {"GITHUB_CLIENT_ID": "Iv1.0123456789abcdef"},
            "USER_LINKING=github, people prove their GitHub login",
        ),
        (
            {"USER_LINKING": "self"},
            "USER_LINKING=self, people link any login as typed with /runs link (trusts",
        ),
        ({}, "USER_LINKING=pinned, only the links in USER_LINKS; /runs link is off; 0 pinned"),
    ],
)
async def test_check_names_each_identity_mode_and_how_people_are_linked_in_it(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path, setting: dict[str, str], said: str
) -> None:
    env = fake_env(fabro, slack, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db", **setting)
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0, out + err
    assert f"  identity: {said}" in out


async def test_check_warns_while_the_manifest_keeps_the_placeholder_unfurl_domain(
    fabro: FakeFabro, slack: FakeSlack, tmp_path: Path
) -> None:
    shutil.copy(ROOT / "manifest.yml", tmp_path / "manifest.yml")
    env = fake_env(fabro, slack, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db", FABRO_WEB_URL="https://fabro.acme.dev")
    code, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0  # a warning, not a failure: the bot works, links just do not unfurl
    assert "⚠ manifest.yml: features.unfurl_domains still lists the placeholder fabro.example.com" in out
    assert "replace it with `fabro.acme.dev`" in out

    text = (tmp_path / "manifest.yml").read_text().replace("- fabro.example.com", "- fabro.acme.dev")
    (tmp_path / "manifest.yml").write_text(text)
    _code, out, _ = await run_cli("check", env=env, cwd=tmp_path)
    assert "⚠" not in out
