"""What a fleet replica does at boot beyond a single VM: publish vLLM's queue to CloudWatch (queue-target
autoscaling) and, with a warm pool or scaling to zero, tell the Auto Scaling Group when it is ready.

The files are data the shared cloud-init carries (pixtral_deploy/cloudinit.py `cloud_config(..., fleet=...)`); the
scripts and units beside them live under userdata/ like the single VM's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import yaml

# The CloudWatch namespace and dimension the replicas publish under and the scaling policy reads. The dimension's
# value is fixed by the program (stack and component name), not the group's generated name, so the launch template
# does not depend on the group it belongs to.
METRIC_NAMESPACE = "Pixtral"
FLEET_DIMENSION = "Fleet"
QUEUE_METRIC = "vllm:num_requests_waiting"
SCRAPE_JOB = "pixtral-vllm"
AGENT_CONFIG_FILE = "/etc/pixtral/cloudwatch-agent.json"
SCRAPE_CONFIG_FILE = "/etc/pixtral/prometheus.yaml"
METRIC_SCRIPTS = ("publish-metrics.sh",)
METRIC_UNITS = ("pixtral-metrics.service",)
LIFECYCLE_SCRIPTS = ("complete-lifecycle.sh",)
LIFECYCLE_UNITS = ("pixtral-lifecycle.service",)
# The launch lifecycle hook a warm-pool or scale-to-zero group holds new instances in until complete-lifecycle.sh
# releases them.
LIFECYCLE_HOOK = "pixtral-ready"
SCRAPE_SECONDS = 15


@dataclass(frozen=True)
class FleetBoot:
    """A fleet replica's boot extras. `fleet_id` is the CloudWatch dimension value; `queue_metrics` publishes
    vLLM's queue; `lifecycle_hook` (warm pool, scale to zero) is the hook the replica completes once vLLM answers."""

    fleet_id: str
    queue_metrics: bool = False
    lifecycle_hook: str | None = None

    @property
    def scripts(self) -> tuple[str, ...]:
        return (METRIC_SCRIPTS if self.queue_metrics else ()) + (LIFECYCLE_SCRIPTS if self.lifecycle_hook else ())

    @property
    def units(self) -> tuple[str, ...]:
        return (METRIC_UNITS if self.queue_metrics else ()) + (LIFECYCLE_UNITS if self.lifecycle_hook else ())

    def environment(self) -> dict[str, str]:
        return {"PIXTRAL_FLEET_ID": self.fleet_id, "PIXTRAL_LIFECYCLE_HOOK": self.lifecycle_hook or ""}


def scrape_config(port: int, fleet_id: str, token_file: str) -> dict:
    """Prometheus scrape configuration for the CloudWatch agent: vLLM's /metrics on this replica, with the API key
    as bearer token (from the root-only `token_file`), labelled with the fleet so the metric carries the
    dimension."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": "10s"},
        "scrape_configs": [{
            "job_name": SCRAPE_JOB,
            "metrics_path": "/metrics",
            "bearer_token_file": token_file,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {FLEET_DIMENSION: fleet_id}}],
        }],
    }


def agent_config(log_group: str) -> dict:
    """The CloudWatch agent's own configuration: Prometheus scraping turned into one metric, vLLM's queue length,
    in embedded metric format with the fleet as its only dimension, so CloudWatch's Average over the dimension is
    the average across replicas."""
    return {
        "agent": {"metrics_collection_interval": SCRAPE_SECONDS},
        "logs": {
            "metrics_collected": {
                "prometheus": {
                    "log_group_name": log_group,
                    "prometheus_config_path": SCRAPE_CONFIG_FILE,
                    "emf_processor": {
                        "metric_declaration_dedup": True,
                        "metric_namespace": METRIC_NAMESPACE,
                        "metric_declaration": [{
                            "source_labels": ["job"],
                            "label_matcher": f"^{SCRAPE_JOB}$",
                            "dimensions": [[FLEET_DIMENSION]],
                            "metric_selectors": [f"^{QUEUE_METRIC}$"],
                        }],
                    },
                },
            },
            "force_flush_interval": 5,
        },
    }


def metric_files(port: int, fleet_id: str, token_file: str) -> dict[str, str]:
    """Path -> content of the two configuration files the metrics unit starts the agent with."""
    return {
        AGENT_CONFIG_FILE: json.dumps(agent_config(f"/pixtral/{fleet_id}/prometheus"), indent=2) + "\n",
        SCRAPE_CONFIG_FILE: yaml.safe_dump(scrape_config(port, fleet_id, token_file), sort_keys=False),
    }
