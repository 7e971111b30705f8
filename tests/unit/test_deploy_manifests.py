"""The manifests under deploy/kubernetes are valid Kubernetes objects and fit together.

Built-in kinds are checked against the Kubernetes JSON schemas that kubernetes-validate ships (strict:
an unknown field fails, as the API server's strict field validation does); the RayCluster against
deploy/schemas/raycluster-ray.io-v1.json, whose pod templates refer to the same Kubernetes schemas.
Then the objects are checked against each other and against roombook: every referenced ConfigMap
and Secret exists, selectors select, probes ask the routes that exist, every ROOMBOOK_* key is a
setting, and every Ray process authenticates with the cluster's token.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml
from kubernetes_validate.utils import schema_contents

from roombook.config import Settings, env_name
from roombook.http import ops_routes

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
RAYCLUSTER_SCHEMA = json.loads((ROOT / "deploy" / "schemas" / "raycluster-ray.io-v1.json").read_text())
KUBERNETES_VERSION = "1.33"  # the oldest version the manifests promise to work on

Manifest = dict[str, Any]


def manifests() -> list[Manifest]:
    return [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc is not None
    ]


def validate(manifest: Manifest) -> None:
    """Raise jsonschema.ValidationError unless the manifest fits its kind's schema."""
    if manifest.get("kind") != "RayCluster":
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        return
    definitions = schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}.0-local-strict/_definitions.json", KUBERNETES_VERSION
    )
    registry = referencing.Resource.from_contents(definitions) @ referencing.Registry()
    jsonschema.Draft202012Validator(RAYCLUSTER_SCHEMA, registry=registry).validate(manifest)


def of_kind(kind: str) -> list[Manifest]:
    return [m for m in manifests() if m["kind"] == kind]


def named(kind: str, name: str) -> Manifest:
    (found,) = [m for m in of_kind(kind) if m["metadata"]["name"] == name]
    return found


def pod_templates() -> Iterator[tuple[str, Manifest]]:
    """(what, pod template) of every Deployment and every Ray node group."""
    for deployment in of_kind("Deployment"):
        yield deployment["metadata"]["name"], deployment["spec"]["template"]
    for cluster in of_kind("RayCluster"):
        yield f"{cluster['metadata']['name']} head", cluster["spec"]["headGroupSpec"]["template"]
        for group in cluster["spec"].get("workerGroupSpecs", []):
            yield f"{cluster['metadata']['name']} {group['groupName']}", group["template"]


def container_env(container: Manifest) -> dict[str, str]:
    """The variables a container gets: its envFrom ConfigMaps and Secrets, then its env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= named("ConfigMap", source["configMapRef"]["name"])["data"]
        if "secretRef" in source:
            env |= named("Secret", source["secretRef"]["name"])["stringData"]
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "<from a reference>")
    return env


def test_every_manifest_fits_its_schema() -> None:
    found = manifests()
    kinds = {m["kind"] for m in found}
    assert {"RayCluster", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "Secret"} <= kinds
    for manifest in found:
        validate(manifest)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Deployment", ["spec", "replica"], 2),  # a misspelt field
        ("Deployment", ["spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"], "8080"),
        ("RayCluster", ["spec", "enableInTreeAutoscaling"], "yes"),
        ("RayCluster", ["spec", "workerGroupSpecs", 0, "minReplica"], 1),
        ("RayCluster", ["spec", "headGroupSpec", "template", "spec", "containers", 0, "imagePullPolicy"], 3),
        ("RayCluster", ["spec", "headGroupSpec", "template", "spec", "containers", 0, "envFrom", 0, "configMap"], {}),
        ("HorizontalPodAutoscaler", ["spec", "maxReplicas"], "ten"),
    ],
)
def test_the_validation_refuses_a_broken_manifest(kind: str, path: list[str | int], value: object) -> None:
    broken = copy.deepcopy(of_kind(kind)[0])
    target: Any = broken
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_every_config_map_and_secret_referenced_exists() -> None:
    for what, template in pod_templates():
        for container in template["spec"]["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                kind = "ConfigMap" if "configMapRef" in source else "Secret"
                assert named(kind, ref["name"]), f"{what} refers to a missing {kind} {ref['name']}"
            for var in container.get("env", []):
                secret = var.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert secret["key"] in named("Secret", secret["name"])["stringData"], what


def test_every_roombook_variable_is_a_setting() -> None:
    known = {env_name(field) for field in Settings.__struct_fields__}
    for config in [*of_kind("ConfigMap"), *of_kind("Secret")]:
        values = config.get("data") or config.get("stringData")
        unknown = {key for key in values if key.startswith("ROOMBOOK_")} - known
        assert not unknown, f"{config['metadata']['name']}: no such setting {sorted(unknown)}"


def test_the_fronts_are_served_selected_scaled_and_probed() -> None:
    front = named("Deployment", "roombook-front")
    labels = front["spec"]["template"]["metadata"]["labels"]
    assert front["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = named("Service", "roombook")
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = front["spec"]["template"]["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    hpa = named("HorizontalPodAutoscaler", "roombook-front")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "roombook-front"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = named("PodDisruptionBudget", "roombook-front")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always proceed
    routes = {route.path for route in ops_routes.routes}  # type: ignore[attr-defined]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"/readyz", "/healthz"} <= routes
    args = container["args"]
    assert args[:2] == ["roombook", "serve"] and args[args.index("--port") + 1] == str(
        container["ports"][0]["containerPort"]
    )
    assert container_env(container)["RAY_ADDRESS"].startswith("ray://roombook-head-svc.")  # KubeRay's head service


def test_the_ray_cluster_autoscales_within_bounds_and_every_ray_process_uses_the_token() -> None:
    (cluster,) = of_kind("RayCluster")
    spec = cluster["spec"]
    assert spec["enableInTreeAutoscaling"] is True
    for group in spec["workerGroupSpecs"]:
        assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    autoscaler_env = {var["name"]: var for var in spec["autoscalerOptions"]["env"]}
    assert autoscaler_env["RAY_AUTH_MODE"]["value"] == "token"
    assert autoscaler_env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "roombook-ray-token"
    for what, template in pod_templates():
        for container in template["spec"]["containers"]:
            env = container_env(container)
            if what == "roombook-worker":  # the event worker never talks to Ray
                continue
            assert env.get("RAY_AUTH_MODE") == "token", what
            assert env.get("RAY_AUTH_TOKEN"), what
            assert "resources" in container and container["resources"]["limits"], what
    ray_pdb = named("PodDisruptionBudget", "roombook-ray-workers")
    assert ray_pdb["spec"]["selector"]["matchLabels"] == {
        "ray.io/cluster": cluster["metadata"]["name"],  # the labels KubeRay puts on its pods
        "ray.io/node-type": "worker",
    }


def test_ray_nodes_have_shared_memory_for_the_object_store() -> None:
    for what, template in pod_templates():
        if "roombook " not in what:
            continue
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for container in template["spec"]["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory", what
