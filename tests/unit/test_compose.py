"""docker-compose.yml is a valid Compose file (the compose-spec schema that check-jsonschema vendors)
and a coherent deployment: what it names exists, every roombook process shares one configuration,
and every Ray process presents the token."""

from __future__ import annotations

import copy
import importlib.resources
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from roombook.cli import _parser
from roombook.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SCHEMA = json.loads(
    (importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
)


def validate(compose: dict[str, Any]) -> None:
    jsonschema.validators.validator_for(SCHEMA)(SCHEMA).validate(compose)


def roombook_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in COMPOSE["services"].items() if s["image"].startswith("roombook:")}


def test_the_file_fits_the_compose_specification() -> None:
    validate(COMPOSE)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["services", "redis", "healthcheck", "interval"], 5),  # a duration is a string
        (["services", "front-1", "ports"], "8081:8080"),  # a list
        (["services", "ray-head", "shm_sizes"], "2gb"),  # misspelt
    ],
)
def test_the_validation_refuses_a_broken_file(path: list[str], value: object) -> None:
    broken = copy.deepcopy(COMPOSE)
    target = broken
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_it_runs_mariadb_redis_one_ray_head_and_two_fronts() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"mariadb", "redis", "ray-head", "front-1", "front-2"}
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
    host_ports = [port for s in services.values() for port in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))
    assert all(port.startswith("127.0.0.1:") for port in host_ports)  # nothing open beyond this machine
    assert services["ray-head"]["command"][:3] == ["ray", "start", "--head"] and services["ray-head"]["shm_size"]


def test_every_roombook_process_shares_one_configuration_and_the_ray_token() -> None:
    known = {env_name(field) for field in Settings.__struct_fields__}
    environments = {name: s["environment"] for name, s in roombook_services().items()}
    assert len(environments) == 3
    shared = {"ROOMBOOK_GLOBAL_DSN", "ROOMBOOK_SHARDS", "ROOMBOOK_JWT_SECRET", "ROOMBOOK_CACHE", "RAY_AUTH_TOKEN"}
    for key in shared:
        assert len({env[key] for env in environments.values()}) == 1, key
    for name, env in environments.items():
        assert env["RAY_AUTH_MODE"] == "token", name
        assert {key for key in env if key.startswith("ROOMBOOK_")} <= known, name
    assert all(s.get("init") is True for s in roombook_services().values())  # reaps what Ray's children leave
    relays = [name for name, env in environments.items() if env.get("ROOMBOOK_EVENTS_IN_PROCESS") == "true"]
    assert relays == ["front-1"]  # one outbox relay per deployment


def test_the_fronts_run_serve_on_the_port_they_publish() -> None:
    for name in ("front-1", "front-2"):
        service = COMPOSE["services"][name]
        args = _parser().parse_args(service["command"][1:])
        assert args.command == "serve" and args.host == "0.0.0.0"
        assert all(port.endswith(f":{args.port}") for port in service["ports"])
        assert service["environment"]["RAY_ADDRESS"] == "ray://ray-head:10001"
