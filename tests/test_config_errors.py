"""Bad input fails before any resource is declared, with one message naming the key, the value and what is allowed."""

from __future__ import annotations

import pytest
from conftest import run_stack

# (stack, settings, key the message must name, value it must quote, words of what is allowed)
BAD_CONFIGS = [
    ("aws", {"pixtral:target": "azure"}, "pixtral:target", "azure", "aws, gcp"),
    ("aws", {"pixtral:port": "70000"}, "pixtral:port", "70000", "1 to 65535"),
    ("aws", {"pixtral:port": "http"}, "pixtral:port", "http", "whole number"),
    ("aws", {"pixtral:maxImagesPerPrompt": "0"}, "pixtral:maxImagesPerPrompt", "0", "from 1"),
    ("aws", {"pixtral:gpuMemoryUtilization": "1.5"}, "pixtral:gpuMemoryUtilization", "1.5", "(0, 1]"),
    ("aws", {"pixtral:gpuMemoryUtilization": "0"}, "pixtral:gpuMemoryUtilization", "0", "(0, 1]"),
    ("aws", {"pixtral:allowedCidrs": '["10.0.0.0/33"]'}, "pixtral:allowedCidrs", "10.0.0.0/33", "CIDRs"),
    ("aws", {"pixtral:allowedCidrs": '"0.0.0.0/0"'}, "pixtral:allowedCidrs", "0.0.0.0/0", "list of strings"),
    ("aws", {"pixtral:quantization": "int4"}, "pixtral:quantization", "int4", "'fp8'"),
    ("aws", {"pixtral:spot": "yes"}, "pixtral:spot", "yes", "true or false"),
    ("aws", {"pixtral:extraArgs": '["--port", "9000"]'}, "pixtral:extraArgs", "--port", "pixtral:port"),
    ("aws", {"pixtral:extraArgs": '["--api-key=abc"]'}, "pixtral:extraArgs", "--api-key", "pixtral:apiKey"),
    ("aws", {"pixtral:instanceType": "t3.large"}, "pixtral:instanceType", "t3.large", "pixtral:gpuCount"),
    ("aws", {"pixtral:instanceType": "g2-standard-24"}, "pixtral:instanceType", "g2-standard-24", "aws type"),
    ("aws", {"pixtral:machineType": "g2-standard-8"}, "pixtral:machineType", "aws", "remove it"),
    ("aws", {"pixtral:maxImagePerPrompt": "2"}, "pixtral:maxImagePerPrompt", "maxImagesPerPrompt", "known keys"),
    ("aws", {"pixtral:vllmVersion": "latest"}, "pixtral:vllmVersion", "latest", "release number"),
    ("aws", {"pixtral:subnetId": "sg-123"}, "pixtral:subnetId", "sg-123", "subnet-"),
    ("aws", {"pixtral:tensorParallelSize": "2"}, "pixtral:tensorParallelSize", "2", "GPU(s)"),
    ("aws", {"pixtral:diskSizeGb": "20"}, "pixtral:diskSizeGb", "20", "from 100"),
    ("gcp", {"pixtral:acceleratorCount": "4"}, "pixtral:machineType", "g2-standard-24", "match"),
    ("gcp", {"pixtral:acceleratorType": "nvidia-b300"}, "pixtral:acceleratorType", "nvidia-b300", "gpuMemoryGb"),
    ("gcp", {"gcp:zone": ""}, "gcp:zone", "not set", "pulumi config set gcp:zone"),
    ("k8s", {"pixtral:serviceType": "Ingress"}, "pixtral:serviceType", "Ingress", "LoadBalancer, ClusterIP"),
    ("k8s", {"pixtral:gpusPerReplica": "0"}, "pixtral:gpusPerReplica", "0", "from 1"),
    ("k8s", {"pixtral:nodeSelector": '["gpu"]'}, "pixtral:nodeSelector", "gpu", "map"),
    ("k8s", {"pixtral:nodeSelector": "gpu=true"}, "pixtral:nodeSelector", "gpu=true", "map"),
    ("k8s", {"pixtral:gpuType": ""}, "pixtral:gpuType", "not set", "pixtral:gpuMemoryGb"),
    ("k8s", {"pixtral:gpuType": "nvidia-l4", "pixtral:quantization": "none"}, "pixtral:gpusPerReplica", "nvidia-l4",
     "Raise pixtral:gpusPerReplica to 2"),
    ("k8s", {"pixtral:namespace": "Pixtral_NS"}, "pixtral:namespace", "Pixtral_NS", "DNS label"),
    ("k8s", {"pixtral:instanceType": "g6e.xlarge"}, "pixtral:instanceType", "kubernetes", "remove it"),
    ("eks", {"pixtral:gpusPerReplica": "2"}, "pixtral:gpusPerReplica", "2", "g6e.xlarge"),
    ("gke", {"pixtral:replicas": "0"}, "pixtral:replicas", "0", "from 1"),
    # A model that cannot fit: T4s cannot run fp8 and 16 GB cannot hold the bf16 weights.
    ("gcp", {"pixtral:machineType": "n1-standard-8", "pixtral:acceleratorType": "nvidia-tesla-t4",
             "pixtral:acceleratorCount": "1"}, "pixtral:machineType", "n1-standard-8", "Types that fit"),
]


@pytest.mark.parametrize("stack,settings,key,value,allowed", BAD_CONFIGS,
                         ids=[f"{case[2]}={list(case[1].values())[0]}" for case in BAD_CONFIGS])
def test_bad_config_fails_clearly_before_any_resource(stack, settings, key, value, allowed):
    run = run_stack(stack, settings)
    assert run["error"], f"{settings} was accepted"
    message = run["error"]
    assert key in message and value in message and allowed in message, message
    assert "Traceback" not in message
    assert run["resources"] == [], f"resources were declared before the error: {[r['name'] for r in run['resources']]}"
