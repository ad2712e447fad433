"""docker-compose.yml and every Kubernetes manifest validate against their published schemas, offline.

- Compose: the Compose Specification's JSON schema, vendored as tests/schemas/compose-spec.json
  (the copy check-jsonschema ships; Apache-2.0, tests/schemas/LICENSE.compose-spec).
- Kubernetes kinds: the strict schemas (no unknown field) that the PyPI package
  kubernetes-validate builds from the Kubernetes OpenAPI, for the oldest and the newest
  Kubernetes version it ships.
- ServiceMonitor (a CRD of the Prometheus Operator): tests/schemas/servicemonitor-*.json, made
  by tests/schemas/build_servicemonitor_schema.py.

Sockets are closed while these tests run: nothing is fetched. Each validator is first shown to
reject a broken copy of the file, so that a pass means something.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "schemas"
K8S = ROOT / "deploy" / "k8s"
SERVICE_MONITOR_SCHEMA = SCHEMAS / "servicemonitor-monitoring.coreos.com-v1.json"

KUBERNETES_VERSIONS = [all_versions()[0], all_versions()[-1]]
# Kustomization is no API object: `kubectl kustomize` checks it (tests/unit/test_deploy.py).
NOT_API_OBJECTS = {"kustomization.yaml"}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a schema check tried to reach the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name not in NOT_API_OBJECTS:
            for document in yaml.safe_load_all(path.read_text()):
                yield path.name, document


def core_manifests() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in manifests() if doc["kind"] != "ServiceMonitor"]


@pytest.fixture(scope="module")
def service_monitor_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SERVICE_MONITOR_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --- the checks can fail -------------------------------------------------------------------


def test_network_is_closed_during_these_tests() -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("127.0.0.1", 9))


def test_compose_schema_rejects_a_misspelt_key_and_a_wrong_type(
    compose_validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["streamer"]["dependson"] = ["kafka"]
    broken["services"]["streamer"]["ports"] = "9100:9100"  # a list of ports, not one string
    found = errors(compose_validator, broken)
    assert any("dependson" in e for e in found), found
    assert any("ports" in e for e in found), found


def test_kubernetes_schema_rejects_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    misspelt = copy.deepcopy(deployment)
    container = misspelt["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbes"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenessProbes"):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas"):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)


def test_service_monitor_schema_rejects_a_misspelt_field_and_a_bad_interval(
    service_monitor_validator: jsonschema.protocols.Validator,
) -> None:
    monitor = yaml.safe_load((K8S / "servicemonitor.yaml").read_text())
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["portName"] = broken["spec"]["endpoints"][0].pop("port")
    broken["spec"]["endpoints"][0]["interval"] = "15 seconds"
    found = errors(service_monitor_validator, broken)
    assert any("portName" in e for e in found), found
    assert any("interval" in e for e in found), found
    assert errors(service_monitor_validator, {**monitor, "apiVersion": "v1"})


# --- the files pass ------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(
    compose_validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    assert errors(compose_validator, compose) == []


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("name", "manifest"), core_manifests(), ids=[name for name, _ in core_manifests()]
)
def test_manifest_matches_the_strict_kubernetes_schema(
    name: str, manifest: dict[str, Any], version: str
) -> None:
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{name} against Kubernetes {version}: {error.message}")


def service_monitors() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, doc in manifests() if doc["kind"] == "ServiceMonitor"]


@pytest.mark.parametrize(
    ("name", "monitor"), service_monitors(), ids=[name for name, _ in service_monitors()]
)
def test_service_monitor_matches_the_prometheus_operator_schema(
    service_monitor_validator: jsonschema.protocols.Validator, name: str, monitor: dict[str, Any]
) -> None:
    assert errors(service_monitor_validator, monitor) == [], name


def test_the_bridge_manifests_are_checked_too() -> None:
    # the service's and the Label Studio bridge's (`streamer label-studio`)
    names = {name for name, _ in manifests()}
    for kind in ("configmap", "deployment", "service", "servicemonitor"):
        assert f"label-studio-bridge-{kind}.yaml" in names, kind
    assert len(service_monitors()) == 2


def test_compose_labelling_profile_matches_the_compose_specification(
    compose_validator: jsonschema.protocols.Validator, compose: dict[str, Any]
) -> None:
    # the profile's services are in the file the schema checks; a misspelt key there fails too
    broken = copy.deepcopy(compose)
    broken["services"]["label-studio-bridge"]["profile"] = ["labelling"]
    assert any("profile" in e for e in errors(compose_validator, broken))
    for name in ("label-studio", "label-studio-bridge"):
        assert compose["services"][name]["profiles"] == ["labelling"], name


def test_every_kind_in_deploy_k8s_has_a_schema_check() -> None:
    kinds = {doc["kind"] for _, doc in manifests()}
    assert kinds == {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Secret", "ServiceMonitor",
    }  # fmt: skip
