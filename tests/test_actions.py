"""Button values round-trip exactly, and forged values decode to nothing."""

from __future__ import annotations

import pytest

from bot.actions import decode_page, encode_page
from bot.query import RunQuery, parse


@pytest.mark.parametrize(
    "query",
    [
        RunQuery(),
        parse("failed sort:elapsed asc limit:5 page:4"),
        parse("all"),
        parse("active parent:01KJW4MG800000000000000004"),
        RunQuery(statuses=("failed",), limit=100, offset=23),
    ],
)
def test_a_page_value_decodes_to_the_same_query(query):
    assert decode_page(encode_page(query)) == query


def test_a_page_value_fits_a_button():
    assert len(encode_page(parse("active sort:updated_at desc limit:100 page:9999 parent:01KJW4MG800000000000000004"))) < 2000


@pytest.mark.parametrize(
    "value",
    [None, "", "not json", "[]", '{"v":2}', '{"v":1,"s":["sleeping"]}', '{"v":1,"k":"cost"}', '{"v":1,"l":500}',
     '{"v":1,"o":-1}', '{"v":1,"d":"up"}', '{"v":1,"p":"<!channel>"}', '{"v":1,"l":"10"}'],
)
def test_a_forged_value_decodes_to_none(value):
    assert decode_page(value) is None
