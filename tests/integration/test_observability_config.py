"""deploy/'s Prometheus rules and Grafana dashboard query only metrics a real node serves.

A dashboard panel on a misspelt or renamed metric shows "No data" forever
and nobody notices; so every ``chatrelay_*`` and ``process_*`` name in the
dashboard's queries and in the rules must be in the ``/metrics`` of a real
``chatrelay serve`` (gateway and worker in one process, so both kinds' metrics),
and every recording rule the dashboard uses must be defined.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.processes import REPO, Server
from tests.timing import seconds

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "chatrelay.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
METRIC_NAME = re.compile(r"\b((?:chatrelay|process)_[a-z0-9_]+)\b")
RECORDED_NAME = re.compile(r"\b(chatrelay:[a-z0-9_:]+)\b")


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rules() -> list[dict[str, str]]:
    loaded = yaml.safe_load(RULES.read_text("utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def served_names(server: Server) -> set[str]:
    """Every metric name in the node's /metrics: families and their samples (``_bucket``, ...)."""
    text = httpx.get(f"{server.http}/metrics", timeout=seconds(10)).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_dashboard_and_the_rules_query_is_served(server: Server) -> None:
    queries = dashboard_queries() + [rule["expr"] for rule in rules()]
    wanted = {name for query in queries for name in METRIC_NAME.findall(query)}
    assert len(wanted) >= 15, wanted  # the regex did find the queries' names
    missing = wanted - served_names(server)
    assert not missing, f"queried but not in /metrics: {sorted(missing)}"


def test_the_dashboard_reads_only_recording_rules_that_exist() -> None:
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    used = {name for query in dashboard_queries() for name in RECORDED_NAME.findall(query)}
    assert used and used <= recorded, used - recorded


def test_compose_provisions_prometheus_and_grafana_from_these_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text("utf-8"))
    services = compose["services"]
    mounted = {
        volume.split(":")[0]
        for name in ("prometheus", "grafana")
        for volume in services[name]["volumes"]
    }
    assert mounted == {
        "./prometheus/prometheus.yml",
        "./prometheus/rules.yml",
        "./grafana/provisioning",
        "./grafana/dashboards",
    }
    for path in mounted:
        assert (DEPLOY / path).exists(), path
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    gateways = sorted(n for n in services if n.startswith("gateway-"))
    workers = sorted(n for n in services if n.startswith("worker-"))
    assert targets == {
        "gateway": [f"{n}:8080" for n in gateways],
        "worker": [f"{n}:8000" for n in workers],
    }
    assert Path(DASHBOARD).is_file()
