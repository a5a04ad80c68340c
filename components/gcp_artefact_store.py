"""The stack's artefact store on GCP (pixtral:warmStarts): one private GCS bucket in the replicas' region, and the
rights of their service account on it, which may read every object and create new ones, never overwrite or delete
(pixtral_deploy/artefacts.py has the layout and the numbers).

Encryption at rest is Cloud Storage's default, AES-256 with Google-managed keys: the bucket holds public software
and the model's files, never a secret, and who reads it is decided by IAM alone. A Cloud KMS key of the stack's would
repeat that grant in the key's IAM (and need the Cloud Storage service agent granted on it) without narrowing it.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.gcp_shared import service_account_id, stack_labels
from pixtral_deploy.artefacts import (
    ARTEFACT_PREFIXES,
    ARTEFACT_RETENTION_DAYS,
    CLAIM_EXPIRY_DAYS,
    CLAIMS_PREFIX,
    INCOMPLETE_UPLOAD_DAYS,
    POD_ARTEFACT_PREFIXES,
    POD_WRITABLE_PREFIXES,
    store_url,
)

# Read (objects.get and list: a missing manifest is a 404) and create-only (objects.create, multipart uploads): the
# creator role cannot overwrite or delete an object, which is what the claims' conditional creates rely on. vLLM
# streaming the weights needs no more: runai-model-streamer-gcs 0.17.0 lists them (list_blobs: objects.list) and
# reads them (objects.get), with the VM's service account from the metadata server.
REPLICA_ROLES = ("roles/storage.objectViewer", "roles/storage.objectCreator")


def pod_conditions(bucket: str, within: str = "") -> dict[str, str]:
    """CEL conditions that narrow REPLICA_ROLES to the pods' prefixes (artefacts.POD_ARTEFACT_PREFIXES says why no
    other), under `within` (a user's bucket's prefix, "PREFIX/"; docs/kubernetes.md prints them for it), by role. An
    object's resource name is `projects/_/buckets/BUCKET/objects/KEY`
    (https://cloud.google.com/iam/docs/conditions-resource-attributes#resource-name); the viewer also keeps the bucket
    itself, for objects.list: as on S3, a missing manifest is then "not found", not "forbidden"."""
    def under(prefixes: tuple[str, ...]) -> list[str]:
        return [f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{within}{prefix}")'
                for prefix in prefixes]

    return {"roles/storage.objectViewer": " || ".join([f'resource.name == "projects/_/buckets/{bucket}"',
                                                       *under(POD_ARTEFACT_PREFIXES)]),
            "roles/storage.objectCreator": " || ".join(under(POD_WRITABLE_PREFIXES))}


def lifecycle_rules() -> list[gcp.storage.BucketLifecycleRuleArgs]:
    """Claims go after a day (a publisher that died releases its claim), unfinished multipart uploads are aborted
    after a day, and every artefact goes ARTEFACT_RETENTION_DAYS after it was published."""
    def rule(action: str, days: int, prefixes: tuple[str, ...] = ()) -> gcp.storage.BucketLifecycleRuleArgs:
        return gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type=action),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=days, matches_prefixes=list(prefixes) or None))

    return [rule("Delete", CLAIM_EXPIRY_DAYS, (CLAIMS_PREFIX,)),
            rule("Delete", ARTEFACT_RETENTION_DAYS, ARTEFACT_PREFIXES),
            rule("AbortIncompleteMultipartUpload", INCOMPLETE_UPLOAD_DAYS)]


class GcpArtefactStore(pulumi.ComponentResource):
    """A private GCS bucket in `region` that `pulumi destroy` deletes with its contents; `url` is what the boot
    reads (`gs://BUCKET`)."""

    bucket_name: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, project: str, region: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:gcp:ArtefactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        api = gcp.projects.Service(
            f"{name}-storage-api", service="storage.googleapis.com", project=project,
            # Other workloads in the project use Cloud Storage: never turn it off on destroy.
            disable_on_destroy=False, opts=child)
        # Auto-named (the name and a random suffix): bucket names are global across every project.
        bucket = gcp.storage.Bucket(
            name,
            project=project,
            # Beside the replicas: no inter-region transfer fee, and the fetch runs at the VM's network speed.
            location=region.upper(),
            storage_class="STANDARD",
            # Everything in it is rebuilt by the next cold boot: destroy empties and deletes it with the stack.
            force_destroy=True,
            # IAM alone decides access (no object ACLs), and nothing in it can be made public.
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # No soft delete: an expired or destroyed artefact is rebuilt, never restored, so keeping it billed
            # for another 7 days buys nothing.
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(retention_duration_seconds=0),
            lifecycle_rules=lifecycle_rules(),
            labels=stack_labels(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[api]),
        )
        self.bucket_name = bucket.name
        self.url = bucket.name.apply(lambda bucket_name: store_url("gs", bucket_name))
        self.register_outputs({"url": self.url})

    def grant(self, name: str, account: gcp.serviceaccount.Account,
              parent: pulumi.Resource) -> list[pulumi.Resource]:
        """The replicas' service account reads and creates objects in this bucket only (bucket-level members, no
        project-level role); returns what a replica must wait for before it boots (the rights, and the store)."""
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        rights = [gcp.storage.BucketIAMMember(
            f"{name}-artefacts-{role.rsplit('.', 1)[-1].lower()}", bucket=self.bucket_name, role=role,
            member=member, opts=pulumi.ResourceOptions(parent=parent)) for role in REPLICA_ROLES]
        return [*rights, self]

    def grant_pods(self, name: str, project: str, namespace: str, service_account: str,
                   parent: pulumi.Resource) -> tuple[pulumi.Output[str], list[pulumi.Resource]]:
        """A Google service account of the pods' own, which the pods' Kubernetes service account acts as through
        Workload Identity (roles/iam.workloadIdentityUser for `PROJECT.svc.id.goog[NAMESPACE/KSA]`, and the KSA's
        `iam.gke.io/gcp-service-account` annotation: https://cloud.google.com/kubernetes-engine/docs/how-to/
        workload-identity, "Link Kubernetes ServiceAccounts to IAM"), with REPLICA_ROLES on this bucket under
        pod_conditions. Returns its email (the annotation's value) and what the pods must wait for."""
        child = pulumi.ResourceOptions(parent=parent)
        account = gcp.serviceaccount.Account(
            f"{name}-account", project=project, account_id=service_account_id(pulumi.get_stack(), "artefacts"),
            display_name="Pixtral pods reading and publishing the model in the stack's artefact store", opts=child)
        binding = gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity", service_account_id=account.name, role="roles/iam.workloadIdentityUser",
            member=f"serviceAccount:{project}.svc.id.goog[{namespace}/{service_account}]", opts=child)
        member = account.email.apply(lambda email: f"serviceAccount:{email}")
        conditions = self.bucket_name.apply(pod_conditions)
        rights = [gcp.storage.BucketIAMMember(
            f"{name}-artefacts-{role.rsplit('.', 1)[-1].lower()}", bucket=self.bucket_name, role=role, member=member,
            condition=gcp.storage.BucketIAMMemberConditionArgs(
                title=f"pixtral pods: {role.rsplit('.', 1)[-1]} on the model only",
                expression=conditions.apply(lambda by_role, role=role: by_role[role])),
            opts=child) for role in REPLICA_ROLES]
        return account.email, [binding, *rights, self]
