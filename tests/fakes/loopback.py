"""Serving an aiohttp application on 127.0.0.1 with a port the OS picks."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    # A request a test left hanging (a slow answer it asked for) is cut at once when the fake
    # stops, instead of holding the test's teardown for aiohttp's default minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port: int = runner.addresses[0][1]
    return runner, port
