"""Stopping tasks: the stopper's own cancellation always goes on, and no stop waits without a bound."""

from __future__ import annotations

import asyncio

import pytest

from bot.core.tasks import InFlight, stop_task


async def test_stopping_a_task_waits_for_it_to_end() -> None:
    ended = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled() and ended.is_set()


async def test_a_stop_that_is_itself_cancelled_is_not_swallowed_by_the_task_it_stops() -> None:
    """The old `cancel(); with suppress(CancelledError): await task` kept the stopper running."""
    unwinding = asyncio.Event()

    async def slow_to_unwind() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            unwinding.set()
            await asyncio.sleep(0.5)  # cleanup that takes a moment

    task = asyncio.create_task(slow_to_unwind())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(stop_task(task))
    await unwinding.wait()
    stopper.cancel()  # the bot's own stop is cancelled while it waits
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()


async def test_a_task_that_swallows_its_cancellation_does_not_hang_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()  # swallowed: goes on waiting

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, timeout=0.2), 5)
    assert "task stubborn did not stop within 0.2 s" in caplog.text
    release.set()
    await task


async def test_work_in_flight_is_let_finish_within_the_grace() -> None:
    in_flight = InFlight()
    finished = []

    async def answer() -> None:
        await asyncio.sleep(0.2)
        finished.append(True)

    in_flight.spawn(answer(), name="answer")
    assert await in_flight.settle(5.0) == []
    assert finished == [True] and len(in_flight) == 0


async def test_work_still_running_after_the_grace_is_cancelled_and_named() -> None:
    in_flight = InFlight()
    cancelled = asyncio.Event()

    async def listener() -> None:
        with in_flight.held():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    task = asyncio.create_task(listener(), name="slow-listener")
    await asyncio.sleep(0)
    assert await in_flight.settle(0.1) == ["slow-listener"]
    assert cancelled.is_set() and len(in_flight) == 0
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_held_twice_is_in_flight_until_it_leaves_both() -> None:
    in_flight = InFlight()
    with in_flight.held():
        with in_flight.held():
            pass
        assert len(in_flight) == 1
    assert len(in_flight) == 0
