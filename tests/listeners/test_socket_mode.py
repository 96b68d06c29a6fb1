"""`/runs` over Socket Mode: envelopes in over a WebSocket, acks back, reconnection on disconnect."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartBot, wait_for
from tests.fakes.fabro import FakeFabro
from tests.fakes.runs import make_run
from tests.fakes.slack import FakeSlack


def command_payload(slack: FakeSlack, text: str) -> tuple[dict[str, Any], str]:
    response_url = slack.response_url()
    return {
        "token": "deprecated",
        "team_id": "T111",
        "team_domain": "test",
        "channel_id": "C123OPS",
        "channel_name": "ops",
        "user_id": "U123ADA",
        "user_name": "ada",
        "command": "/runs",
        "text": text,
        "api_app_id": "A111",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": "123.456.abc",
    }, response_url


async def test_a_command_over_the_socket_is_acked_and_answered(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(make_run("failed", title="Socket run"))
    bot = await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None)
    assert bot.http_port is None
    await slack.wait_for_socket()
    payload, response_url = command_payload(slack, "failed")
    envelope = await slack.send_envelope("slash_commands", payload)
    await wait_for(lambda: slack.ack_for(envelope))
    await wait_for(lambda: slack.responses_to(response_url))
    assert "Socket run" in json.dumps(slack.responses_to(response_url)[0]["blocks"])
    assert slack.calls_to("apps.connections.open")[0].headers["Authorization"] == f"Bearer {slack.app_token}"


async def test_a_usage_error_comes_back_in_the_ack_payload(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None)
    await slack.wait_for_socket()
    payload, _ = command_payload(slack, "faild")
    envelope = await slack.send_envelope("slash_commands", payload)
    ack = await wait_for(lambda: slack.ack_for(envelope))
    assert "Did you mean `failed`?" in json.dumps(ack["payload"])
    assert fabro.requests == []


async def test_a_disconnect_leads_to_a_new_connection_that_still_serves(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    fabro.add(make_run("blocked", title="After reconnect"))
    await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None)
    await slack.wait_for_socket(1)
    await slack.disconnect("refresh_requested")
    await slack.wait_for_socket(2)
    assert len(slack.calls_to("apps.connections.open")) >= 2
    payload, response_url = command_payload(slack, "blocked")
    envelope = await slack.send_envelope("slash_commands", payload)
    await wait_for(lambda: slack.ack_for(envelope))
    await wait_for(lambda: slack.responses_to(response_url))
    assert "After reconnect" in json.dumps(slack.responses_to(response_url)[0]["blocks"])


async def test_approving_from_a_card_over_the_socket(start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack) -> None:
    run = make_run("pending", title="Needs a yes")
    fabro.add(run)
    await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None)
    await slack.wait_for_socket()
    response_url = slack.response_url()
    payload = {
        "type": "block_actions",
        "user": {"id": "U123ADA", "name": "ada", "team_id": "T111"},
        "api_app_id": "A111",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000001",
            "channel_id": "C123OPS",
            "is_ephemeral": True,
        },
        "trigger_id": "1.2.3",
        "team": {"id": "T111"},
        "channel": {"id": "C123OPS"},
        "response_url": response_url,
        "actions": [
            {"block_id": f"decide:{run['id']}", "action_id": "steer:approve", "value": "approve", "type": "button"}
        ],
    }
    envelope = await slack.send_envelope("interactive", payload)
    await wait_for(lambda: slack.ack_for(envelope))
    await wait_for(lambda: slack.responses_to(response_url))
    assert "Approved by <@U123ADA>" in json.dumps(slack.responses_to(response_url)[0]["blocks"])
    assert [r.path for r in fabro.calls(method="POST")] == [f"/api/v1/runs/{run['id']}/approve"]


async def test_an_empty_answer_modal_over_the_socket_is_refused_in_the_ack(
    start_bot: StartBot, fabro: FakeFabro, slack: FakeSlack
) -> None:
    run = make_run("blocked")
    fabro.add(run)
    await start_bot(slack_app_token=slack.app_token, slack_signing_secret=None)
    await slack.wait_for_socket()
    view = {
        "id": "V1",
        "type": "modal",
        "callback_id": "steer_answer_modal",
        "private_metadata": json.dumps({"v": 1, "r": run["id"], "q": "q-1"}),
        "state": {"values": {"answer_text": {"answer_text": {"type": "plain_text_input", "value": " "}}}},
    }
    payload = {
        "type": "view_submission",
        "user": {"id": "U123ADA"},
        "team": {"id": "T111"},
        "api_app_id": "A111",
        "view": view,
    }
    envelope = await slack.send_envelope("interactive", payload)
    ack = await wait_for(lambda: slack.ack_for(envelope))
    assert ack["payload"]["response_action"] == "errors" and "answer_text" in ack["payload"]["errors"]
    assert fabro.calls(method="POST") == []
