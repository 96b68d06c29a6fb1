"""The /runs grammar: words → the exact Fabro query, or a kind usage error."""

from __future__ import annotations

import pytest

from bot.core.query import Help, Parsed, RunLookup, RunQuery, Subscribe, Subscriptions, Unsubscribe, UsageError, parse


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("blocked", [("status", "blocked"), ("page[limit]", "10"), ("page[offset]", "0")]),
        ("BLOCKED", [("status", "blocked"), ("page[limit]", "10"), ("page[offset]", "0")]),
        (
            "failed sort:elapsed asc",
            [
                ("status", "failed"),
                ("sort", "elapsed"),
                ("direction", "asc"),
                ("page[limit]", "10"),
                ("page[offset]", "0"),
            ],
        ),
        (
            "asc sort:elapsed failed",
            [
                ("status", "failed"),
                ("sort", "elapsed"),
                ("direction", "asc"),
                ("page[limit]", "10"),
                ("page[offset]", "0"),
            ],
        ),
        (
            "running blocked",
            [("status", "running"), ("status", "blocked"), ("page[limit]", "10"), ("page[offset]", "0")],
        ),
        ("done", [("status", "succeeded"), ("status", "failed"), ("page[limit]", "10"), ("page[offset]", "0")]),
        ("sort:cost desc", [("sort", "size"), ("direction", "desc"), ("page[limit]", "10"), ("page[offset]", "0")]),
        ("sort:age", [("sort", "created_at"), ("page[limit]", "10"), ("page[offset]", "0")]),
        ("limit:100 page:3", [("page[limit]", "100"), ("page[offset]", "200")]),
        ("page:2 limit:5", [("page[limit]", "5"), ("page[offset]", "5")]),
        ("all", [("page[limit]", "10"), ("page[offset]", "0"), ("include_archived", "true")]),
        ("archived", [("status", "archived"), ("page[limit]", "10"), ("page[offset]", "0")]),
        (
            "parent:01kjw4mg800000000000000004",
            [("page[limit]", "10"), ("page[offset]", "0"), ("parent_id", "01KJW4MG800000000000000004")],
        ),
        ("status:failed", [("status", "failed"), ("page[limit]", "10"), ("page[offset]", "0")]),
    ],
)
def test_words_become_fabros_query_parameters(text: str, params: list[tuple[str, str]]) -> None:
    query = parse(text)
    assert isinstance(query, RunQuery)
    assert query.params() == params


def run_query(text: str) -> RunQuery:
    query = parse(text)
    assert isinstance(query, RunQuery), query
    return query


def usage_error(text: str) -> UsageError:
    error = parse(text)
    assert isinstance(error, UsageError), error
    return error


def test_active_expands_to_every_active_bucket() -> None:
    query = run_query("active")
    assert query.statuses == ("pending", "runnable", "initializing", "running", "blocked")


def test_a_repeated_bucket_is_sent_once() -> None:
    assert run_query("failed failed done").statuses == ("failed", "succeeded")


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?"])
def test_nothing_or_help_is_help(text: str) -> None:
    assert parse(text) == Help()


@pytest.mark.parametrize(
    ("text", "selector"),
    [
        ("01KJW4MG", "01KJW4MG"),
        ("01kjw4mg", "01KJW4MG"),
        ("01KJW4MG800000000000000004", "01KJW4MG800000000000000004"),
        ("run_1", "run_1"),
    ],
)
def test_a_run_id_or_prefix_is_a_lookup(text: str, selector: str) -> None:
    assert parse(text) == RunLookup(selector)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("blokced", "blocked"),
        ("faild", "failed"),
        ("pendng", "pending"),
        ("sort:cots", "sort:cost"),
        ("sort:elapsd", "sort:elapsed"),
        ("acs", "asc"),
    ],
)
def test_a_typo_names_the_word_and_suggests_the_closest(text: str, suggestion: str) -> None:
    error = parse(text)
    assert isinstance(error, UsageError)
    assert error.word == text
    assert error.suggestion == suggestion


