"""GPU sizing: the defaults a user gets for each machine, and the refusals that save a failed boot."""

from __future__ import annotations

import pytest

from pixtral_deploy.errors import ConfigError
from pixtral_deploy.spec import load_spec

AWS = {"target": "aws"}
GCP = {"target": "gcp"}


@pytest.mark.parametrize("raw,tensor_parallel,quantization", [
    ({**AWS, "instanceType": "g6e.xlarge"}, 1, None),          # one L40S 48 GB: bf16 with room for 32k context
    ({**AWS, "instanceType": "g6e.12xlarge"}, 4, None),        # four GPUs: shard over all of them
    ({**AWS, "instanceType": "g6.xlarge"}, 1, "fp8"),          # one L4 24 GB: bf16 does not fit, fp8 does
    ({**AWS, "instanceType": "g5.12xlarge"}, 4, None),
    ({**GCP, "machineType": "g2-standard-24"}, 2, None),       # two L4: bf16 sharded
    ({**GCP, "machineType": "g2-standard-8"}, 1, "fp8"),
    ({**AWS, "instanceType": "g6.xlarge", "maxModelLen": "4096", "gpuMemoryUtilization": "0.95"}, 1, "fp8"),
])
def test_derived_tensor_parallel_and_precision(raw, tensor_parallel, quantization):
    deployment = load_spec(raw)
    assert deployment.server.tensor_parallel_size == tensor_parallel
    assert deployment.server.quantization == quantization


def test_fp8_fallback_is_announced():
    deployment = load_spec({**AWS, "instanceType": "g6.xlarge"})
    assert any("fp8" in w and "pixtral:instanceType g6.xlarge" in w for w in deployment.warnings)


def test_explicit_fp8_is_not_warned_about():
    deployment = load_spec({**AWS, "instanceType": "g6.xlarge", "quantization": "fp8"})
    assert not any("fp8" in w for w in deployment.warnings)


def test_explicit_bf16_that_cannot_fit_is_refused_with_what_would():
    with pytest.raises(ConfigError) as error:
        load_spec({**AWS, "instanceType": "g6.xlarge", "quantization": "none"})
    message = str(error.value)
    assert "pixtral:instanceType g6.xlarge" in message and "g6e.xlarge" in message


def test_a_shorter_context_is_suggested_when_it_would_fit():
    with pytest.raises(ConfigError, match=r"lower pixtral:maxModelLen to \d+"):
        load_spec({**AWS, "instanceType": "g6e.xlarge", "quantization": "none", "maxModelLen": "131072"})


def test_type_outside_the_catalog_is_sized_from_gpu_count_and_memory():
    deployment = load_spec({**AWS, "instanceType": "p6-b200.48xlarge", "gpuCount": "8", "gpuMemoryGb": "180"})
    assert deployment.server.tensor_parallel_size == 8 and deployment.server.quantization is None


def test_gpu_memory_override_beats_the_catalog():
    # A user who knows better (e.g. MIG slices) can shrink the GPU the plan assumes.
    deployment = load_spec({**AWS, "instanceType": "g6e.xlarge", "gpuMemoryGb": "24"})
    assert deployment.server.quantization == "fp8"


def test_explicit_tensor_parallel_within_the_gpus_is_kept():
    deployment = load_spec({**AWS, "instanceType": "g6e.12xlarge", "tensorParallelSize": "2"})
    assert deployment.server.tensor_parallel_size == 2


def test_unknown_model_is_served_without_sizing_but_with_a_warning():
    deployment = load_spec({**AWS, "model": "someorg/some-vlm"})
    assert any("not in the sizing catalog" in w for w in deployment.warnings)
    assert deployment.server.mistral_format is False
