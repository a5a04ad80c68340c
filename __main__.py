"""pixtral-deploy: Pixtral-12B behind an OpenAI-compatible vLLM endpoint, on the target the stack names."""

import pulumi

from components.stack_ca import StackCa
from pixtral_deploy.coldstart import boot_paths, wake_from_zero, warm_start
from pixtral_deploy.config import read_stack
from pixtral_deploy.errors import ConfigError
from pixtral_deploy.fleet_plan import wake_plan


def deploy() -> None:
    from components.api_key import ApiKey

    stack = read_stack()
    spec = stack.spec
    pulumi.log.info(spec.describe())
    for estimate in boot_paths(spec):
        pulumi.log.info(estimate)
    if warm := warm_start(spec):
        pulumi.log.info(f"warm pool: a stopped {warm.machine} resumes to its first answer in about {warm.total:.0f} "
                        f"s (boot {warm.boot:.0f} s, load {warm.load:.0f} s, warm-up {warm.warmup:.0f} s)")
    if wake := wake_from_zero(spec):
        detection, start = wake
        pulumi.log.info(f"scale to zero: no replica while idle; a request then gets the load balancer's error at "
                        f"once, a replica starts within about {detection} s and answers about {start.total:.0f} s "
                        f"later ({start.kind}): about "
                        f"{detection + start.total:.0f} s from the first request to the first answer")
    for warning in spec.warnings:
        pulumi.log.warn(warning)
    api_key = ApiKey("pixtral", stack.secrets.api_key).value
    ca = StackCa("pixtral") if spec.stack_ca_needed else None
    # The target's class declares its components (pixtral_deploy/targets).
    outputs = spec.runs_on.deploy(stack, api_key, ca)
    pulumi.export("target", spec.target)
    pulumi.export("model", spec.server.served_model_name)
    pulumi.export("baseUrl", pulumi.Output.concat(outputs["endpoint"], "/v1"))
    pulumi.export("apiKey", api_key)
    if ca is not None:
        # Public: what clients trust to verify the endpoint (curl --cacert, httpx verify=, pixtralctl).
        pulumi.export("caCertificate", ca.cert_pem)
    for name, value in outputs.items():
        pulumi.export(name, value)
    if wake := wake_plan(spec):
        # What `pixtralctl status`, `wait` and `smoke` say of a fleet at zero, and how long they wait for its wake.
        pulumi.export("scaleToZero", wake.output())


def main() -> None:
    try:
        deploy()
    except ConfigError as error:
        # RunError: the CLI shows the message alone, without a Python stack trace.
        raise pulumi.RunError(str(error)) from None


main()
