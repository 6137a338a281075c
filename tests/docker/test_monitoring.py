"""The `monitoring` compose profile: Prometheus scraping every service's /metrics, off by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.docker.project import ROOT, SERVICES, compose_services, container_port, interpolate
from tests.docker.test_tools import compose_config

PROMETHEUS_CONFIG = ROOT / "docker" / "prometheus.yml"


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
    assert "prometheus" not in compose_config(tmp_path)["services"]
    assert "prometheus" in compose_config(tmp_path, profiles=("monitoring",))["services"]
