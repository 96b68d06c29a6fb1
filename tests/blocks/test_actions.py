"""Button values round-trip exactly, and forged values decode to nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.blocks.routing import decode_page, encode_page
from bot.core.query import RunQuery, parse


def run_query(text: str) -> RunQuery:
    query = parse(text)
    assert isinstance(query, RunQuery), query
    return query


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(),
        run_query("failed sort:elapsed asc limit:5 page:4"),
        run_query("all"),
        run_query("active parent:01KJW4MG800000000000000004"),
        RunQuery(statuses=("failed",), limit=100, offset=23),
    ],
)
def test_a_page_value_decodes_to_the_same_query(query: RunQuery) -> None:
    assert decode_page(encode_page(query)) == query


def test_a_page_value_fits_a_button() -> None:
    assert (
        len(encode_page(run_query("active sort:updated_at desc limit:100 page:9999 parent:01KJW4MG800000000000000004")))
        < 2000
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not json",
        "[]",
        '{"v":2}',
        '{"v":1,"s":["sleeping"]}',
        '{"v":1,"k":"cost"}',
        '{"v":1,"l":500}',
        '{"v":1,"o":-1}',
        '{"v":1,"d":"up"}',
        '{"v":1,"p":"<!channel>"}',
        '{"v":1,"l":"10"}',
    ],
)
def test_a_forged_value_decodes_to_none(value: str | None) -> None:
    assert decode_page(value) is None


def test_control_blocks_carry_their_target_and_forged_ones_are_refused() -> None:
    from bot.blocks.routing import Target, control_block_id, parse_control_block

    assert parse_control_block(control_block_id("answer", Target("01KJW4MG", "q-1"))) == (
        "answer",
        Target("01KJW4MG", "q-1"),
    )
    assert parse_control_block(control_block_id("retry", Target("01KJW4MG"))) == ("retry", Target("01KJW4MG"))
    failure = Target("01KJW4MG", failure="20261201T102933.123Z")  # Retry and Resume name the failure they take up
    assert control_block_id("retry", failure) == "retry:01KJW4MG:20261201T102933.123Z"
    assert parse_control_block(control_block_id("retry", failure)) == ("retry", failure)
    assert control_block_id("cancel", failure) == "cancel:01KJW4MG"  # only Retry's block names one
    for forged in (
        "retry:../etc",
        "answer:01KJ",
        "retry:01KJ:q-1",
        "retry:01KJ:20261201T102933.123Z\n",
        "retry:01KJ:\u0662\u0660\u0662\u0666\u0661\u0662\u0660\u0661T102933.123Z",
        "cancel:01KJ:20261201T102933.123Z",
        "launch:01KJ",
        "",
        None,
        "decide:" + "A" * 65,
    ):
        assert parse_control_block(forged) is None, forged


def test_modal_context_round_trips_and_rejects_tampering() -> None:
    from bot.blocks.routing import ModalContext, Target, decode_modal, encode_modal

    context = ModalContext(Target("01KJW4MG", "q-1"), "C123", "1700000000.000100", None)
    assert decode_modal(encode_modal(context)) == context
    for bad in (
        '{"v":2,"r":"01KJ"}',
        '{"v":1,"r":"../x"}',
        '{"v":1,"r":"01KJ","c":"#general"}',
        '{"v":1,"r":"01KJ","u":"file:///etc/passwd"}',
        '{"v":1,"r":"01KJ","t":"now"}',
        '{"v":1,"r":"01KJ","n":"not-a-nonce"}',
        "not json",
        "",
    ):
        assert decode_modal(bad) is None, bad


@given(
    nonce=st.none() | st.from_regex(r"[0-9a-f]{16,64}", fullmatch=True),
    method=st.none() | st.sampled_from(["merge", "squash", "rebase"]),
)
def test_a_windows_nonce_round_trips_within_slacks_metadata_limit(nonce: str | None, method: str | None) -> None:
    from bot.blocks.routing import ModalContext, Target, decode_modal, encode_modal

    url = "https://hooks.slack.com/actions/T0/1/" + "x" * 200
    context = ModalContext(Target("01KJW4MG", "q-1"), "C123", "1700000000.000100", url, method, nonce)
    metadata = encode_modal(context)
    assert decode_modal(metadata) == context and len(metadata) <= 3000


@given(value=st.text(max_size=300))
def test_any_picker_metadata_reads_without_raising(value: str) -> None:
    from bot.blocks.routing import decode_picker, encode_picker, picker_nonce

    nonce = picker_nonce(value)
    assert nonce is None or len(nonce) >= 16
    assert decode_picker(value) is None or decode_picker(value) == decode_picker(encode_picker(decode_picker(value)))
    assert picker_nonce(encode_picker("C123", "ab" * 16)) == "ab" * 16


def test_option_values_stand_for_keys_and_long_keys_by_position() -> None:
    from bot.blocks.routing import choice_value, resolve_choice
    from bot.fabro.models import Question

    question = Question.model_validate(
        {
            "id": "q",
            "question_type": "multiple_choice",
            "options": [{"key": "short"}, {"key": "k" * 200}, {"key": "#odd"}],
        }
    )
    values = [choice_value(question, i) for i in range(3)]
    assert values == ["short", "#1", "#2"] and all(len(v) <= 150 for v in values)
    assert [resolve_choice(question, v) for v in values] == ["short", "k" * 200, "#odd"]
    assert resolve_choice(question, "gone") is None and resolve_choice(question, "#9") is None