@pytest.mark.parametrize(
    "text",
    [
        "limit:0",
        "limit:101",
        "limit:ten",
        "page:0",
        "page:-1",
        "parent:",
        "parent:<@U1>",
        "failed all",
        "sort:elapsed sort:title",
        "01KJW4MG failed",
        "01KJW4MG 01KJT9DB",
        "help failed",
        "zebra",
        "<@U123|ada>",
    ],
)
def test_invalid_input_is_a_usage_error_never_a_query(text: str) -> None:
    assert isinstance(parse(text), UsageError)


def test_all_with_a_status_explains_fabros_rule() -> None:
    error = usage_error("failed all")
    assert "archived" in " ".join(error.hints)


def test_the_limit_error_says_what_would_work() -> None:
    error = usage_error("limit:500")
    assert "1 to 100" in error.problem


def test_text_round_trips_through_the_parser() -> None:
    for text in ["failed sort:elapsed asc", "active limit:20 page:3", "all", "parent:01KJW4MG800000000000000004 done"]:
        query = run_query(text)
        assert parse(query.text()) == query


def test_describe_reads_as_plain_words() -> None:
    assert run_query("failed sort:elapsed asc").describe() == "failed runs, by elapsed time (ascending)"
    assert run_query("all").describe() == "all runs"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("subscribe", Subscribe(frozenset({"failed", "questions", "approvals"}))),
        ("SUBSCRIBE failed", Subscribe(frozenset({"failed"}))),
        (
            "subscribe questions approvals repo:acme/api",
            Subscribe(frozenset({"questions", "approvals"}), repo="acme/api"),
        ),
        (
            "subscribe workflow:Deploy label:team=platform label:env=prod",
            Subscribe(
                frozenset({"failed", "questions", "approvals"}),
                workflow="Deploy",
                labels=(("env", "prod"), ("team", "platform")),
            ),
        ),
        ("subscriptions", Subscriptions()),
        ("unsubscribe all", Unsubscribe(None)),
        ("unsubscribe 3 #4 3", Unsubscribe((3, 4))),
    ],
)
def test_subscription_words(text: str, expected: Parsed) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem_part", "suggestion"),
    [
        ("subscribe faild", "can't subscribe to `faild`", "failed"),
        ("subscribe repo:", "needs a value", None),
        ("subscribe repo:a/b repo:c/d", "`repo` is given twice", None),
        ("subscribe label:team", "needs a key and a value", None),
        ("subscriptions all", "stands alone", None),
        ("unsubscribe", "Say which subscription", None),
        ("unsubscribe seven", "is not a subscription id", None),
        ("unsubscribe 0", "is not a subscription id", None),
    ],
)
def test_subscription_mistakes_say_what_would_work(text: str, problem_part: str, suggestion: str | None) -> None:
    error = parse(text)
    assert isinstance(error, UsageError)
    assert problem_part in error.problem
    assert error.suggestion == suggestion


def test_every_example_in_the_help_is_valid() -> None:
    from bot.core.query import EXAMPLES

    for example, _ in EXAMPLES:
        assert not isinstance(parse(example), UsageError), example


# -- for any text at all --------------------------------------------------------------------

import re  # noqa: E402

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bot.blocks.limits import problems  # noqa: E402
from bot.blocks.replies import usage_error_message  # noqa: E402
from bot.blocks.routing import decode_page, encode_page  # noqa: E402
from bot.core.query import MAX_LIMIT, MAX_OFFSET, SORT_KEYS  # noqa: E402
from bot.fabro.models import BUCKETS  # noqa: E402

_WORDS = st.sampled_from(
    [
        "failed",
        "blocked",
        "active",
        "done",
        "all",
        "asc",
        "desc",
        "sort:cost",
        "sort:",
        "limit:",
        "page:",
        "parent:",
        "limit:²",
        "page:٣",
        "mine",
        "by:me",
        "by:octocat",
        "-by:dependabot",
        "-by:me",
        "repo:acme/api",
        "-repo:acme/sandbox",
        "workflow:implement",
        "-workflow:nightly",
        "byy:x",
        "by:",
        "limit:0",
        "limit:101",
        "page:99999999",
        "subscribe",
        "unsubscribe",
        "²",
        "01KJ",
        "help",
        "status:nope",
        "parent:01KJW4MG",
        "label:a=b",
        "repo:x/y",
        "cancelled",
    ]
)
_TEXT = st.text(max_size=200) | st.lists(_WORDS | st.text(max_size=12), max_size=8).map(" ".join)
_DOCUMENTED_PARAMS = {"status", "sort", "direction", "page[limit]", "page[offset]", "parent_id", "include_archived"}


