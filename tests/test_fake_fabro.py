"""The fake Fabro keeps Fabro's own rules, so tests against it mean something."""

from __future__ import annotations

import httpx

from tests.fakes.runs import make_run


async def list_runs(fabro, params):
    async with httpx.AsyncClient(base_url=fabro.url, headers={"Authorization": f"Bearer {fabro.token}"}) as client:
        return await client.get("/api/v1/runs", params=params)


async def test_paging_is_clamped_not_rejected(fabro):
    fabro.add(*[make_run("running") for _ in range(120)])
    response = await list_runs(fabro, [("page[limit]", "500")])
    assert len(response.json()["data"]) == 100
    assert response.json()["meta"] == {"has_more": True, "total": 120}
    assert len((await list_runs(fabro, [("page[limit]", "0")])).json()["data"]) == 1


async def test_ties_break_by_id_descending_even_ascending(fabro):
    runs = [make_run("failed", run_id=f"01KAAAAAAAAAAAAAAAAAAAAAA{i}") for i in range(3)]
    fabro.add(*runs)
    ids = [r["id"] for r in (await list_runs(fabro, [("sort", "status"), ("direction", "asc")])).json()["data"]]
    assert ids == sorted(ids, reverse=True)


async def test_include_archived_is_ignored_once_a_status_is_named(fabro):
    archived = make_run("failed")
    archived["lifecycle"]["archived"] = True
    fabro.add(archived, make_run("failed"))
    assert len((await list_runs(fabro, [("status", "failed"), ("include_archived", "true")])).json()["data"]) == 1
    assert len((await list_runs(fabro, [("status", "archived")])).json()["data"]) == 1
    assert len((await list_runs(fabro, [("include_archived", "true")])).json()["data"]) == 2


async def test_a_bad_status_is_a_plain_text_400(fabro):
    response = await list_runs(fabro, [("status", "sleeping")])
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
