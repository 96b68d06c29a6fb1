"""The `RunManifest` a run is created from: workflows bundled from a folder, the goal made safe.

Fabro's `POST /api/v1/runs` takes a self-contained manifest (shared/fabro/CREATE-RUN.md): the
workflow's DOT source and every file it references travel inline, keyed by their path. This module
reads workflows in Fabro's own layout (`<name>/workflow.fabro`, an optional `workflow.toml`, and the
files its `@path` attributes name), bundles them the way Fabro's CLI does, and builds the manifest.

The goal is the delicate part. Fabro renders it as a MiniJinja template, twice, and reads a leading
`@` as a file to inline, so a person's words containing `{{`, `{%` or `{#` would fail the run or say
something else. `neutralise` rewrites every such opening so that two renderings give back the words
exactly as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "MAX_TITLE",
    "SHIPPED_WORKFLOWS",
    "BadWorkflow",
    "Workflow",
    "as_written",
    "build_manifest",
    "clean_title",
    "load_workflow",
    "neutralise",
    "workflow_names",
]

MAX_TITLE = 100  # Fabro refuses longer titles
SHIPPED_WORKFLOWS = Path(__file__).resolve().parent / "workflows"
MANIFEST_ROOT = ".fabro/workflows"  # where a workflow's files sit in the manifest, as in a repository
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_OPENING = re.compile(r"\{(?=[{%#])")  # a brace that would open a tag, an expression or a comment
_ESCAPED_BRACE = "{{ '{' }}"  # an expression whose value is one literal brace
_REFERENCE = re.compile(r'(\b[A-Za-z_][\w.]*)\s*=\s*"@([^"\\]+)"')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class BadWorkflow(Exception):
    """A workflow that cannot be bundled: its folder, its graph or a file it references is missing."""


# -- the goal -------------------------------------------------------------------------------


def as_written(text: str) -> str:
    """The goal as it will reach the agent: line endings as `\\n`, no surrounding blank space, and no
    leading `@` (Fabro would read the goal as the name of a file to inline)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    while text.startswith("@"):
        text = text[1:].lstrip()
    return text


def _escape_once(text: str) -> str:
    return _OPENING.sub(lambda _: _ESCAPED_BRACE, text)


def neutralise(text: str) -> str:
    """`text` as a goal Fabro renders back to `as_written(text)`.

    Every `{` that would open template syntax becomes `{{ '{' }}`, whose value is the brace itself.
    Fabro renders the goal twice (when it inlines files, then when it expands templates), so the
    escape is applied twice: the first rendering undoes the outer one, the second the inner one.
    Fabro's `{{ vars.NAME }}` substitution claims only `{{ <namespace>.<name> }}`, which the escaped
    text never contains: every `{{` left in it opens `{{ '{' }}`.
    """
    return _escape_once(_escape_once(as_written(text)))


def clean_title(text: str, *, fallback: str = "Work from Slack") -> str:
    """One line Fabro accepts as a title: no control characters, at most 100 characters, never blank."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    if len(line) > MAX_TITLE:
        line = line[: MAX_TITLE - 1].rstrip() + "…"
    return line or fallback


# -- workflows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workflow:
    """One workflow, bundled: its manifest key, DOT source, `workflow.toml` and referenced files."""

    name: str
    source: str
    config: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # path relative to the workflow's folder -> text

    @property
    def key(self) -> str:
        return f"{MANIFEST_ROOT}/{self.name}/workflow.fabro"

    def entry(self) -> dict[str, Any]:
        """The workflow's entry in the manifest's `workflows` map, as Fabro's CLI writes it."""
        folder = f"{MANIFEST_ROOT}/{self.name}"
        entry: dict[str, Any] = {"source": self.source}
        if self.config is not None:
            entry["config"] = {"path": f"{folder}/workflow.toml", "source": self.config}
        entry["files"] = {
            f"{folder}/{path}": {"content": content, "ref": {"type": "file_inline", "original": path, "from": self.key}}
            for path, content in sorted(self.files.items())
        }
        return entry


def _folders(folder: Path | None) -> list[Path]:
    """Where workflows are looked for: the deployer's folder first, then the ones shipped with the bot."""
    return ([folder] if folder is not None else []) + [SHIPPED_WORKFLOWS]


def workflow_names(folder: Path | None) -> list[str]:
    """Every workflow that can be used, by name (a deployer's workflow hides a shipped one of the same name)."""
    names: set[str] = set()
    for place in _folders(folder):
        if place.is_dir():
            names |= {p.parent.name for p in place.glob("*/workflow.fabro") if _NAME.match(p.parent.name)}
    return sorted(names)


def load_workflow(folder: Path | None, name: str) -> Workflow:
    """Bundle the workflow `name`: its graph, its `workflow.toml`, and every `attr="@path"` file it names.

    Raises `BadWorkflow`, saying what is wrong, for an unknown name, an unreadable file, or a reference
    that leaves the workflow's folder.
    """
    if not _NAME.match(name):
        raise BadWorkflow(f"`{name}` is not a workflow name (lower-case letters, digits, - and _).")
    home = next((p / name for p in _folders(folder) if (p / name / "workflow.fabro").is_file()), None)
    if home is None:
        raise BadWorkflow(f"There is no workflow `{name}` (looked for {name}/workflow.fabro).")
    source = _read(home / "workflow.fabro", name)
    config_path = home / "workflow.toml"
    config = _read(config_path, name) if config_path.is_file() else None
    files: dict[str, str] = {}
    for _attribute, reference in _REFERENCE.findall(source):
        path = PurePosixPath(reference)
        if path.is_absolute() or ".." in path.parts or "~" in reference or "\\" in reference:
            raise BadWorkflow(f"Workflow `{name}` references `{reference}`, outside its folder.")
        if str(path) not in files:
            files[str(path)] = _read(home / path, name)
    return Workflow(name, source, config, files)


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadWorkflow(f"Workflow `{name}`: cannot read {path.name} ({type(exc).__name__}).") from exc


# -- the manifest ---------------------------------------------------------------------------


def build_manifest(
    workflow: Workflow,
    *,
    goal: str,
    title: str,
    repository: str,
    branch: str | None,
    labels: dict[str, str],
    cwd: str = "/tmp/fabro-slack-bot",
) -> dict[str, Any]:
    """The body of `POST /api/v1/runs` (and `/validate`): a run of `workflow` on `repository`.

    `goal` is the person's text, neutralised here; `labels` go to `args.label` as `KEY=VALUE`.
    """
    return {
        "version": 1,
        "cwd": cwd,
        "title": clean_title(title),
        "target": {"path": workflow.key},
        "workflows": {workflow.key: workflow.entry()},
        "goal": {"type": "value", "text": neutralise(goal)},
        "git": {"origin_url": f"https://github.com/{repository}", "branch": branch or "", "dirty": "clean"},
        "args": {"label": [f"{k}={v}" for k, v in labels.items() if k and "=" not in k]},
    }
