"""The team deployment files: they parse, every image is pinned, and the environment skflow prints
for the compose deployment is what its services expect."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from flows.server.compose import compose_environment, read_env_file

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "compose"
K8S = ROOT / "infra" / "k8s"
PINNED = re.compile(r"^[\w./-]+:(v?\d[\w.+-]*|RELEASE\.[\w.-]+)$")  # a version tag, never `latest` or none


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def _k8s_documents() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _images(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "image" and isinstance(v, str)] + [
            i for v in node.values() for i in _images(v)
        ]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


def test_the_compose_file_and_the_kubernetes_manifests_parse():
    services = _compose()["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "skflow-worker"} <= set(services)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in _k8s_documents()}
    assert ("JobSet", "skflow-train") in kinds and ("Deployment", "prefect-worker") in kinds
    jobset = next(d for d in _k8s_documents() if d["kind"] == "JobSet")
    assert jobset["spec"]["failurePolicy"]["maxRestarts"] >= 1  # the group restarts together
    job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == job["parallelism"]
    assert "JOB_COMPLETION_INDEX" in job["template"]["spec"]["containers"][0]["args"][0]


def test_every_image_is_pinned_to_a_version():
    images = _images(_compose()) + _images(_k8s_documents())
    bases = [
        line.split()[1]
        for dockerfile in COMPOSE.glob("*.Dockerfile")
        for line in dockerfile.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    unpinned = [image for image in [*images, *bases] if not PINNED.match(image) or image.endswith(":latest")]
    assert images and bases and unpinned == []


def test_the_env_template_defines_every_variable_the_compose_file_uses():
    used = set(re.findall(r"\$\{(\w+)\}", (COMPOSE / "docker-compose.yml").read_text()))
    defined = set(read_env_file(COMPOSE / ".env.template"))
    assert used - defined == set()


def test_the_client_environment_is_what_the_services_expect(tmp_path):
    template = (COMPOSE / ".env.template").read_text()
    env_file = tmp_path / ".env"
    env_file.write_text(re.sub(r"CHANGE-[\w-]*", "s3cret-value-123", template))
    env = compose_environment(env_file)
    values = read_env_file(env_file)
    services = _compose()["services"]
    mlflow, prefect, worker = services["mlflow"], services["prefect-server"], services["skflow-worker"]
    # The URLs reach the ports the compose file publishes on 127.0.0.1.
    assert "127.0.0.1:${MLFLOW_PORT}:5000" in mlflow["ports"]
    assert env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{values['MLFLOW_PORT']}"
    assert "127.0.0.1:${PREFECT_PORT}:4200" in prefect["ports"]
    assert env["PREFECT_API_URL"] == f"http://127.0.0.1:{values['PREFECT_PORT']}/api"
    # The credentials are the ones the servers are configured with (and the in-cluster worker uses).
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_USERNAME"] == "${MLFLOW_TRACKING_USERNAME}"
    assert mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == "${MLFLOW_TRACKING_PASSWORD}"
    assert env["MLFLOW_TRACKING_PASSWORD"] == values["MLFLOW_TRACKING_PASSWORD"]
    assert prefect["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == "${PREFECT_API_AUTH_STRING}"
    assert env["PREFECT_API_AUTH_STRING"] == values["PREFECT_API_AUTH_STRING"]
    assert worker["environment"]["PREFECT_API_AUTH_STRING"] == "${PREFECT_API_AUTH_STRING}"
    assert "--app-name basic-auth" in mlflow["command"] and "--artifacts-destination s3://" in mlflow["command"]


def test_the_template_placeholders_are_refused(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text((COMPOSE / ".env.template").read_text())
    with pytest.raises(ValueError, match=r"still has template placeholders for \['MINIO_ROOT_PASSWORD'"):
        compose_environment(env_file)
    with pytest.raises(FileNotFoundError, match=r"copy infra/compose/.env.template"):
        compose_environment(tmp_path / "missing.env")


def test_skflow_server_env_compose_prints_exports_that_a_shell_reads_back(tmp_path):
    """What infra/compose/README.md says to run: `eval "$(skflow server env --compose .env)"`."""
    import shlex
    import subprocess
    import sys

    env_file = tmp_path / ".env"
    env_file.write_text(re.sub(r"CHANGE-[\w-]*", "it's $ecret", (COMPOSE / ".env.template").read_text()))
    cli = [sys.executable, "-m", "flows.cli", "server", "env", "--compose"]
    done = subprocess.run([*cli, str(env_file)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    shell = f"{done.stdout}\nenv -0"
    printed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env={}, timeout=10).stdout
    exported = dict(item.split("=", 1) for item in printed.split("\0") if "=" in item)
    expected = compose_environment(env_file)
    assert {name: exported.get(name) for name in expected} == expected
    assert expected["MLFLOW_TRACKING_PASSWORD"] == "it's $ecret"  # quoting survived the shell
    refused = subprocess.run([*cli, str(tmp_path / "nope.env")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert refused.returncode == 2 and refused.stdout == "" and "copy infra/compose/.env.template" in refused.stderr
    assert shlex.split(done.stdout)[0] == "export"