@given(_TEXT)
def test_parsing_any_text_never_raises_and_sends_only_documented_values(text: str) -> None:
    parsed = parse(text)
    if isinstance(parsed, RunQuery):
        assert set(parsed.statuses) <= set(BUCKETS)
        assert parsed.sort is None or parsed.sort in SORT_KEYS.values()
        assert parsed.direction in (None, "asc", "desc")
        assert 1 <= parsed.limit <= MAX_LIMIT and 0 <= parsed.offset <= MAX_OFFSET
        assert parsed.parent_id is None or re.fullmatch(r"[0-9A-Za-z_-]{1,64}", parsed.parent_id)
        assert {name for name, _ in parsed.params()} <= _DOCUMENTED_PARAMS
        assert all(value.isascii() for _, value in parsed.params())
        assert decode_page(encode_page(parsed)) == parsed
    elif isinstance(parsed, RunLookup):
        assert re.fullmatch(r"[0-9A-Za-z_-]{4,64}", parsed.selector)
    elif isinstance(parsed, UsageError):
        assert problems(usage_error_message(parsed, "/runs")) == []


@pytest.mark.parametrize("text", ["limit:²", "page:²", "unsubscribe ²", "limit:١٠", "page:٣"])
def test_only_ascii_digits_are_numbers(text: str) -> None:
    assert isinstance(parse(text), UsageError)


@pytest.mark.parametrize(
    "value",
    [
        '{"v":1,"o":true,"l":10}',
        '{"v":1,"o":0,"l":true}',
        '{"v":1,"o":12345678901234567890,"l":10}',
        '{"v":1,"o":0,"l":10,"a":"yes"}',
        '{"v":1,"o":0,"l":10,"s":[true]}',
        '{"v":1,"o":0,"l":10,"d":1}',
    ],
)
def test_paging_values_with_booleans_or_huge_numbers_are_refused(value: str) -> None:
    assert decode_page(value) is None


def test_narrowing_words_round_trip_through_a_paging_button_that_fits() -> None:
    longest = "x" * 100
    logins = [f"by:{'a' * 39}" for _ in range(3)]
    places = [f"repo:{longest}", f"-repo:{longest}", f"-workflow:{longest}", f"workflow:{longest}"]
    words = " ".join(["mine", "by:me", *logins, *places])
    parsed = parse(f"active sort:created asc limit:100 page:9999 {words} by:octocat")
    assert isinstance(parsed, UsageError)  # nine narrowing words are one too many
    parsed = parse(f"failed sort:created asc limit:100 page:9999 {words}")
    assert isinstance(parsed, RunQuery)
    value = encode_page(parsed)
    assert len(value) < 2000 and decode_page(value) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-by:me", "`-by:me` is not a filter"),
        ("by:not_a_login!", "needs a GitHub login"),
        ("repo:two repo:three", "`repo` is given twice"),
        ("mine sort:elapsed", "`mine` is sorted by creation or by last activity"),
        ("subscribe by:", "needs a GitHub login"),
        ("subscribe repo:a/b repo:c/d", "`repo` is given twice"),
    ],
)
def test_narrowing_mistakes_say_what_would_work(text: str, problem: str) -> None:
    parsed = parse(text)
    assert isinstance(parsed, UsageError) and problem in parsed.problem


def test_a_forged_narrowing_in_a_paging_value_is_refused() -> None:
    assert decode_page('{"v":1,"o":0,"l":10,"n":{"b":["<!channel>"]}}') is None
    assert decode_page('{"v":1,"o":0,"l":10,"n":{"zz":1}}') is None
    assert decode_page('{"v":1,"o":0,"l":10,"n":{"m":2}}') is None
