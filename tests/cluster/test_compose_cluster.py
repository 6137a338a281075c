"""docker/cluster.yml over docker-compose.yml, as `docker compose config` resolves them (no engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs_contract.settings import StorageSettings
from tests.docker.project import COMPOSE_FILE, ROOT, SERVICES, settings_variables
from tests.docker.test_tools import compose_config

CLUSTER_FILE = ROOT / "docker" / "cluster.yml"
NODES = ["nats", "nats-2", "nats-3"]


def reads(name: str) -> set[str]:
    """The variables a service reads: its Settings, and the contract's StorageSettings for the two
    that create the job buckets (ensure_jetstream)."""
    variables = set(settings_variables(SERVICES[name].package))
    if name in {"analyzer", "fetcher"}:
        variables |= {field.upper() for field in StorageSettings.model_fields}
    return variables


def published(config: dict[str, Any]) -> dict[str, set[tuple[str, str, int]]]:
    return {
        name: {(port["host_ip"], port["published"], port["target"]) for port in spec.get("ports", [])}
        for name, spec in config["services"].items()
    }


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_three_nats_nodes_routed_into_one_cluster_each_with_its_own_store(tmp_path: Path) -> None:
    config = compose_config(tmp_path, COMPOSE_FILE, CLUSTER_FILE)
    assert set(config["services"]) == {*NODES, "nats-init", *SERVICES}
    commands = [config["services"][node]["command"] for node in NODES]
    assert [option(command, "--server_name") for command in commands] == NODES
    assert {option(command, "--cluster_name") for command in commands} == {"codereview"}
    for command in commands:
        assert "--jetstream" in command
        routes = option(command, "--routes").split(",")
        assert routes == [f"nats://{node}:{option(command, '--cluster').rsplit(':', 1)[1]}" for node in NODES]
    volumes = [config["services"][node]["volumes"][0]["source"] for node in NODES]
    assert len(set(volumes)) == 3
    for node in NODES:
        assert "healthcheck" in config["services"][node]


def test_every_node_runs_as_nats_user_on_a_volume_handed_to_it_first(tmp_path: Path) -> None:
    # As compose merges the override (volumes by mount point): the step sees all three stores.
    config = compose_config(tmp_path, COMPOSE_FILE, CLUSTER_FILE)
    init = config["services"]["nats-init"]
    stores = {config["services"][node]["volumes"][0]["source"] for node in NODES}
    # ... and the single server's old store, which the migrate profile's nats-single reads.
    assert {volume["source"] for volume in init["volumes"]} == stores | {"nats-data"}
    for node in NODES:
        spec = config["services"][node]
        assert spec["user"] == "10002:10002"
        assert spec["depends_on"]["nats-init"]["condition"] == "service_completed_successfully"


def test_the_services_use_every_node_with_three_replicas_and_wait_for_all(tmp_path: Path) -> None:
    config = compose_config(tmp_path, COMPOSE_FILE, CLUSTER_FILE)
    for name in ("gateway", "fetcher", "analyzer"):
        spec = config["services"][name]
        env = spec["environment"]
        assert {"NATS_URL", "NATS_REPLICAS"} <= reads(name)
        assert env["NATS_URL"].split(",") == [f"nats://{node}:4222" for node in NODES]
        assert env["NATS_REPLICAS"] == "3"
        for node in NODES:
            assert spec["depends_on"][node]["condition"] == "service_healthy"
    assert config["services"]["fetcher"]["deploy"]["replicas"] == 2
    # Every replica keeps the single stack's stop grace, over its SHUTDOWN_TIMEOUT_S.
    for name in ("model_host", "gateway", "fetcher", "analyzer"):
        assert config["services"][name]["stop_grace_period"] == "30s"


def test_users_find_every_port_where_it_was(tmp_path: Path) -> None:
    single = compose_config(tmp_path, COMPOSE_FILE)
    cluster = compose_config(tmp_path, COMPOSE_FILE, CLUSTER_FILE)
    assert published(cluster) == {**published(single), "nats-2": set(), "nats-3": set()}
