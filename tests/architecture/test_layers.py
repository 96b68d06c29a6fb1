"""The layout is the architecture: wings import only downwards, pure wings touch no I/O, no cycles.

Floors, lowest first: fabro → core → blocks | store | slack → people → acting | telling → asking
→ listeners → preview → config → app → cli. A module may import its own wing and any lower floor,
never a higher floor and never a sibling wing on its own floor. `redact`, `failpoints` and
`metrics` are small utilities every floor may use.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[2] / "bot"

FLOORS: dict[str, int] = {
    "fabro": 0,
    "core": 1,
    "blocks": 2,
    "store": 2,
    "slack": 2,
    "people": 3,
    "acting": 4,
    "telling": 4,
    "asking": 5,
    "listeners": 6,
    "preview": 7,
    "config": 8,
    "app": 9,
    "cli": 10,
    "__main__": 11,
}
UTILITIES = {"redact", "failpoints", "metrics", "__init__"}
TOP_LEVEL_ALLOWED = {"__init__", "__main__", "cli", "config", "app", "metrics", "redact", "failpoints"}

# Third-party packages that belong to one place only.
CONFINED: dict[str, set[str]] = {
    "slack_bolt": {"listeners", "app"},
    "httpx": {"fabro", "people"},
    "sqlite3": {"store"},
    "psycopg": {"store"},
    "psycopg_pool": {"store"},
    "rich": {"preview"},
    "apscheduler": {"telling", "app"},
}
PURE = {"core", "blocks"}
IMPURE_NAMES = {"os.environ", "os.getenv", "datetime.now", "time.time", "time.monotonic", "datetime.utcnow"}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(BOT.rglob("*.py")):
        rel = path.relative_to(BOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, *, top_only: bool = False) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    found: list[tuple[str, int]] = []
    nodes = tree.body if top_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found.extend((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def _bot_target(name: str) -> str | None:
    """The project module an imported name refers to (a module, or a name inside one)."""
    while name:
        if name in MODULES:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def _edges() -> dict[str, set[tuple[str, int]]]:
    edges: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for module, path in MODULES.items():
        for name, line in _imports(path):
            target = _bot_target(name)
            if target and target != module and target != "bot":
                edges[module].add((target, line))
    return edges


def floor_violations(edges: dict[str, set[tuple[str, int]]]) -> list[str]:
    wrong = []
    for module, targets in edges.items():
        here = wing(module)
        for target, line in sorted(targets):
            there = wing(target)
            if here == there or there in UTILITIES:
                continue
            if here in UTILITIES and here != "__init__":
                wrong.append(f"{module}:{line} imports {target} (a utility imports nothing of the bot's)")
            elif FLOORS[there] >= FLOORS[here]:
                wrong.append(
                    f"{module}:{line} imports {target} ({here} is floor {FLOORS[here]}, {there} {FLOORS[there]})"
                )
    return wrong


def test_imports_point_only_down_the_floors() -> None:
    """No module imports a higher floor or a sibling wing on its own floor."""
    wrong = floor_violations(_edges())
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def test_there_is_no_import_cycle() -> None:
    """Module-level imports form no cycle (function-level ones count too)."""
    graph = {module: {target for target, _ in targets} for module, targets in _edges().items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " → ".join(cycle))


def test_every_module_lives_in_a_wing() -> None:
    """At most the eight named modules stay at the top level; every wing is a known floor."""
    top = {m.split(".")[1] for m in MODULES if m.count(".") == 1 and not (BOT / m.split(".")[1]).is_dir()}
    assert top <= TOP_LEVEL_ALLOWED, f"modules at bot/ top level that belong in a wing: {top - TOP_LEVEL_ALLOWED}"
    wings = {wing(m) for m in MODULES} - UTILITIES
    assert wings <= set(FLOORS), f"wings with no floor: {wings - set(FLOORS)}"


def test_libraries_stay_in_their_rooms() -> None:
    """slack_bolt only in listeners and app, httpx only in fabro and people, SQL only in store, rich only in preview."""
    wrong = []
    for module, path in MODULES.items():
        for name, line in _imports(path):
            root = name.split(".")[0]
            if root in CONFINED and wing(module) not in CONFINED[root]:
                wrong.append(f"{module}:{line} imports {root}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_pure_wings_read_no_environment_and_no_clock() -> None:
    """core and blocks take their time and settings as arguments."""
    wrong = []
    for module, path in MODULES.items():
        if wing(module) not in PURE:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                dotted = f"{node.value.id}.{node.attr}"
                if dotted in IMPURE_NAMES:
                    wrong.append(f"{module}:{node.lineno} uses {dotted}")
    assert not wrong, "\n".join(wrong)


def test_the_checker_reports_upward_sideways_and_utility_imports() -> None:
    """The rule itself: core → telling (up), acting → telling (sideways) and redact → core are reported."""
    edges = {
        "bot.core.keys": {("bot.telling.engine", 3), ("bot.fabro.models", 4)},
        "bot.acting.steering": {("bot.telling.once", 7), ("bot.people.identity", 8)},
        "bot.redact": {("bot.core.keys", 9)},
    }
    wrong = floor_violations(edges)
    assert [w.split(" ")[0] for w in wrong] == ["bot.core.keys:3", "bot.acting.steering:7", "bot.redact:9"]
