"""The fake Fabro keeps Fabro's own rules, so tests against it mean something."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run


async def list_runs(fabro: FakeFabro, params: list[tuple[str, str]]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fabro.url, headers={"Authorization": f"Bearer {fabro.token}"}) as client:
        return await client.get("/api/v1/runs", params=tuple(params))


async def test_paging_is_clamped_not_rejected(fabro: FakeFabro) -> None:
    fabro.add(*[make_run("running") for _ in range(120)])
    response = await list_runs(fabro, [("page[limit]", "500")])
    assert len(response.json()["data"]) == 100
    assert response.json()["meta"] == {"has_more": True, "total": 120}
    assert len((await list_runs(fabro, [("page[limit]", "0")])).json()["data"]) == 1
    # The server clamps; the spec says 1..100, so a client that sent these would be caught.
    assert [v for v in fabro.violations if "page[limit]" in v]
    fabro.bad_requests.clear()


async def test_ties_break_by_id_descending_even_ascending(fabro: FakeFabro) -> None:
    runs = [make_run("failed", run_id=f"01KAAAAAAAAAAAAAAAAAAAAAA{i}") for i in range(3)]
    fabro.add(*runs)
    ids = [r["id"] for r in (await list_runs(fabro, [("sort", "status"), ("direction", "asc")])).json()["data"]]
    assert ids == sorted(ids, reverse=True)


async def test_include_archived_is_ignored_once_a_status_is_named(fabro: FakeFabro) -> None:
    archived = make_run("failed")
    archived["lifecycle"]["archived"] = True
    fabro.add(archived, make_run("failed"))
    assert len((await list_runs(fabro, [("status", "failed"), ("include_archived", "true")])).json()["data"]) == 1
    assert len((await list_runs(fabro, [("status", "archived")])).json()["data"]) == 1
    assert len((await list_runs(fabro, [("include_archived", "true")])).json()["data"]) == 2


async def test_a_bad_status_is_a_plain_text_400(fabro: FakeFabro) -> None:
    response = await list_runs(fabro, [("status", "sleeping")])
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert any("'sleeping' is not one of" in v for v in fabro.violations)
    fabro.bad_requests.clear()  # sent on purpose


async def post(
    fabro: FakeFabro, path: str, body: dict[str, Any] | None = None, *, raw: str | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {fabro.token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=fabro.url, headers=headers) as client:
        if raw is not None:
            return await client.post(f"/api/v1{path}", content=raw)
        if body is None:
            return await client.post(f"/api/v1{path}")
        return await client.post(f"/api/v1{path}", json=body)


async def test_answers_follow_fabros_rules_first_answer_wins(fabro: FakeFabro) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.ask(run["id"], {"id": "q", "text": "?", "question_type": "yes_no", "options": [], "allow_freeform": False})
    path = f"/runs/{run['id']}/questions/q/answer"
    old = await post(fabro, path, {"value": "yes", "selected_option_key": None})
    assert old.status_code == 422 and old.headers["content-type"].startswith("text/plain")
    assert fabro.violations  # the old body is off the spec too
    fabro.bad_requests.clear()
    wrong = await post(fabro, path, {"kind": "text", "text": "sure"})
    assert wrong.status_code == 400 and wrong.json()["errors"][0]["status"] == "400"
    assert (await post(fabro, path, {"kind": "yes"})).status_code == 204
    again = await post(fabro, path, {"kind": "no"})
    assert again.status_code == 409 and "x-request-id" in again.headers
    assert fabro.events[run["id"]][-2]["event"] == "interview.completed"


async def test_run_actions_answer_with_fabros_statuses(fabro: FakeFabro) -> None:
    pending, active, done = make_run("pending"), make_run("running"), make_run("failed")
    fabro.add(pending, active, done)
    assert (await post(fabro, f"/runs/{active['id']}/approve")).status_code == 409
    assert (await post(fabro, f"/runs/{pending['id']}/deny", {"reason": "no"})).json()["lifecycle"]["status"][
        "reason"
    ] == "approval_denied"
    assert (await post(fabro, f"/runs/{active['id']}/retry")).status_code == 409
    retried = await post(fabro, f"/runs/{done['id']}/retry")
    assert retried.status_code == 201 and retried.json()["retried_from"] == done["id"]
    fabro.cancel_converges = True
    assert (await post(fabro, f"/runs/{active['id']}/cancel")).status_code == 202
    assert (await post(fabro, f"/runs/{done['id']}/cancel")).status_code == 409
    assert (await post(fabro, "/runs/NOPE/approve")).status_code == 404


async def test_the_event_stream_is_live_only_and_never_carries_approval_requests(fabro: FakeFabro) -> None:
    run = make_run("running")
    fabro.add(run)
    fabro.fail(run["id"])  # before anyone listens: not replayed
    frames: list[dict[str, Any]] = []

    async def listen() -> None:
        headers = {"Authorization": f"Bearer {fabro.token}"}
        async with (
            httpx.AsyncClient(base_url=fabro.url, headers=headers) as client,
            aconnect_sse(client, "GET", "/api/v1/attach") as source,
        ):
            async for sse in source.aiter_sse():
                frames.append(json.loads(sse.data))

    task = asyncio.create_task(listen())
    await wait_for(lambda: fabro.streams)
    other = make_run("submitted")
    fabro.add(other)
    fabro.request_approval(other["id"])
    fabro.archive(run["id"])
    await wait_for(lambda: frames)
    fabro.drop_streams()
    await asyncio.wait_for(task, 5)
    assert [f["event"] for f in frames] == ["run.archived"]


@pytest.mark.parametrize(
    ("state", "steer", "interrupt", "pause"),
    [
        ("running", (202, None), (202, None), (200, None)),
        ("blocked", (409, "use_answer_endpoint"), (409, "use_answer_endpoint"), (200, None)),
        ("runnable", (409, "run_not_steerable"), (409, "run_not_steerable"), (409, None)),
        ("paused", (409, "run_not_steerable"), (409, "run_not_steerable"), (409, None)),
        ("failed", (409, "run_not_steerable"), (409, "run_not_interruptible"), (409, None)),
        ("archived", (409, None), (409, None), (409, None)),
    ],
)
async def test_steer_interrupt_and_pause_answer_by_run_state_as_fabro_does(
    fabro: FakeFabro,
    state: str,
    steer: tuple[int, str | None],
    interrupt: tuple[int, str | None],
    pause: tuple[int, str | None],
) -> None:
    run = make_run("failed" if state == "archived" else state)
    run["lifecycle"]["archived"] = state == "archived"
    fabro.add(run)

    def said(response: httpx.Response) -> tuple[int, str | None]:
        body = response.json() if response.content else {}
        errors = body.get("errors") or [{}]
        return response.status_code, errors[0].get("code")

    headers = {"Authorization": f"Bearer {fabro.token}"}
    async with httpx.AsyncClient(base_url=f"{fabro.url}/api/v1/runs/{run['id']}", headers=headers) as client:
        assert said(await client.post("/steer", json={"text": "use the replica"})) == steer
        assert said(await client.post("/interrupt")) == interrupt
        assert said(await client.post("/pause")) == pause
    if state == "blocked":  # paused at once, the question still pending
        assert fabro.runs[run["id"]]["lifecycle"]["status"] == {"kind": "paused", "prior_block": "human_input_required"}
