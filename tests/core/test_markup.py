"""Slack markup back to what the person typed: the text an agent is given."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.markup import mentioned_users, plain_text


def slack_escape(text: str) -> str:
    """What Slack does to typed text before delivering it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@pytest.mark.parametrize(
    ("markup", "typed"),
    [
        ("make test &amp;&amp; make lint", "make test && make lint"),
        ("if a &lt; b &gt; c", "if a < b > c"),
        ("see <https://example.com/a?b=1&amp;c=2|the docs>", "see the docs (https://example.com/a?b=1&c=2)"),
        ("see <https://example.com>", "see https://example.com"),
        ("see <http://example.com|example.com>", "see example.com"),
        ("mail <mailto:a@b.co|a@b.co>", "mail a@b.co"),
        ("ask <@U123ABC> first", "ask @Grace Hopper first"),
        ("ask <@U999ZZZ> first", "ask @U999ZZZ first"),
        ("post in <#C0123|ops>", "post in #ops"),
        ("post in <#C0123>", "post in #C0123"),
        ("tell <!here> and <!channel>", "tell @here and @channel"),
        ("ping <!subteam^S123|@oncall>", "ping @oncall"),
        ("typed &amp;lt; literally", "typed &lt; literally"),
        ("", ""),
    ],
)
def test_markup_becomes_the_words_the_person_typed(markup: str, typed: str) -> None:
    assert plain_text(markup, {"U123ABC": "Grace Hopper"}) == typed


def test_mentioned_users_are_found_once_each_in_order() -> None:
    assert mentioned_users("<@U2> and <@U1|ada> and <@U2>") == ["U2", "U1"]


@given(st.text())
def test_any_typed_text_survives_slacks_escaping_unchanged(typed: str) -> None:
    """Text without links or mentions comes back exactly as typed, whatever its characters."""
    assert plain_text(slack_escape(typed)) == typed


@given(st.text(), st.dictionaries(st.from_regex(r"U[A-Z0-9]{3,8}", fullmatch=True), st.text(max_size=30)))
def test_no_markup_ever_raises_and_no_mention_markup_survives(markup: str, names: dict[str, str]) -> None:
    said = plain_text(markup, names)
    assert isinstance(said, str)
    for user in mentioned_users(markup):
        assert f"<@{user}>" not in said or f"<@{user}>" in "".join(names.values())


@given(
    st.text(alphabet=st.characters(blacklist_characters="<>|", blacklist_categories=["Cs"]), min_size=1),
    st.from_regex(r"https://[a-z]{1,10}\.example/[a-z0-9]{0,10}", fullmatch=True),
)
def test_a_labelled_link_reads_label_then_address(label: str, url: str) -> None:
    expected = label if label in (url, url.removeprefix("https://")) else f"{label} ({url})"
    assert plain_text(f"<{url}|{slack_escape(label)}>") == expected
