"""Fabro's event streams as the client reads them: httpx-sse parses the frames, and no line past
FABRO_MAX_EVENT_BYTES is ever buffered, however the bytes are split on the wire."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.fabro.client import FabroClient, _CappedLines
from bot.fabro.errors import FabroUnavailable, FabroUnreadable


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


async def _through(parts: list[bytes], limit: int) -> bytes:
    out = b""
    async for chunk in _CappedLines(_chunks(parts), limit):
        out += chunk
    return out


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=400), max_size=8), st.integers(1, 64))
async def test_any_split_of_any_body_passes_whole_or_stops_at_a_line_over_the_cap(
    body: bytes, cuts: list[int], limit: int
) -> None:
    longest = max(len(line) for line in body.split(b"\n"))
    parts = _split(body, cuts)
    if longest > limit:
        with pytest.raises(FabroUnreadable):
            await _through(parts, limit)
    else:
        assert await _through(parts, limit) == body


def _client(body: bytes, content_type: str = "text/event-stream") -> FabroClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": content_type})

    return FabroClient("https://fabro.example.com", "t", transport=httpx.MockTransport(answer))


async def _events(client: FabroClient) -> list[str]:
    async with client, client.attach(idle_timeout=5) as events:
        return [event.event async for event in events]


async def test_frames_with_ids_comments_and_multi_line_data_are_read_as_events() -> None:
    one = json.dumps({"seq": 1, "event": "run.failed", "run_id": "R1"})
    body = (
        ": a comment Fabro may send to keep the connection open\n"
        f"id: 1\nevent: message\ndata: {one}\n\n"
        'data: {"seq": 2, "event":\r\ndata: "run.blocked", "run_id": "R2"}\r\n\r\n'
        "data: not json\n\n"
        "data: [1, 2]\n\n"
    ).encode()
    assert await _events(_client(body)) == ["run.failed", "run.blocked"]


async def test_a_stream_that_is_not_an_event_stream_is_unavailable_not_a_crash() -> None:
    with pytest.raises(FabroUnavailable):
        await _events(_client(b"<html>login</html>", content_type="text/html"))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
async def test_any_text_on_the_stream_yields_events_or_a_fabro_error_never_another_exception(text: str) -> None:
    with contextlib.suppress(FabroUnavailable, FabroUnreadable):
        await _events(_client(text.encode()))
