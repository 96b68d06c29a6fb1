"""What Fabro's server does with a `RunManifest`, for the fake: the spec's shape, then the checks of
`create_run_from_manifest` in the order shared/fabro/CREATE-RUN.md (section 1.2) lists them, a
small workflow linter, and the two MiniJinja renderings the goal goes through.

MiniJinja is modelled by Jinja2 (the same template language; undefined names are errors, as in
Fabro's strict mode), so a goal the bot did not neutralise fails here as it would there.
"""

from __future__ import annotations

import functools
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parent.parent / "fixtures" / "fabro-api.yaml"
_VARS_TOKEN = re.compile(r"\{\{\s*(env|vars|secrets|inputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_NODE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\[(.*?)\]\s*;?\s*$", re.DOTALL)
_EDGE = re.compile(r"^\s*(\w+(?:\s*->\s*\w+)+)\s*(?:\[(.*?)\])?\s*;?\s*$", re.DOTALL)
_ATTR = re.compile(r'([A-Za-z_][\w.]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s\]]+)')
_RESERVED_IDS = {"graph", "node", "edge", "digraph", "subgraph", "strict"}


@functools.cache
def _schemas() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(SPEC.read_text("utf-8"), Loader=loader)
    return dict(spec["components"]["schemas"])


def warm() -> None:
    """Read the spec now (it is large), so no request the fake serves waits for it."""
    _validators()


def schema_errors(name: str, value: Any) -> list[str]:
    """Where `value` breaks the spec's `components.schemas[name]` (references resolved in place)."""
    validator = _validators()[name] if name in _validators() else _validator(name)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(value)]


@functools.cache
def _validators() -> dict[str, Draft202012Validator]:
    return {name: _validator(name) for name in ("RunManifest",)}


def _validator(name: str) -> Draft202012Validator:
    schemas = _rebased(_schemas())
    return Draft202012Validator({"$defs": schemas, **schemas[name]})


