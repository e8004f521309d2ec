"""deploy/k8s: every manifest against the Kubernetes JSON schemas (strict: unknown fields are
errors), the ServiceMonitor against the Prometheus Operator's model, and the properties the
deployment promises (probes, drain time, non-root, read-only root, hot-reloadable config)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from proxy.config import Config, parse_config
from proxy.http.server import DEFAULT_GRACE_S, EXIT_MARGIN_S
from tests.deploy import dockerfile, envfile
from tests.deploy.served import DEPLOY

K8S = DEPLOY / "k8s"
# The oldest Kubernetes release we claim (every API used is GA there) and the newest schemas.
OLDEST_K8S = "1.29"
CRD_MODELS = "cloudcoil-models-prometheus-operator==0.80.1.0"


def _manifests() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        loaded = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        assert len(loaded) == 1, f"{path.name}: one resource per file"
        docs[loaded[0]["kind"]] = loaded[0] | {"__file__": path.name}
    return docs


MANIFESTS = _manifests()


def resource(kind: str) -> dict[str, Any]:
    return {k: v for k, v in MANIFESTS[kind].items() if k != "__file__"}


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = resource("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def test_every_kind_is_there() -> None:
    """Deployment, Service, ConfigMap, PodDisruptionBudget and ServiceMonitor, each once."""
    expected = {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor"}
    assert set(MANIFESTS) == expected


def test_kustomization_lists_every_manifest() -> None:
    """`kubectl apply -k deploy/k8s` applies every manifest file and nothing missing."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(m["__file__"] for m in MANIFESTS.values())
    images = {image["name"] for image in kustomization.get("images", [])}
    assert container()["image"].split(":")[0] in images


@pytest.mark.parametrize("version", [OLDEST_K8S, "latest"])
@pytest.mark.parametrize("kind", sorted(set(MANIFESTS) - {"ServiceMonitor"}))
def test_manifest_matches_the_kubernetes_schema(kind: str, version: str) -> None:
    """Each built-in resource validates strictly against that release's JSON schema."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate (test extra) is not installed"
    )
    if version == "latest":
        version = kubernetes_validate.utils.latest_version()
    try:
        kubernetes_validate.validate(resource(kind), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{MANIFESTS[kind]['__file__']}: {path}: {exc.message} (Kubernetes {version})")


@pytest.fixture(scope="module")
def crd_models(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private install of the Prometheus Operator models (pydantic, generated from its CRD
    schemas). Kept out of the test extra because the package registers a pytest plugin that
    needs packages we do not have; run in a subprocess from pytest's cache directory (a temp
    directory when the cache plugin is off). Without a package index the test is skipped
    within seconds (no retries), not after pip's minutes of back-off."""
    cache = getattr(request.config, "cache", None)
    target = (
        Path(cache.mkdir("deploy-crd-models"))
        if cache is not None
        else tmp_path_factory.mktemp("deploy-crd-models")
    )
    done = target / (re.sub(r"\W", "_", CRD_MODELS) + ".installed")
    if not done.exists():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--retries", "0", "--timeout", "15",
             "--upgrade", "--target", str(target), CRD_MODELS],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.skip(f"cannot install {CRD_MODELS} from PyPI: {result.stderr[-500:]}")
        done.touch()
    return target


_VALIDATE_SERVICEMONITOR = """
import sys, orjson
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor
doc = orjson.loads(sys.stdin.buffer.read())
model = ServiceMonitor.model_validate(doc)
print(orjson.dumps(model.model_dump(mode="json", by_alias=True, exclude_unset=True)).decode())
"""


def _unknown_keys(given: Any, known: Any, path: str = "") -> list[str]:
    if isinstance(given, dict):
        return [
            p
            for key, value in given.items()
            for p in (
                _unknown_keys(value, known[key], f"{path}.{key}")
                if isinstance(known, dict) and key in known
                else [f"{path}.{key}"]
            )
        ]
    if isinstance(given, list) and isinstance(known, list):
        return [
            p
            for i, (g, k) in enumerate(zip(given, known, strict=False))
            for p in _unknown_keys(g, k, f"{path}[{i}]")
        ]
    return []


