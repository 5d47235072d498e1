"""deploy/compose.yaml checked without a Docker engine: the compose specification's JSON schema
(vendored in deploy/schema/), promtool on the Prometheus config, every mounted path, the build
context, and the service's env file read the way docker reads it (literally) into valid settings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support import IsolatedSettings, docker_env_file, prometheus_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
CORE_SERVICES = {"service", "postgres", "redis", "ollama", "prometheus", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_files(compose: dict) -> list[Path]:
    files = compose["services"]["service"]["env_file"]
    return [DEPLOY / (entry if isinstance(entry, str) else entry["path"]) for entry in files]


def test_compose_file_matches_the_compose_specification_schema(compose):
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_schema_check_rejects_a_broken_compose_file(compose):
    """The check has teeth: a misspelt key and a wrong depends_on condition are both reported."""
    schema = json.loads((DEPLOY / "schema" / "compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["service"]["helthcheck"] = broken["services"]["service"].pop("healthcheck")
    broken["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "healthy"
    paths = {tuple(e.absolute_path) for e in jsonschema.Draft7Validator(schema).iter_errors(broken)}
    assert ("services", "service") in paths
    assert ("services", "grafana", "depends_on") in paths


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose):
    services = compose["services"]
    assert CORE_SERVICES <= set(services)
    for name, service in services.items():
        assert "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition == {"condition": "service_healthy"}, f"{name} → {dependency}"
    assert set(services["service"]["depends_on"]) == {"postgres", "redis", "ollama"}
    assert "service" in services["prometheus"]["depends_on"]
    assert "prometheus" in services["grafana"]["depends_on"]


def test_build_context_and_dockerfile_exist(compose):
    build = compose["services"]["service"]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == REPO
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def test_every_mounted_host_path_exists_in_the_repository(compose):
    named_volumes = set(compose.get("volumes", {}))
    mounted = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source in named_volumes:
                continue
            path = (DEPLOY / source).resolve()
            assert path.exists(), f"{name} mounts {source}, which is not in the repository"
            assert REPO in path.parents, f"{name} mounts {source}, outside the repository"
            mounted.append(path)
    for path in env_files(compose):
        assert path.is_file(), path
    assert DEPLOY / "prometheus" / "alerts.yml" in mounted
    assert DEPLOY / "grafana" / "ai-interaction-module.json" in mounted


def container_path(compose: dict, service: str, host_path: Path) -> str:
    """Where compose mounts a repository file (or its folder) inside a container."""
    for volume in compose["services"][service]["volumes"]:
        source, target = volume.split(":")[:2]
        resolved = (DEPLOY / source).resolve()
        if resolved == host_path:
            return target
        if resolved in host_path.parents:
            return target + "/" + str(host_path.relative_to(resolved))
    raise AssertionError(f"{host_path} is not mounted into {service}")


def test_grafana_provisioning_finds_the_datasource_and_the_dashboard(compose):
    dashboards = DEPLOY / "grafana" / "provisioning" / "dashboards"
    providers = [p for f in dashboards.glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]]
    assert providers, "no dashboard provider"
    dashboard_in_container = container_path(compose, "grafana", DEPLOY / "grafana" / "ai-interaction-module.json")
    assert any(dashboard_in_container.startswith(p["options"]["path"].rstrip("/") + "/") for p in providers), \
        f"no provider loads {dashboard_in_container}"
    for provisioning in (dashboards, DEPLOY / "grafana" / "provisioning" / "datasources"):
        target = container_path(compose, "grafana", provisioning)
        assert target.startswith("/etc/grafana/provisioning/"), target
    sources = [d for f in (DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yml")
               for d in yaml.safe_load(f.read_text())["datasources"]]
    assert [d["url"] for d in sources if d["type"] == "prometheus"] == ["http://prometheus:9090"]
    assert any(d.get("isDefault") for d in sources)  # the dashboard's `datasource` variable picks it


def test_prometheus_config_passes_promtool_and_scrapes_the_service(compose):
    promtool = prometheus_tool("promtool")
    config_file = DEPLOY / "prometheus" / "prometheus.yml"
    result = subprocess.run([promtool, "check", "config", str(config_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout + result.stderr  # rule_files resolved, not empty
    config = yaml.safe_load(config_file.read_text())
    # The rule files sit next to prometheus.yml in the container as in the repository.
    config_target = container_path(compose, "prometheus", config_file)
    for rule_file in config["rule_files"]:
        assert container_path(compose, "prometheus", config_file.parent / rule_file) == \
            str(Path(config_target).parent / rule_file)
    targets = [t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    port = compose["services"]["service"]["ports"][0].split(":")[-1]
    assert f"service:{port}" in targets


def test_service_env_file_read_literally_gives_valid_settings(compose, monkeypatch):
    for path in env_files(compose):
        values = docker_env_file(path.read_text(encoding="utf-8"))
        for key, value in values.items():
            assert value == value.strip(), f"{key}: surrounding spaces are kept by docker"
            assert not value[:1] in {'"', "'"} and not value[-1:] in {'"', "'"}, \
                f"{key}={value}: docker keeps the quotes as part of the value"
            assert "${" not in value, f"{key}: docker run --env-file does not expand variables"
        for field in IsolatedSettings.model_fields:  # only the file's values (and defaults) count
            monkeypatch.delenv(field.upper(), raising=False)
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        settings = IsolatedSettings()
        services = compose["services"]
        assert settings.ollama_host == "ollama" and "ollama" in services
        assert settings.ollama_port == 11434
        database = settings.database_url.get_secret_value()
        postgres = services["postgres"]["environment"]
        assert database == (f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
                            f"@postgres:5432/{postgres['POSTGRES_DB']}")
        assert settings.redis_url.get_secret_value().startswith("redis://redis:6379")
        assert str(settings.module_port) == services["service"]["ports"][0].split(":")[-1]
        assert settings.response_prefix == "🤖 "  # left at its default: docker cannot write it unquoted
