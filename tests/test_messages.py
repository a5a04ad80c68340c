"""Messages that used to send a user the wrong way now name what to change."""

from __future__ import annotations

from conftest import run_stack


def test_an_odd_gpu_count_per_pod_names_gpus_per_replica_not_tensor_parallel():
    run = run_stack("k8s", {"pixtral:gpusPerReplica": "3"})
    assert run["error"].startswith("pixtral:gpusPerReplica: 3 is not allowed; expected one of 1, 2, 4, 8, 16"), \
        run["error"]
    assert "tensorParallelSize" not in run["error"]


def test_a_model_outside_the_catalogue_says_its_fit_is_not_checked():
    run = run_stack("aws", {"pixtral:model": "org/unknown-model"})
    (line,) = [line for line in run["log"] if line.startswith("info: aws: vLLM")]
    assert "fit not checked (the model is not in the sizing catalogue)" in line and "unsized" not in line


def test_a_cidr_with_host_bits_names_the_network_to_write():
    run = run_stack("aws", {"pixtral:allowedCidrs": '["10.1.2.3/8"]'})
    assert "10.1.2.3/8 has bits set after its /8 prefix, so write 10.0.0.0/8 (or 10.1.2.3/32" in run["error"]
    assert "has host bits set)" not in run["error"]


def test_a_fleet_describes_https_at_the_balancer_not_http():
    run = run_stack("aws-fleet")
    (line,) = [line for line in run["log"] if line.startswith("info: aws: vLLM")]
    assert "bf16 weights, HTTPS at the load balancer (which forwards plain HTTP to the replicas" in line
    assert ", HTTP;" not in line