def test_servicemonitor_matches_the_prometheus_operator_crd(crd_models: Path) -> None:
    """The ServiceMonitor validates against the monitoring.coreos.com/v1 model, and every
    field it sets is one the CRD knows (the model ignores unknown ones, so they are
    compared after a round trip)."""
    doc = resource("ServiceMonitor")
    result = subprocess.run(
        [sys.executable, "-c", _VALIDATE_SERVICEMONITOR],
        input=orjson.dumps(doc), capture_output=True, timeout=120, check=False,
        env={"PYTHONPATH": str(crd_models), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    known = orjson.loads(result.stdout)
    assert _unknown_keys(doc, known) == []


def test_deployment_runs_two_probed_replicas() -> None:
    """2 replicas; readiness on /readyz, liveness on /healthz, both on the named port."""
    deployment = resource("Deployment")
    assert deployment["spec"]["replicas"] == 2
    c = container()
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert [p["containerPort"] for p in c["ports"] if p["name"] == "http"] == [8787]
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}


def configmap_config() -> Config:
    """The ConfigMap's sidestep.yaml, validated, its ${VAR}s filled with test values."""
    text = resource("ConfigMap")["data"]["sidestep.yaml"]
    used = set(re.findall(r"\$\{(\w+)", text))
    environ = {k: f"sk-test-{k.lower()}-0123" for k in used}
    return parse_config(text, source="configmap.yaml", environ=environ)


def test_termination_grace_outlasts_the_stream_drain() -> None:
    """terminationGracePeriodSeconds covers the preStop pause plus sidestep's own grace (the
    ConfigMap's server.shutdown_grace_s, the default) plus the time it takes to cut and exit."""
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = pod_spec()["terminationGracePeriodSeconds"]
    sidestep_grace = configmap_config().server.shutdown_grace_s
    assert sidestep_grace == DEFAULT_GRACE_S
    assert grace >= int(pre_stop[1]) + sidestep_grace + EXIT_MARGIN_S


def test_pod_is_non_root_with_a_read_only_root_filesystem() -> None:
    """runAsNonRoot with the image's uid, no privilege escalation, all capabilities dropped,
    a read-only root filesystem with emptyDirs where anything may be written."""
    final = dockerfile.parse(DEPLOY / "Dockerfile")[1][-1]
    image_uid = int((final.last("USER") or "0").split(":")[0])
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == image_uid
    sc = container()["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    writable = {
        m["mountPath"] for m in container()["volumeMounts"] if "emptyDir" in volumes[m["name"]]
    }
    assert {"/tmp", final.last("WORKDIR")} <= writable


def test_config_map_is_mounted_as_a_directory_for_hot_reload() -> None:
    """The ConfigMap is mounted (no subPath, which never updates) on the directory of the
    image's --config path, so the kubelet's symlink swap reaches sidestep's reload."""
    final = dockerfile.parse(DEPLOY / "Dockerfile")[1][-1]
    argv = final.exec_form("CMD")
    config_path = Path(argv[argv.index("--config") + 1])
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    (mount,) = [m for m in container()["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    assert "subPath" not in mount
    config_map = resource("ConfigMap")
    assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_path.name in config_map["data"]
    assert "args" not in container() and "command" not in container(), "use the image's CMD"


def test_config_map_is_a_valid_config_fed_by_the_secret() -> None:
    """The ConfigMap's sidestep.yaml validates, with every ${VAR} it uses coming from the
    referenced Secret, whose keys are those of deploy/sidestep.env.example."""
    env_keys = envfile.read_plain(DEPLOY / "sidestep.env.example")
    (secret_ref,) = [e["secretRef"]["name"] for e in container()["envFrom"]]
    assert secret_ref == "sidestep-keys"
    text = resource("ConfigMap")["data"]["sidestep.yaml"]
    used = set(re.findall(r"\$\{(\w+)", text))
    assert used and used <= set(env_keys), used - set(env_keys)
    config = configmap_config()
    assert config.listen.port == 8787
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    writable = [m for m in container()["volumeMounts"] if "emptyDir" in volumes[m["name"]]]
    assert config.state_dir in {m["mountPath"] for m in writable}, "sessions need a writable dir"


def test_service_pdb_and_servicemonitor_select_the_pods() -> None:
    """Service, PodDisruptionBudget and ServiceMonitor select the Deployment's pods and port."""
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = resource("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    pdb = resource("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["minAvailable"] == 1
    monitor = resource("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["endpoints"]] == [
        p["name"] for p in service["spec"]["ports"]
    ]
    assert [e["path"] for e in monitor["endpoints"]] == ["/metrics"]
