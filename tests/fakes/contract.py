"""Fabro's published OpenAPI spec as a contract: every request the bot sends and every answer the
fake gives is checked against it.

The spec is vendored in tests/fixtures/fabro-api.yaml (Fabro 0.333). Where the server does not do
what the spec says, the server wins (shared/fabro/API.md marks those places **Spec:**); each such
place is one entry of `SPEC_EXCEPTIONS`, with its reason, and nothing else is forgiven.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bot.fabro.events import PAYLOADS

SPEC_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "fabro-api.yaml"
_PARSE_ERRORS = (400, 415, 422)
_BASE = "urn:fabro-api"


@dataclass(frozen=True)
class SpecException:
    """One place where the server answers what the spec does not list; `applies` says where."""

    name: str
    reason: str
    applies: Callable[[str, str, int, str], bool]  # (method, path template, status, content type)


def _plain(method: str, template: str, status: int, content_type: str) -> bool:
    return status in _PARSE_ERRORS and content_type.startswith("text/plain")


def _unauthenticated(method: str, template: str, status: int, content_type: str) -> bool:
    return status == 401 and template.startswith("/api/v1/")


def _pause_undelivered(method: str, template: str, status: int, content_type: str) -> bool:
    return method == "POST" and template in ("/api/v1/runs/{id}/pause", "/api/v1/runs/{id}/unpause") and status == 503


def _answer_undelivered(method: str, template: str, status: int, content_type: str) -> bool:
    return method == "POST" and template == "/api/v1/runs/{id}/questions/{qid}/answer" and status == 503


def _no_user_route(method: str, template: str, status: int, content_type: str) -> bool:
    return template == "/api/v1/user" and status == 404


def _no_web_ui(method: str, template: str, status: int, content_type: str) -> bool:
    return template == "/api/v1/auth/me" and status == 404


def _create_run_engine_error(method: str, template: str, status: int, content_type: str) -> bool:
    return method == "POST" and template == "/api/v1/runs" and status == 500


def _automation_start_errors(method: str, template: str, status: int, content_type: str) -> bool:
    return method == "POST" and template == "/api/v1/automations/{id}/runs" and status in (400, 500)


# The known disagreements between the spec and Fabro 0.333's server, each with its reason.
SPEC_EXCEPTIONS: tuple[SpecException, ...] = (
    SpecException(
        "plain-text parse errors",
        "A bad query value or JSON body is refused by the server's extractors before any handler, as a "
        "plain-text 400/415/422 (API.md, Transport); the spec only lists JSON errors. This also covers "
        "steer text outside 1..8192 characters, a 422 where the spec says 400.",
        _plain,
    ),
    SpecException(
        "401 on every authenticated route",
        "The auth layer answers 401 (JSON, with or without `code`) on every /api/v1 route; the spec lists "
        "401 only on /api/v1/user.",
        _unauthenticated,
    ),
    SpecException(
        "pause/unpause 503",
        "`Failed to deliver pause request to the active run.` is a 503 without `code` (handler/lifecycle.rs); "
        "the spec lists only 200/404/409.",
        _pause_undelivered,
    ),
    SpecException(
        "answer 503",
        "An answer that could not be delivered to the run is a 503 (the claim is released); the spec lists "
        "204/400/404/409 only.",
        _answer_undelivered,
    ),
    SpecException(
        "no /api/v1/user route",
        "The spec lists GET /api/v1/user, but no server route serves it: 404 with an empty body whatever the token.",
        _no_user_route,
    ),
    SpecException(
        "no /api/v1/auth/me without the web UI",
        "GET /api/v1/auth/me is routed only when the server runs its web UI (server/web_auth.rs); otherwise it "
        "is a 404 with an empty body. The spec lists only 200/401.",
        _no_web_ui,
    ),
    SpecException(
        "create run 500",
        "Any other workflow-engine error while creating a run (a template syntax error, an invalid `@` "
        "reference) is a 500 `Failed to persist run state: …` (shared/fabro/CREATE-RUN.md, check 14); "
        "the spec lists 201/400.",
        _create_run_engine_error,
    ),
    SpecException(
        "automation start 400/500",
        "A malformed automation id is a 400, and run creation errors are 400/500 (handler/automations.rs); "
        "the spec lists 201/404/409/422.",
        _automation_start_errors,
    ),
)


class Contract:
    """The operations of the spec, and checks of one request or one answer against them."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_BASE, resource)
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in spec["paths"]:
            pattern = re.sub(r"\\{[^}]+\\}", "([^/]+)", re.escape(template))
            self._routes.append((re.compile(f"^{pattern}$"), template))
        # Literal paths first, so /runs/resolve is not /runs/{id}.
        self._routes.sort(key=lambda r: r[1].count("{"))

    @classmethod
    @functools.cache
    def load(cls) -> Contract:
        return cls(yaml.safe_load(SPEC_PATH.read_text()))

    # -- lookups -----------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The spec's path template and operation for a request, or None when the spec has none."""
        for pattern, template in self._routes:
            if pattern.match(path):
                operation = self.spec["paths"][template].get(method.lower())
                return (template, operation) if operation is not None else None
        return None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            node = self._registry.resolver().lookup(_BASE + node["$ref"]).contents
        return node

    def schema_errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        validator = Draft202012Validator(_anchored(schema), registry=self._registry)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message[:300]}"
            for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))[:5]
        ]

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    # -- the checks ------------------------------------------------------------------

    def check_request(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        content_type: str,
        body: bytes,
    ) -> list[str]:
        """What is wrong with a request, by the spec (empty when nothing is)."""
        found = self.route(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the spec"]
        template, operation = found
        where = f"{method} {template}"
        problems: list[str] = []
        params = [self._resolve(p) for p in operation.get("parameters", [])]
        by_name = {p["name"]: p for p in params if p.get("in") == "query"}
        values: dict[str, list[str]] = {}
        for name, value in query:
            values.setdefault(name, []).append(value)
        for name, given in values.items():
            param = by_name.get(name)
            if param is None:
                problems.append(f"{where}: query parameter {name!r} is not in the spec")
                continue
            schema = self._resolve(param.get("schema", {}))
            typed: Any
            if schema.get("type") == "array":
                item_type = self._resolve(schema.get("items", {})).get("type")
                typed = [_typed(v, item_type) for v in given]
            elif len(given) > 1:
                problems.append(f"{where}: query parameter {name!r} given {len(given)} times")
                continue
            else:
                typed = _typed(given[0], schema.get("type"))
            problems += [f"{where}: query {name}: {e}" for e in self.schema_errors(schema, typed)]
        for name, param in by_name.items():
            if param.get("required") and name not in values:
                problems.append(f"{where}: required query parameter {name!r} missing")
        for param in params:
            if param.get("in") == "path":
                segment = _path_value(template, path, param["name"])
                problems += [
                    f"{where}: path {param['name']}: {e}"
                    for e in self.schema_errors(self._resolve(param.get("schema", {})), segment)
                ]
        request_body = self._resolve(operation.get("requestBody") or {})
        if not body:
            if request_body.get("required"):
                problems.append(f"{where}: the spec requires a body and none was sent")
            return problems
        if not request_body:
            problems.append(f"{where}: a body was sent ({body[:80]!r}) but the operation takes none")
            return problems
        media = content_type.split(";")[0].strip()
        content = request_body.get("content", {})
        if media not in content:
            return [*problems, f"{where}: body sent as {media or 'no content type'}, the spec takes {list(content)}"]
        try:
            parsed = json.loads(body)
        except ValueError:
            return [*problems, f"{where}: the body is not JSON"]
        problems += [f"{where}: body {e}" for e in self.schema_errors(content[media].get("schema", {}), parsed)]
        return problems

    def check_response(self, method: str, path: str, status: int, content_type: str, body: bytes | None) -> list[str]:
        """What is wrong with an answer, by the spec and its named exceptions (empty when nothing is).
        `body` None means a stream, whose frames are checked one by one elsewhere."""
        found = self.route(method, path)
        template = found[0] if found else path
        if any(x.applies(method.upper(), template, status, content_type) for x in SPEC_EXCEPTIONS):
            return []
        if found is None:
            return [f"{method} {path}: answered {status}, but the spec has no such operation"]
        operation = found[1]
        where = f"{method} {template} -> {status}"
        responses = operation.get("responses", {})
        documented = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if documented is None:
            return [f"{where}: status not in the spec (it lists {', '.join(responses)})"]
        documented = self._resolve(documented)
        content = documented.get("content") or {}
        media = content_type.split(";")[0].strip()
        if not content:
            return [] if not body else [f"{where}: the spec says no body, the answer has {body[:80]!r}"]
        content = {k.split(";")[0].strip(): v for k, v in content.items()}  # `text/plain; charset=utf-8`
        if media not in content:
            return [f"{where}: answered {media or 'no content type'}, the spec says {list(content)}"]
        if body is None or media != "application/json":
            return []
        try:
            parsed = json.loads(body)
        except ValueError:
            return [f"{where}: the body is not JSON"]
        return [f"{where}: body {e}" for e in self.schema_errors(content[media].get("schema", {}), parsed)]


def _anchored(schema: Any) -> Any:
    """A fragment of the spec with its local references made absolute, so it validates on its own."""
    if isinstance(schema, dict):
        return {
            k: _BASE + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _anchored(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_anchored(v) for v in schema]
    return schema


def _typed(value: str, kind: Any) -> Any:
    """A query string value as the type its schema names (left a string when it does not parse)."""
    if kind == "integer" and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def _path_value(template: str, path: str, name: str) -> str:
    pattern = re.escape(template)
    for placeholder in re.findall(r"\\{([^}]+)\\}", pattern):
        group = f"(?P<{placeholder}>[^/]+)" if placeholder == name else "[^/]+"
        pattern = pattern.replace(f"\\{{{placeholder}\\}}", group, 1)
    match = re.match(f"^{pattern}$", path)
    return match.group(name) if match else ""


def check_event(contract: Contract, envelope: dict[str, Any]) -> list[str]:
    """What is wrong with an event the fake emits: its envelope by the spec, its properties by the
    payload models the bot reads them with (bot/fabro/events.py), unknown keys included."""
    name = envelope.get("event")
    problems = [f"event {name}: {e}" for e in contract.schema_errors(contract.schema("EventEnvelope"), envelope)]
    model = PAYLOADS.get(str(name))
    if model is None:
        return problems
    properties = envelope.get("properties") or {}
    try:
        model.model_validate(properties)
    except ValidationError as exc:
        problems += [f"event {name}: properties {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    unknown = sorted(set(properties) - set(model.model_fields))
    if unknown:
        problems.append(f"event {name}: properties the server never sends: {', '.join(unknown)}")
    return problems
