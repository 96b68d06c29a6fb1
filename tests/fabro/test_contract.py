"""The contract the fake is held to: Fabro's OpenAPI spec, with the named exceptions, and the event
payload models; and the client's side of what API.md says of Fabro 0.333."""

from __future__ import annotations

import json

import httpx
from aiohttp import web

from bot.fabro.client import FabroClient
from bot.fabro.events import PullRequestCreated, RunNotice, payload_of
from bot.fabro.models import AutomationPreset, RunEvent
from tests.fakes.contract import SPEC_EXCEPTIONS, Contract, check_event
from tests.fakes.fabro import FakeFabro
from tests.fakes.loopback import serve
from tests.fakes.runs import make_run, run_examples


def test_every_real_run_example_keeps_to_the_spec() -> None:
    contract = Contract.load()
    for run in [*run_examples(), make_run("failed"), make_run("paused")]:
        assert contract.check_response("GET", "/api/v1/runs/X", 200, "application/json", json.dumps(run).encode()) == []


def test_a_request_off_the_spec_is_caught_with_what_is_wrong() -> None:
    contract = Contract.load()
    assert contract.check_request("POST", "/api/v1/runs/X/approve", [], "application/json", b"{}")
    bad = contract.check_request("GET", "/api/v1/runs", [("status", "sleeping")], "", b"")
    assert "'sleeping' is not one of" in bad[0]
    old = contract.check_request("POST", "/api/v1/runs/X/questions/q/answer", [], "application/json", b'{"value":1}')
    assert old
    assert contract.check_request("POST", "/api/v1/runs/X/start", [], "application/json", b'{"resume":true}') == []


def test_an_answer_off_the_spec_is_caught_unless_a_named_exception_covers_it() -> None:
    contract = Contract.load()
    assert contract.check_response("POST", "/api/v1/runs/X/pull_request/merge", 409, "application/json", b"{}")
    # The server's own answers the spec does not list: each covered by one named exception.
    assert contract.check_response("POST", "/api/v1/runs/X/pause", 503, "application/json", b"{}") == []
    assert contract.check_response("GET", "/api/v1/runs", 400, "text/plain", b"Failed") == []
    assert all(x.reason for x in SPEC_EXCEPTIONS) and len({x.name for x in SPEC_EXCEPTIONS}) == len(SPEC_EXCEPTIONS)


def test_events_are_held_to_the_payload_models_unknown_keys_included() -> None:
    contract = Contract.load()
    old = {"seq": 1, "id": "e", "ts": "2026-01-01T00:00:00Z", "run_id": "R", "event": "pull_request.created"}
    nested = check_event(contract, {**old, "properties": {"pull_request": {"number": 7}}})
    assert any("never sends: pull_request" in p for p in nested)
    warning = check_event(contract, {**old, "event": "run.notice", "properties": {"level": "warn"}})
    assert any("code" in p for p in warning)


def test_the_bot_reads_flat_pull_request_events_and_warn_notices() -> None:
    created = RunEvent(
        event="pull_request.created",
        properties={
            "pr_url": "https://github.com/o/r/pull/3",
            "pr_number": 3,
            "owner": "o",
            "repo": "r",
            "base_branch": "main",
            "head_branch": "fabro/run/x",
            "title": "t",
            "draft": True,
        },
    )
    read = payload_of(created)
    assert isinstance(read, PullRequestCreated) and read.pr_number == 3 and read.draft
    notice = payload_of(RunEvent(event="run.notice", properties={"level": "warn", "code": "c", "message": "m"}))
    assert isinstance(notice, RunNotice) and notice.level == "warn"
    assert payload_of(RunEvent(event="run.notice", properties={"level": 3})) is None  # costs that event only


def test_an_automation_revision_is_a_hex_string() -> None:
    preset = AutomationPreset.model_validate({"id": "a", "revision": "ab" * 32, "name": "A"})
    assert preset.revision == "ab" * 32


