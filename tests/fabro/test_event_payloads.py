"""Event payloads as Fabro sends them, and as nobody documented: reading one never raises, and the
thread reply it makes keeps every Slack limit and mentions nobody."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.blocks.limits import problems
from bot.blocks.live import update_reply
from bot.fabro.events import PAYLOADS, payload_of
from bot.fabro.models import Run, RunEvent

NOW = datetime(2026, 8, 22, 12, 0, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3000),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=20,
)
# Keys the payloads use, so that generated properties often half-fit a real payload.
KEYS = sorted({name for model in PAYLOADS.values() for name in model.model_fields})
PROPERTIES = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=10), JSON, max_size=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PAYLOADS)), properties=PROPERTIES)
def test_any_properties_are_read_or_skipped_never_raised(name: str, properties: dict[str, Any]) -> None:
    event = RunEvent(seq=1, run_id="01RUN", event=name, properties=properties)
    read = payload_of(event)
    assert read is None or isinstance(read, PAYLOADS[name])
    reply = update_reply(event, Run(id="01RUN"), now=NOW, web_base=None)
    if reply is not None:
        assert problems(reply) == []
        assert "<!channel>" not in json.dumps(reply) and "<!here>" not in json.dumps(reply)


@settings(max_examples=200, deadline=None)
@given(message=st.text(max_size=5000), level=st.sampled_from(["info", "warn", "error", "warning"]))
def test_a_notice_is_told_only_at_warn_or_error_and_within_limits(message: str, level: str) -> None:
    properties = {"level": level, "code": "git_push_failed", "message": message}
    reply = update_reply(RunEvent(event="run.notice", properties=properties), Run(id="R"), now=NOW, web_base=None)
    assert (reply is not None) == (level in ("warn", "error"))
    if reply is not None:
        assert problems(reply) == []
