"""A cluster the user already runs: the provider that deploys into it, from their kubeconfig and context."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


class ExistingCluster(pulumi.ComponentResource):
    """Nothing is created in the cluster here; `provider` is how the workload reaches it."""

    provider: k8s.Provider
    node_selector: dict[str, str]
    storage_class: str | None

    def __init__(self, name: str, kubeconfig: pulumi.Input[str] | None, context: str | None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:kubernetes:ExistingCluster", name, None, opts)
        # Its GPU nodes carry whatever labels and storage classes their owner gave them (pixtral:nodeSelector,
        # pixtral:storageClass): the program adds none.
        self.node_selector = {}
        self.storage_class = None
        self.provider = k8s.Provider(
            name, kubeconfig=kubeconfig, context=context,
            # Stacks made before this component kept the provider at the top level: the alias keeps it.
            opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]))
        self.register_outputs({})