async def test_a_root_relative_location_keeps_the_path_prefix_of_the_api_url(fabro: FakeFabro) -> None:
    """Fabro behind a proxy at `/fabro`: the creation's `/api/v1/…` Location is asked under `/fabro`."""
    heard: list[str] = []

    async def forward(request: web.Request) -> web.Response:
        heard.append(request.path)
        async with httpx.AsyncClient(base_url=fabro.url) as upstream:
            answer = await upstream.request(
                request.method,
                request.path.removeprefix("/fabro"),
                params=list(request.query.items()),
                headers={k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")},
                content=await request.read(),
            )
        keep = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "location", "retry-after")}
        return web.Response(status=answer.status_code, body=answer.content, headers=keep)

    app = web.Application()
    app.add_routes([web.route("*", "/fabro/{tail:.*}", forward)])
    runner, port = await serve(app)
    try:
        run = make_run("succeeded", diff={"files_changed": 1, "additions": 2, "deletions": 0})
        fabro.add(run)
        async with FabroClient(f"http://127.0.0.1:{port}/fabro", fabro.token, timeout=5) as client:
            _, location, _ = await client.create_pull_request(run["id"])
            assert location == f"http://127.0.0.1:{port}/fabro/api/v1/runs/{run['id']}/pull_request/creation"
            creation, _ = await client.pull_request_creation(location)
        assert creation.status in ("pending", "succeeded")
        assert heard[-1] == f"/fabro/api/v1/runs/{run['id']}/pull_request/creation"
    finally:
        await runner.cleanup()


async def test_the_global_stream_gives_each_event_once_after_a_resume_in_place(fabro: FakeFabro) -> None:
    run = make_run("running")
    fabro.add(run)
    async with FabroClient(fabro.url, fabro.token, timeout=5) as client, client.attach(idle_timeout=5) as events:
        fabro.fail(run["id"])
        fabro.checkpoint(run["id"])
        async with httpx.AsyncClient(base_url=fabro.url) as raw:
            headers = {"Authorization": f"Bearer {fabro.token}"}
            answer = await raw.post(f"/api/v1/runs/{run['id']}/start", json={"resume": True}, headers=headers)
        assert answer.status_code == 200
        fabro._set_status(run["id"], "running")
        fabro.emit(run["id"], "run.notice", {"level": "warn", "code": "git_push_failed", "message": "push"})
        fabro.finish(run["id"])
        seen: list[tuple[str | None, int | None]] = []
        async for event in events:
            seen.append((event.run_id, event.seq))
            if event.event == "run.completed":
                break
    assert fabro.forwarders[run["id"]] == 2  # Fabro sent the later ones twice…
    assert len(seen) == len(set(seen))  # …and each reached the bot once
    assert [e["event"] for e in fabro.events[run["id"]]][-2:] == ["run.notice", "run.completed"]


async def test_the_global_stream_never_carries_a_deny_or_a_cancel_of_a_run_that_never_started(fabro: FakeFabro) -> None:
    denied, cancelled, started = make_run("pending"), make_run("runnable"), make_run("running")
    fabro.add(denied, cancelled, started)
    headers = {"Authorization": f"Bearer {fabro.token}"}
    async with FabroClient(fabro.url, fabro.token, timeout=5) as client, client.attach(idle_timeout=5) as events:
        async with httpx.AsyncClient(base_url=fabro.url, headers=headers) as raw:
            assert (await raw.post(f"/api/v1/runs/{denied['id']}/deny", json={"reason": "no"})).status_code == 200
            assert (await raw.post(f"/api/v1/runs/{cancelled['id']}/cancel")).status_code == 200
        fabro.finish(started["id"])
        seen = []
        async for event in events:
            seen.append((event.run_id, event.event))
            if event.event == "run.completed":
                break
    assert seen == [(started["id"], "run.completed")]
    assert [e["event"] for e in fabro.events[denied["id"]]] == ["run.denied", "run.failed"]  # in its own log


async def test_a_retry_is_the_token_users_new_run_with_nothing_of_the_old_one_but_its_settings(
    fabro: FakeFabro,
) -> None:
    old = make_run(
        "failed",
        labels={"team": "api"},
        pull_request={"owner": "o", "repo": "r", "number": 1, "html_url": "https://github.com/o/r/pull/1"},
    )
    fabro.add(old)
    async with FabroClient(fabro.url, fabro.token, timeout=5) as client:
        new = await client.retry(old["id"])
    assert new.retried_from == old["id"] and new.status.kind == "runnable"
    assert new.created_by is not None and new.created_by.login == "dev"
    assert new.pull_request is None and new.current_question is None and new.labels == {"team": "api"}
    assert new.timestamps.created_at is not None and new.timestamps.completed_at is None


async def test_an_automation_started_by_api_has_the_manual_trigger(fabro: FakeFabro) -> None:
    fabro.add_automation("nightly-deps", "Nightly deps")
    async with FabroClient(fabro.url, fabro.token, timeout=5) as client:
        [preset] = await client.automations()
        run = await client.start_automation(preset.id)
    assert preset.revision is not None and len(preset.revision) == 64 and preset.startable
    assert run.automation is not None and run.automation.trigger_id == "manual" and run.status.kind == "submitted"
