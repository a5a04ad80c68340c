"""Bad input fails before any resource is declared, with one message naming the key, the value and what is allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_stack

from pixtral_deploy.keys import FIRST_UNPRIVILEGED_PORT

# (stack, settings, key the message must name, value it must quote, words of what is allowed)
BAD_CONFIGS = [
    ("aws", {"pixtral:target": "azure"}, "pixtral:target", "azure", "aws, gcp"),
    ("aws", {"pixtral:port": "70000"}, "pixtral:port", "70000", "1024 to 65535"),
    # vLLM runs as the unprivileged vllm user (VM) and with every capability dropped (pod): it cannot bind these.
    ("aws", {"pixtral:port": "443"}, "pixtral:port", "443", "cannot bind a lower port"),
    ("k8s", {"pixtral:port": "80"}, "pixtral:port", "80", "cannot bind a lower port"),
    ("aws", {"pixtral:maxModelLen": "90.0"}, "pixtral:maxModelLen", ": 90.0 is", "whole number"),
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
    ("aws", {"pixtral:instanceType": "g2-standard-24"}, "pixtral:instanceType", "g2-standard-24", "an AWS type"),
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
    # Non-finite numbers used to crash the sizing with a traceback.
    ("aws", {"pixtral:gpuMemoryGb": "nan"}, "pixtral:gpuMemoryGb", "nan", "finite number"),
    ("k8s", {"pixtral:gpuMemoryGb": "inf"}, "pixtral:gpuMemoryGb", "inf", "finite number"),
    ("aws", {"pixtral:gpuMemoryUtilization": "nan"}, "pixtral:gpuMemoryUtilization", "nan", "(0, 1]"),
    # A trailing newline used to pass the name checks and split the VM's vllm.args line in two.
    ("aws", {"pixtral:model": "mistralai/Pixtral-12B-2409\n"}, "pixtral:model", "Pixtral-12B-2409", "control"),
    ("aws", {"pixtral:vllmVersion": "0.32.0\n"}, "pixtral:vllmVersion", "0.32.0", "control"),
    ("k8s", {"pixtral:namespace": "pixtral\n"}, "pixtral:namespace", "pixtral", "control"),
    ("k8s", {"pixtral:namespace": "kube-system"}, "pixtral:namespace", "kube-system", "Kubernetes owns"),
    ("gke", {"pixtral:namespace": "default"}, "pixtral:namespace", "default", "deletes it on destroy"),
    ("k8s", {"pixtral:serviceType": "ClusterIP", "pixtral:allowedCidrs": '["10.0.0.0/8"]'}, "pixtral:allowedCidrs",
     "10.0.0.0/8", "only a LoadBalancer Service can restrict"),
    ("gcp", {"gcp:project": "my-gcp-project"}, "gcp:project", "my-gcp-project", "pulumi config set gcp:project"),
    ("gke", {"gcp:project": ""}, "gcp:project", "not set", "pulumi config set gcp:project"),
    ("aws", {"pixtral:target": ""}, "pixtral:target", "not set", "pulumi config set pixtral:target aws"),
    # Keys outside the namespace: the typo is named, with the key meant.
    ("aws", {"pixtrl:instanceType": "g6e.2xlarge"}, "pixtrl:instanceType", "did you mean pixtral:instanceType",
     "pixtral:KEY"),
    ("aws", {"pixtral-deploy:spot": "true"}, "pixtral-deploy:spot", "did you mean pixtral:spot", "pixtral:KEY"),
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
    assert "Traceback" not in message and "None" not in message
    assert run["resources"] == [], f"resources were declared before the error: {[r['name'] for r in run['resources']]}"


def test_every_bad_key_of_a_stack_is_reported_at_once():
    run = run_stack("aws", {"pixtral:port": "http", "pixtral:spot": "yes", "pixtrl:model": "x"})
    message = run["error"]
    assert message.startswith("3 settings are wrong"), message
    for part in ("pixtral:port: http", "pixtral:spot: yes", "pixtrl:model"):
        assert part in message, message
    assert run["resources"] == []


def test_allowed_cidrs_that_together_cover_the_internet_get_the_warning():
    run = run_stack("aws", {"pixtral:allowedCidrs": '["0.0.0.0/1", "128.0.0.0/1"]'})
    assert any("open to the whole Internet" in line for line in run["log"]), run["log"]
    narrow = run_stack("aws", {"pixtral:allowedCidrs": '["0.0.0.0/1"]'})
    assert not any("open to the whole Internet" in line for line in narrow["log"]), narrow["log"]


def test_user_data_over_ec2s_limit_is_refused_with_the_other_settings_before_any_resource():
    # EC2 takes 16 KB of (compressed) user data; random text does not compress, so 400 such arguments cannot fit.
    import json
    import random
    import string

    rnd = random.Random(7)
    domains = ["".join(rnd.choices(string.ascii_lowercase, k=60)) + ".example.com" for _ in range(400)]
    args = [arg for domain in domains for arg in ("--allowed-media-domains", domain)]
    run = run_stack("aws", {"pixtral:extraArgs": json.dumps(args)})
    assert run["error"] and "pixtral:extraArgs" in run["error"] and "16384-byte user-data limit" in run["error"]
    assert len(run["error"]) < 600, "the message must not echo the whole list"
    assert run["resources"] == []


# The program run under the mock engine with a cloud whose VPC has no subnet in a zone that offers the type.
_NO_SUBNET_RUN = """
import sys
from pixtral_render import engine
answer = engine._make_mocks
def cloud_without_subnets(config, run, options):
    mocks = answer(config, run, options)
    call = mocks.call
    mocks.call = lambda args: {"ids": []} if args.token == "aws:ec2/getSubnets:getSubnets" else call(args)
    return mocks
engine._make_mocks = cloud_without_subnets
print(engine.run_program("aws").error)
"""


def test_a_vpc_without_a_subnet_where_the_type_is_offered_is_one_clean_message():
    done = subprocess.run([sys.executable, "-c", _NO_SUBNET_RUN], capture_output=True, text=True, cwd=PROJECT_DIR,
                          timeout=300)
    message = done.stdout.strip()
    assert message.startswith("pixtral:vpcId: no subnet of the VPC is in a zone that offers g6e.xlarge"), done
    assert "pixtral:subnetId" in message and "Traceback" not in done.stdout + done.stderr


_BIND = "import socket, sys; socket.socket().bind(('127.0.0.1', int(sys.argv[1])))"


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root (CI runs as root)")
def test_the_lowest_port_allowed_is_the_lowest_an_unprivileged_server_can_bind():
    # Why pixtral:port starts at 1024: vLLM runs as the unprivileged vllm user on VMs, with every capability dropped
    # in pods. The kernel's own threshold decides, as it will on the VM (Ubuntu keeps the default, 1024).
    lowest = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    assert lowest == FIRST_UNPRIVILEGED_PORT, "this kernel's threshold differs; the check would prove nothing here"
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", _BIND]
    refused = subprocess.run([*as_nobody, str(FIRST_UNPRIVILEGED_PORT - 1)], capture_output=True, text=True)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    # 0 lets the kernel pick a free port, which it takes from the unprivileged range.
    assert subprocess.run([*as_nobody, "0"], capture_output=True, text=True).returncode == 0
    assert "pixtral:port: 1023 is not allowed" in run_stack("aws", {"pixtral:port": "1023"})["error"]
