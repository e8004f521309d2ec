"""deploy/k8s-shared: the base manifests plus a Valkey server and the base's config with a
``state: {backend: redis}`` section — valid manifests, a valid config pointing at the
Service, the base config otherwise unchanged, and an image that has the Redis client."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.config import Config, parse_config
from proxy.config.state import Backend
from tests.deploy.served import DEPLOY

SHARED = DEPLOY / "k8s-shared"
OLDEST_K8S = "1.29"


def load(path: Path) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d]
    return dict(doc)


def kustomization() -> dict[str, Any]:
    return load(SHARED / "kustomization.yaml")


def config_text(path: Path) -> str:
    return str(load(path)["data"]["sidestep.yaml"])


def parse(text: str) -> Config:
    environ = {k: f"sk-test-{k.lower()}-0123" for k in re.findall(r"\$\{(\w+)", text)}
    return parse_config(text, source="configmap.yaml", environ=environ)


def test_the_overlay_is_the_base_plus_the_state_server() -> None:
    """`kubectl apply -k deploy/k8s-shared` applies the base, the Valkey Deployment and
    Service, and the config patch; every file in the directory is used."""
    k = kustomization()
    assert k["resources"] == ["../k8s", "valkey.yaml", "valkey-service.yaml"]
    assert [p["path"] for p in k["patches"]] == ["configmap.yaml"]
    used = {"kustomization.yaml", "configmap.yaml", *k["resources"][1:]}
    assert {p.name for p in SHARED.glob("*.yaml")} == used


def test_the_config_is_the_base_config_with_a_state_section() -> None:
    """The patched sidestep.yaml is the base's, plus lines that add only ``state``."""
    base = config_text(DEPLOY / "k8s" / "configmap.yaml")
    shared = config_text(SHARED / "configmap.yaml")
    added = [line for line in shared.splitlines() if line not in base.splitlines()]
    (state_line,) = [line for line in added if not line.startswith("#")]
    assert state_line.startswith("state:")
    assert [line for line in shared.splitlines() if line not in added] == base.splitlines()
    old, new = parse(base), parse(shared)
    assert new.model_copy(update={"state": old.state}) == old


def test_the_config_points_at_the_state_service() -> None:
    """backend redis, at the Service's name and port."""
    state = parse(config_text(SHARED / "configmap.yaml")).state
    assert state.backend is Backend.REDIS and state.url is not None
    url = urlsplit(state.url.get_secret_value())
    service = load(SHARED / "valkey-service.yaml")
    assert url.hostname == service["metadata"]["name"]
    assert url.port == service["spec"]["ports"][0]["port"]


def test_the_state_service_selects_the_state_pods() -> None:
    """The Service's selector and target port match the Valkey Deployment's pods."""
    deployment, service = load(SHARED / "valkey.yaml"), load(SHARED / "valkey-service.yaml")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("version", [OLDEST_K8S, "latest"])
@pytest.mark.parametrize("name", ["valkey.yaml", "valkey-service.yaml"])
def test_state_manifests_match_the_kubernetes_schema(name: str, version: str) -> None:
    """The Valkey Deployment and Service validate strictly against the release's schema."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test extra) is not installed"
    )
    if version == "latest":
        version = kubernetes_validate.utils.latest_version()
    try:
        kubernetes_validate.validate(load(SHARED / name), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{name}: {path}: {exc.message} (Kubernetes {version})")


def test_kustomize_renders_the_overlay() -> None:
    """Where kubectl is installed, `kubectl kustomize` builds the overlay (no cycle, the patch
    applies) with the state section in the rendered ConfigMap."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [kubectl, "kustomize", str(SHARED)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert "state: {backend: redis" in config_map["data"]["sidestep.yaml"]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "sidestep-state"), ("Service", "sidestep-state")} <= names


def test_the_image_has_the_redis_client() -> None:
    """deploy/Dockerfile installs the ``redis`` extra, so the image can share state."""
    installs = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if "pip" in line]
    assert any(re.search(r'"\.\[[^\]]*\bredis\b[^\]]*\]"', line) for line in installs)


def test_compose_has_the_state_server_behind_the_shared_profile(tmp_path: Path) -> None:
    """`docker compose --profile shared` adds Valkey (unpublished, read-only, no
    capabilities), and the commented state line of deploy/config/sidestep.yaml, uncommented,
    is a valid config pointing at it."""
    from tests.deploy.test_compose import COMPOSE, render

    plain = render(COMPOSE, tmp_path / "plain")
    assert "valkey" not in plain["services"]
    with_state = tmp_path / "compose.shared.yaml"
    with_state.write_text(COMPOSE.read_text().replace("profiles: [shared]", "profiles: []"))
    (tmp_path / "config").symlink_to(DEPLOY / "config")
    valkey = render(with_state, tmp_path / "shared")["services"]["valkey"]
    assert valkey["read_only"] is True and valkey["cap_drop"] == ["ALL"]
    assert not valkey.get("ports")
    text = (DEPLOY / "config" / "sidestep.yaml").read_text()
    enabled = text.replace("# state: {backend: redis", "state: {backend: redis")
    state = parse_config(enabled, source="sidestep.yaml", environ={}).state
    assert state.backend is Backend.REDIS and state.url is not None
    assert urlsplit(state.url.get_secret_value()).hostname == "valkey"
