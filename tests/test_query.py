"""The /runs grammar: words → the exact Fabro query, or a kind usage error."""

from __future__ import annotations

import pytest

from bot.query import Help, RunLookup, RunQuery, Subscribe, Subscriptions, Unsubscribe, UsageError, parse


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
def test_words_become_fabros_query_parameters(text, params):
    query = parse(text)
    assert isinstance(query, RunQuery)
    assert query.params() == params


def test_active_expands_to_every_active_bucket():
    query = parse("active")
    assert query.statuses == ("pending", "runnable", "initializing", "running", "blocked")


def test_a_repeated_bucket_is_sent_once():
    assert parse("failed failed done").statuses == ("failed", "succeeded")


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "?"])
def test_nothing_or_help_is_help(text):
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
def test_a_run_id_or_prefix_is_a_lookup(text, selector):
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
def test_a_typo_names_the_word_and_suggests_the_closest(text, suggestion):
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
def test_invalid_input_is_a_usage_error_never_a_query(text):
    assert isinstance(parse(text), UsageError)


def test_all_with_a_status_explains_fabros_rule():
    error = parse("failed all")
    assert "archived" in " ".join(error.hints)


def test_the_limit_error_says_what_would_work():
    error = parse("limit:500")
    assert "1 to 100" in error.problem


def test_text_round_trips_through_the_parser():
    for text in ["failed sort:elapsed asc", "active limit:20 page:3", "all", "parent:01KJW4MG800000000000000004 done"]:
        query = parse(text)
        assert parse(query.text()) == query


def test_describe_reads_as_plain_words():
    assert parse("failed sort:elapsed asc").describe() == "failed runs, by elapsed time (ascending)"
    assert parse("all").describe() == "all runs"


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
def test_subscription_words(text, expected):
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
def test_subscription_mistakes_say_what_would_work(text, problem_part, suggestion):
    error = parse(text)
    assert isinstance(error, UsageError)
    assert problem_part in error.problem
    assert error.suggestion == suggestion


def test_every_example_in_the_help_is_valid():
    from bot.query import EXAMPLES

    for example, _ in EXAMPLES:
        assert not isinstance(parse(example), UsageError), example
