"""A toy target, as another package would add one: this module registers it when imported, and an entry point in
the group `pixtral_deploy.targets` names the module (tests/test_target_registry.py writes that entry point).

Nothing outside this file knows the name `toy`: the keys, the program, `pixtralctl render` and `pixtralctl status`
take it through the registry alone.
"""

from __future__ import annotations

from typing import Any

from pixtral_deploy.targets import Hardware, SecretStore, Target, register
from pixtralctl.status import Replica

TOY_GPU = Hardware(where="the toy's one machine", gpu_name="nvidia-l40s", gpu_count=1, gpu_memory_gb=48, cloud="toy")


class Toy(Target):
    name = "toy"
    summary = "one machine in a toy cloud"
    platform = "vm"
    creates_machines = True
    secret_store = SecretStore(1024, "the toy cloud's vault holds 1 KiB")
    status_module = __name__

    def hardware(self, settings: Any, spec_fields: dict[str, Any]) -> tuple[list[Hardware], Hardware | None]:
        return [TOY_GPU], None

    def deploy(self, stack: Any, api_key: Any, ca: Any) -> dict[str, Any]:
        import pulumi

        from pixtral_deploy.server import vllm_args

        spec = stack.spec
        box = pulumi.ComponentResource("toy:index:GpuBox", "pixtral", props={})
        box.register_outputs({})
        # The one server description: the arguments every target starts vLLM with.
        pulumi.export("toyVllmArgs", vllm_args(spec.server))
        return {"endpoint": spec.endpoint_url("toy-box.example.internal"), "box": "pixtral"}


def replicas(outputs: dict) -> list[Replica]:
    """What `pixtralctl status` prints for the toy: its one box, from the stack's outputs."""
    return [Replica(name=outputs["box"], zone="toy-zone-1", type="toy-gpu", state="running", health="healthy")]


register(Toy())