def _rebased(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" else _rebased(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebased(v) for v in node]
    return node


class Refused(Exception):
    """What Fabro answers instead of 201: the status and its detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class Graph:
    name: str
    attrs: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def _attrs(text: str | None) -> dict[str, str]:
    found = {}
    for key, raw in _ATTR.findall(text or ""):
        found[key] = raw[1:-1].replace('\\"', '"').replace("\\n", "\n") if raw.startswith('"') else raw
    return found


def parse_dot(source: str) -> Graph:
    """Enough of DOT for workflows: `graph [...]`, `node [...]`, `a -> b [...]`; else a 400."""
    head = re.match(r"\s*(?:strict\s+)?digraph\s+([A-Za-z_][A-Za-z0-9_]*)?\s*\{(.*)\}\s*$", source, re.DOTALL)
    if head is None:
        raise Refused(400, "Validation failed")
    graph = Graph(head.group(1) or "workflow")
    body = re.sub(r"//[^\n]*", "", head.group(2))
    for statement in _statements(body):
        if not statement.strip():
            continue
        if (m := re.match(r"^\s*graph\s*\[(.*)\]\s*$", statement, re.DOTALL)) is not None:
            graph.attrs |= _attrs(m.group(1))
        elif (m := re.match(r"^\s*([A-Za-z_]\w*)\s*=\s*(\S+)\s*$", statement)) is not None:
            graph.attrs[m.group(1)] = m.group(2).strip('"')
        elif (m := _EDGE.match(statement)) is not None:
            chain = [n.strip() for n in m.group(1).split("->")]
            for a, b in itertools.pairwise(chain):
                graph.edges.append((a, b, _attrs(m.group(2))))
        elif (m := _NODE.match(statement)) is not None:
            graph.nodes.setdefault(m.group(1), {}).update(_attrs(m.group(2)))
        else:
            raise Refused(400, "Validation failed")
    return graph


def _statements(body: str) -> list[str]:
    """Statements split at newlines and `;` outside quotes and brackets."""
    out, depth, quoted, current = [], 0, False, []
    i = 0
    while i < len(body):
        ch = body[i]
        if quoted:
            current.append(ch)
            if ch == "\\" and i + 1 < len(body):
                current.append(body[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current.append(ch)
        elif ch == "[":
            depth += 1
            current.append(ch)
        elif ch == "]":
            depth -= 1
            current.append(ch)
        elif ch in "\n;" and depth == 0:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


def _is_start(node_id: str, attrs: dict[str, str]) -> bool:
    return attrs.get("shape") == "Mdiamond" or node_id == "start"


def _is_exit(node_id: str, attrs: dict[str, str]) -> bool:
    return attrs.get("shape") == "Msquare" or node_id in ("exit", "end")


def lint(graph: Graph, files: dict[str, Any], folder: str) -> list[dict[str, Any]]:
    """The validator's findings, as `/validate` reports them (a subset of Fabro's rules)."""
    found: list[dict[str, Any]] = []

    def error(rule: str, message: str, node: str | None = None, severity: str = "error") -> None:
        found.append({"rule": rule, "severity": severity, "message": message, "node_id": node})

    for a, b, _ in graph.edges:
        for end in (a, b):
            graph.nodes.setdefault(end, {})
    starts = [n for n, a in graph.nodes.items() if _is_start(n, a)]
    exits = [n for n, a in graph.nodes.items() if _is_exit(n, a)]
    if len(starts) != 1:
        error("start_node", f"Workflow must have exactly one start node (found {len(starts)})")
    if len(exits) != 1:
        error("terminal_node", f"Workflow must have exactly one exit node (found {len(exits)})")
    for node_id, attrs in graph.nodes.items():
        if node_id in _RESERVED_IDS:
            error("reserved_keyword_node_id", f"Node id '{node_id}' is a reserved word", node_id)
        if "goal_gate" in attrs and attrs["goal_gate"] == "true" and "retry_target" not in attrs:
            error("goal_gate_has_retry", f"Node '{node_id}' has goal_gate=true but no retry_target", node_id, "warning")
        if attrs.get("retry_target") and attrs["retry_target"] not in graph.nodes:
            error("retry_target_exists", f"Node '{node_id}' retries '{attrs['retry_target']}', which does not exist")
        for key, value in attrs.items():
            if value.startswith("@") and f"{folder}/{value[1:]}" not in files:
                error("unresolved_file_ref", f"Node '{node_id}' {key} references missing file {value[1:]}", node_id)
        agent = not _is_start(node_id, attrs) and not _is_exit(node_id, attrs) and "shape" not in attrs
        if agent and not attrs.get("prompt"):
            error("prompt_on_llm_nodes", f"Node '{node_id}' has no prompt", node_id, "warning")
    if starts:
        incoming = [a for a, b, _ in graph.edges if b == starts[0]]
        if incoming:
            error("start_no_incoming", "The start node must have no incoming edges", starts[0])
        seen, todo = {starts[0]}, [starts[0]]
        while todo:
            here = todo.pop()
            for a, b, _ in graph.edges:
                if a == here and b not in seen:
                    seen.add(b)
                    todo.append(b)
        for node_id in graph.nodes:
            if node_id not in seen:
                error("reachability", f"Node '{node_id}' is not reachable from the start node", node_id)
    if exits and any(a == exits[0] for a, _, _ in graph.edges):
        error("exit_no_outgoing", "The exit node must have no outgoing edges", exits[0])
    return found


_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def render(text: str) -> str:
    """One MiniJinja rendering of a goal, with nothing in scope (the goal cannot name itself)."""
    return _JINJA.from_string(text).render()


def rendered_goal(text: str, variables: dict[str, str]) -> str:
    """The goal as the run's agent gets it: `{{ vars.X }}` substituted, then rendered twice (file inlining,
    then templates); a leading `@` is a file reference. Raises `Refused` as the server would answer."""

    def substitute(match: re.Match[str]) -> str:
        namespace, name = match.groups()
        if namespace == "vars" and name in variables:
            return variables[name]
        raise Refused(400, f"Run config variable interpolation failed: unknown {namespace}.{name}")

    text = _VARS_TOKEN.sub(substitute, text)
    for _ in range(2):
        if text.startswith("@"):
            raise Refused(400, "Validation failed")
        try:
            text = render(text)
        except jinja2.UndefinedError:
            raise Refused(400, "Validation failed") from None
        except jinja2.TemplateError as exc:
            raise Refused(500, f"Failed to persist run state: {exc}") from None
    if text.startswith("@"):
        raise Refused(400, "Validation failed")
    return text


def _portable(path: Any) -> bool:
    return (
        isinstance(path, str)
        and bool(path)
        and "\\" not in path
        and not path.startswith(("/", "~"))
        and not re.match(r"^[A-Za-z]:", path)
    )


@dataclass
class Checked:
    """A manifest that passed the checks before the graph: what the run is made of."""

    graph: Graph
    title: str | None
    goal: str | None
    labels: dict[str, str]
    diagnostics: list[dict[str, Any]]


def check_manifest(body: Any, variables: dict[str, str], *, for_create: bool) -> Checked:
    """Fabro's checks in order; raises `Refused` with the server's words. `/validate` reports graph
    findings instead of refusing, so only `for_create` refuses on them."""
    if not isinstance(body, dict):
        raise Refused(400, "invalid type: expected struct RunManifest")
    problems = schema_errors("RunManifest", body)
    if problems:
        raise Refused(400, f"Failed to parse manifest: {problems[0]}")
    if body["version"] != 1:
        raise Refused(400, f"unsupported manifest version {body['version']}")
    target = body["target"]["path"]
    if not _portable(target):
        raise Refused(400, f"invalid manifest target path: {target}")
    workflows: dict[str, Any] = body["workflows"]
    for key, workflow in workflows.items():
        if not _portable(key):
            raise Refused(400, f"invalid manifest workflow key: {key}")
        for file_key, entry in (workflow.get("files") or {}).items():
            if not _portable(file_key):
                raise Refused(400, f"invalid manifest file key: {file_key}")
            if entry["ref"].get("from") is not None and not _portable(entry["ref"]["from"]):
                raise Refused(400, f"invalid manifest file ref from: {entry['ref']['from']}")
    if target not in workflows:
        raise Refused(400, "manifest target path is missing from workflows map")
    args = body.get("args") or {}
    labels = dict(entry.split("=", 1) for entry in args.get("label") or [] if "=" in entry)
    workflow = workflows[target]
    if workflow.get("config") is not None:
        try:
            tomllib.loads(workflow["config"]["source"])
        except tomllib.TOMLDecodeError:
            raise Refused(400, "Failed to parse run config TOML") from None
    title = body.get("title")
    if title is not None:
        title = title.strip()
        if not title:
            raise Refused(400, "run title must not be blank")
        if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in title):
            raise Refused(400, "run title must be a single line")
        if len(title) > 100:
            raise Refused(400, "run title must be at most 100 characters")
    graph = parse_dot(workflow["source"])
    folder = target.rsplit("/", 1)[0] if "/" in target else ""
    diagnostics = lint(graph, workflow.get("files") or {}, folder)
    goal_text = (body.get("goal") or {}).get("text") if (body.get("goal") or {}).get("type") != "graph" else None
    goal = graph.attrs.get("goal", "") if goal_text is None else goal_text
    try:
        goal = rendered_goal(goal, variables)
    except Refused as refused:
        if for_create or refused.status != 400 or "Validation" not in refused.detail:
            raise
        diagnostics.append({"rule": "template_undefined_variable", "severity": "warning", "message": refused.detail})
    if for_create and any(d["severity"] == "error" for d in diagnostics):
        raise Refused(400, "Validation failed")
    return Checked(graph, title, goal, labels, diagnostics)
