"""The `monitoring` compose profile: Prometheus scraping every service's /metrics, off by default."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.docker.project import ROOT, SERVICES, compose_services, container_port, interpolate
from tests.docker.test_tools import compose_config

PROMETHEUS_CONFIG = ROOT / "docker" / "prometheus.yml"
GRAFANA = ROOT / "docker" / "grafana"
OPERATIONS = ROOT / "docs" / "operations.md"


def prometheus() -> dict[str, Any]:
    spec = compose_services()["prometheus"]
    assert isinstance(spec, dict)
    return spec


def test_prometheus_is_the_official_pinned_image_only_under_the_monitoring_profile() -> None:
    spec = prometheus()
    assert spec["profiles"] == ["monitoring"]
    name, _, tag = spec["image"].partition(":")
    assert name == "prom/prometheus"
    assert tag not in {"", "latest"}, f"pin a version: {spec['image']}"
    assert "build" not in spec
    published = [interpolate(str(port)) for port in spec.get("ports", [])]
    assert published == ["127.0.0.1:9090:9090"], "loopback only, like every other port here"


def test_its_config_file_is_the_one_in_the_repository() -> None:
    mounts = [str(volume).split(":") for volume in prometheus()["volumes"]]
    assert ["./docker/prometheus.yml", "/etc/prometheus/prometheus.yml", "ro"] in mounts
    assert (ROOT / "docker" / "prometheus.yml").is_file()


def test_it_scrapes_the_four_services_on_their_real_ports() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert targets == {f"{name}:{container_port(name)}" for name in SERVICES}
    # /metrics is Prometheus's default path: no job may point elsewhere.
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])


def test_docker_compose_starts_it_only_when_the_profile_is_asked_for(tmp_path: Path) -> None:
    assert {"prometheus", "grafana"}.isdisjoint(compose_config(tmp_path)["services"])
    assert {"prometheus", "grafana"} <= set(compose_config(tmp_path, profiles=("monitoring",))["services"])


def test_grafana_loads_the_dashboard_from_the_repository_with_prometheus_as_its_source() -> None:
    spec = compose_services()["grafana"]
    assert spec["profiles"] == ["monitoring"]
    assert spec["image"].partition(":")[2] not in {"", "latest"}
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in spec["volumes"]}
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "codereview.yml").read_text())
    assert mounts["./docker/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == f"http://prometheus:{interpolate(str(prometheus()['ports'][0])).split(':')[-1]}"
    dashboard = json.loads((GRAFANA / "dashboards" / "codereview.json").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {source["uid"]}


def test_the_dashboard_asks_only_for_series_the_docs_list() -> None:
    """A renamed series breaks a panel silently; here it fails a test."""
    documented = set(re.findall(r"^\| `([a-z_]+)`", OPERATIONS.read_text(), re.MULTILINE))
    dashboard = json.loads((GRAFANA / "dashboards" / "codereview.json").read_text())
    asked = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(
            r"\b((?:codereview|gateway|model_host|analyzer|fetcher)_[a-z_]+)\b", target["expr"]
        )
    }
    assert asked
    assert asked - documented == set()
