"""The image and the project agree: the Dockerfile's Python is the one pyproject targets, it runs the
commands the package installs, it installs exactly the lock, and the lock pins every dependency
pyproject declares within its bounds. No Docker engine is needed: the files are read as text."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import shlex
import tomllib
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

from roombook.cli import _parser
from roombook.http import ops_routes

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
LOCK = (ROOT / "constraints.txt").read_text(encoding="utf-8")


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines() if not line.lstrip().startswith("#"))
    )
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list; a shell-form one is refused by the test that reads it."""
    value = json.loads(arguments)
    assert isinstance(value, list), arguments
    return value


def pins(lock: str) -> dict[str, tuple[Version, str]]:
    """name -> (pinned version, marker text) of every `name==version [; marker]` line that applies
    to this interpreter and platform (a universal lock may pin one package per Python version)."""
    found: dict[str, tuple[Version, str]] = {}
    for line in lock.splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*(.*))?$", line)
        if match and (match[3] is None or Marker(match[3]).evaluate()):
            found[_canonical(match[1])] = (Version(match[2]), match[3] or "")
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [req for group in project["optional-dependencies"].values() for req in group]
    return [Requirement(text) for text in [*project["dependencies"], *extras]]


def docker_ignored(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last pattern that matches the path
    or one of its parents decides, a `!` pattern bringing it back."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern.removeprefix("**/")) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            ignored = not negated
    return ignored


def test_the_image_runs_the_python_pyproject_targets() -> None:
    images = [args.split()[0] for name, args in instructions(DOCKERFILE) if name == "FROM"]
    assert len(images) == 2  # a build stage and the runtime stage
    versions = {re.match(r"python:(\d+\.\d+)-", image)[1] for image in images}  # type: ignore[index]
    assert versions == {PYPROJECT["tool"]["mypy"]["python_version"]}
    (version,) = versions
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py" + version.replace(".", "")
    assert Version(version + ".0") in Requirement("python" + PYPROJECT["project"]["requires-python"]).specifier
    assert f"--python-version {version}" in LOCK.splitlines()[1]  # the lock was resolved for it too


def test_the_image_runs_the_installed_commands_under_tini() -> None:
    steps = instructions(DOCKERFILE)
    (entrypoint,) = [exec_form(args) for name, args in steps if name == "ENTRYPOINT"]
    (cmd,) = [exec_form(args) for name, args in steps if name == "CMD"]
    assert entrypoint == ["tini", "--"]  # the init reaps Ray's children; any command can follow it
    assert any(name == "RUN" and "apt-get install" in args and " tini" in args for name, args in steps)
    assert cmd[0] in PYPROJECT["project"]["scripts"]
    args = _parser().parse_args(cmd[1:])
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", 8080)
    assert any(f"EXPOSE {args.port}" == f"{name} {value}" for name, value in steps)
    # the shard-actor nodes run `ray start` from the same image: a dependency installs that command
    ray_scripts = {
        ep.name for ep in importlib.metadata.distribution("ray").entry_points if ep.group == "console_scripts"
    }
    assert "ray" in ray_scripts


def test_the_image_runs_as_a_user_with_a_writable_data_volume() -> None:
    steps = instructions(DOCKERFILE)
    users = [args for name, args in steps if name == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(name == "RUN" and "chown roombook /data" in args for name, args in steps)
    assert ("VOLUME", '["/data"]') in steps
    assert ("ENV" in {name for name, _ in steps}) and "ROOMBOOK_DATA_DIR=/data" in DOCKERFILE


def test_the_healthcheck_asks_the_liveness_route() -> None:
    (check,) = [args for name, args in instructions(DOCKERFILE) if name == "HEALTHCHECK"]
    command = exec_form(check.split("CMD", 1)[1].strip())
    assert "http://127.0.0.1:8080/healthz" in " ".join(command)
    assert "/healthz" in {route.path for route in ops_routes.routes}  # type: ignore[attr-defined]


def test_the_image_and_ci_install_from_the_lock() -> None:
    runs = [args for name, args in instructions(DOCKERFILE) if name == "RUN" and "pip install" in args]
    assert runs and all("-c constraints.txt" in run for run in runs)
    copied = [args for name, args in instructions(DOCKERFILE) if name == "COPY"]
    assert any("constraints.txt" in shlex.split(args) for args in copied)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_command = (
        "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]' && .venv/bin/pytest"
    )
    assert test_command in readme and test_command in ci.splitlines()


def test_the_lock_pins_every_declared_dependency_within_its_bounds() -> None:
    pinned = pins(LOCK)
    assert len(pinned) > 100  # the whole tree, not the direct dependencies alone
    stale = []
    for req in declared_requirements():
        name = _canonical(req.name)
        if name not in pinned:
            stale.append(f"{req} is not in constraints.txt")
        elif pinned[name][0] not in req.specifier:
            stale.append(f"{req} but constraints.txt pins {pinned[name][0]}")
    assert not stale, "re-run the command at the top of constraints.txt:\n" + "\n".join(stale)


def test_the_lock_check_sees_a_missing_or_out_of_bounds_pin() -> None:
    pinned = pins("aiohttp==3.9.0\nuvloop==0.21.0 ; sys_platform != 'win32'\nuvloop==0.1 ; sys_platform == 'win32'\n")
    assert pinned["uvloop"] == (Version("0.21.0"), "sys_platform != 'win32'")  # the line for this platform
    assert pinned["aiohttp"][0] not in Requirement("aiohttp>=3.10").specifier
    assert "msgspec" not in pinned


def test_the_build_context_leaves_out_environments_secrets_and_data() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".venv/bin/python", "data/jwt-secret", "data/global.db", ".git/config", "roombook/__pycache__/x.pyc"):
        assert docker_ignored(patterns, path), path
    # ...and keeps what the Dockerfile copies
    for path in ("pyproject.toml", "constraints.txt", "README.md", "roombook/cli.py", "roombook/http/app.py"):
        assert not docker_ignored(patterns, path), path


def installed_tree(root: str, extras: set[str]) -> dict[str, str]:
    """name -> installed version of every distribution `root[extras]` needs here, transitively."""
    found: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        dist = importlib.metadata.distribution(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in wanted | {""}):
                continue
            key = _canonical(req.name)
            if key not in found:
                found[key] = importlib.metadata.version(req.name)
                todo.append((req.name, set(req.extras)))
            elif req.extras:
                todo.append((req.name, set(req.extras)))
    return found


def test_the_environment_the_tests_run_in_is_the_lock() -> None:
    # .ci/run installs with -c constraints.txt: a dependency missing from the lock, or installed at
    # another version, means the lock is not what CI and the image install
    pinned = pins(LOCK)
    tree = installed_tree("roombook", {"test"})
    assert len(tree) > 100
    drift = {name: (version, str(pinned[name][0]) if name in pinned else None) for name, version in tree.items()}
    drift = {name: v for name, v in drift.items() if v[1] is None or Version(v[0]) != Version(v[1])}
    assert not drift, f"installed vs constraints.txt: {drift}"
