"""Google Cloud's Ops Agent on a replica, scraping vLLM's Prometheus endpoint for the queue-based autoscaler.

vLLM exports `vllm:num_requests_waiting` on /metrics; the agent's Prometheus receiver sends it to Cloud Monitoring
(Managed Service for Prometheus) as `prometheus.googleapis.com/vllm:num_requests_waiting/gauge`, which the
autoscaler reads per instance. The key guard protects /metrics, so the scrape sends the API key as a Bearer token
read from a root-only file the VM writes from Secret Manager at boot (fetch-secrets.sh); the key is never in the
user data or in this configuration.
"""

from __future__ import annotations

from .cloudinit import METRICS_TOKEN_FILE, MetricsScrape

OPS_AGENT_CONFIG = "/etc/google-cloud-ops-agent/config.yaml"
QUEUE_METRIC = "prometheus.googleapis.com/vllm:num_requests_waiting/gauge"
# The agent's major version; its repository script installs the newest 2.x.
OPS_AGENT_VERSION = "2.*.*"
# The agent takes no scrape interval under 10 s; 15 s gives the autoscaler four points a minute.
SCRAPE_INTERVAL = "15s"
KEPT_METRICS = "vllm:num_requests_(waiting|running)"


def ops_agent_config(port: int) -> dict:
    """The agent's user configuration (merged with its built-in one): vLLM's metrics on; the built-in log
    collection off, so the replica's identity needs only to write metrics."""
    return {
        "logging": {"service": {"pipelines": {"default_pipeline": {"receivers": []}}}},
        "metrics": {
            "receivers": {"vllm": {"type": "prometheus", "config": {"scrape_configs": [{
                "job_name": "vllm",
                "scrape_interval": SCRAPE_INTERVAL,
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": METRICS_TOKEN_FILE},
                "static_configs": [{"targets": [f"localhost:{port}"]}],
                # Only the queue gauges: Cloud Monitoring bills per sample, and vLLM exports dozens of histograms.
                "metric_relabel_configs": [{"source_labels": ["__name__"], "regex": KEPT_METRICS, "action": "keep"}],
            }]}}},
            "service": {"pipelines": {"vllm": {"receivers": ["vllm"]}}},
        },
    }


def ops_agent_scrape(port: int) -> MetricsScrape:
    return MetricsScrape(
        config_path=OPS_AGENT_CONFIG,
        config=ops_agent_config(port),
        install=["bash", "-c", "cd /tmp && curl -sSfO https://dl.google.com/cloudagents/add-google-cloud-ops-agent-"
                 f"repo.sh && bash add-google-cloud-ops-agent-repo.sh --also-install --version='{OPS_AGENT_VERSION}'"],
    )
