"""The stack's artefact store on AWS (pixtral:warmStarts): one private S3 bucket, and the rights of the replicas' role
on it, which may read every artefact and publish under the artefact and claim prefixes only
(pixtral_deploy/artefacts.py has the layout and the numbers).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from pixtral_deploy.artefacts import (
    ARTEFACT_PREFIXES,
    ARTEFACT_RETENTION_DAYS,
    CLAIM_EXPIRY_DAYS,
    CLAIMS_PREFIX,
    INCOMPLETE_UPLOAD_DAYS,
    POD_ARTEFACT_PREFIXES,
    POD_WRITABLE_PREFIXES,
    WRITABLE_PREFIXES,
    store_url,
)

# SSE-S3 (AES-256 with keys S3 owns), not a KMS key of the stack's: the bucket holds public software and the model's
# files, never a secret, and who reads it is decided by IAM alone (the replicas' role, the account's
# administrators). A customer-managed key would repeat that grant in a key policy ($1 a month per stack), add a KMS
# request to every part of every 25 GB download and a kms:Decrypt / kms:GenerateDataKey right to the replicas' role.
SSE_ALGORITHM = "AES256"


def replica_rights(bucket_arn: str) -> dict:
    """The replicas' rights on the store: read any object; list the bucket, so that a missing manifest answers 404
    (a cold path) rather than 403; write (and abort their own multipart uploads) under the artefact and claim prefixes
    only. No delete and no bucket-level write: an artefact leaves by the lifecycle rules alone. vLLM streaming the
    weights needs no more: runai-model-streamer-s3 0.17.0 lists them (ListObjectsV2: s3:ListBucket), downloads the
    small files (HeadObject and GetObject: s3:GetObject) and streams the safetensors with ranged GetObject; the boot's
    check that they match their manifest is the same listing."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadArtefacts", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/*"},
        {"Sid": "MissingIsNotFound", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {"Sid": "PublishArtefacts", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn}/{prefix}*" for prefix in WRITABLE_PREFIXES]},
    ]}


def pod_rights(bucket_arn: str, under: str = "") -> dict:
    """The pods' rights on the store: the VMs' rights narrowed to the model's files and their claims
    (artefacts.POD_ARTEFACT_PREFIXES says why the pods need no other), under `under` (a user's bucket's prefix,
    "PREFIX/"; docs/kubernetes.md prints these rights for it). Listing stays bucket-wide, as for the VMs: S3 answers a
    missing manifest with 404 only to a caller that may list the bucket, and 403 would read as a broken store rather
    than "not published yet"; it shows key names, never data."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadModel", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"{bucket_arn}/{under}{prefix}*" for prefix in POD_ARTEFACT_PREFIXES]},
        {"Sid": "MissingIsNotFound", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {"Sid": "PublishModel", "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{bucket_arn}/{under}{prefix}*" for prefix in POD_WRITABLE_PREFIXES]},
    ]}


def pod_trust_policy(account_id: str, cluster_arn: str) -> str:
    """EKS Pod Identity may hand the role to pods of this cluster only: the service principal with sts:AssumeRole
    and sts:TagSession (it tags the session with the pod's namespace and service account), narrowed by the
    confused-deputy conditions AWS documents for it
    (https://docs.aws.amazon.com/eks/latest/userguide/pod-id-role.html)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}, "ArnEquals": {"aws:SourceArn": cluster_arn}},
    }]})


def tls_only_policy(bucket_arn: str) -> dict:
    """The bucket refuses every request that does not come over TLS, from anyone."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [bucket_arn, f"{bucket_arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]}


def lifecycle_rules() -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Claims go after a day (a publisher that died releases its claim), unfinished uploads are aborted after a
    day, and every artefact goes ARTEFACT_RETENTION_DAYS after it was published."""
    def expire(prefix: str, days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
        return aws.s3.BucketLifecycleConfigurationRuleArgs(
            id=f"expire-{prefix.rstrip('/')}", status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days))

    return [
        expire(CLAIMS_PREFIX, CLAIM_EXPIRY_DAYS),
        *[expire(prefix, ARTEFACT_RETENTION_DAYS) for prefix in ARTEFACT_PREFIXES],
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-uploads", status="Enabled",
            # An empty filter: the whole bucket.
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=INCOMPLETE_UPLOAD_DAYS)),
    ]


class AwsArtefactStore(pulumi.ComponentResource):
    """A private, encrypted, TLS-only S3 bucket that `pulumi destroy` deletes with its contents; `url` is what the
    boot reads (`s3://BUCKET`)."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pixtral:aws:ArtefactStore", name, None, opts)
        # Auto-named (the name and a random suffix): bucket names are global across every AWS account.
        bucket = aws.s3.Bucket(
            name,
            # Everything in it is rebuilt by the next cold boot: destroy empties and deletes it with the stack.
            force_destroy=True,
            tags={"Name": f"pixtral-{pulumi.get_stack()}-artefacts", "pixtral:stack": pulumi.get_stack()},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # S3 refuses concurrent changes to one bucket's configuration ("A conflicting conditional operation is
        # currently in progress"): each setting waits for the one before.
        previous: pulumi.Resource = aws.s3.BucketPublicAccessBlock(
            f"{name}-private", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
            ignore_public_acls=True, restrict_public_buckets=True, opts=pulumi.ResourceOptions(parent=self))
        # ACLs off: the bucket's owner owns every object, and only policies grant access.
        previous = aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=self._after(previous))
        previous = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3
                .BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm=SSE_ALGORITHM))],
            opts=self._after(previous))
        previous = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=bucket.id, rules=lifecycle_rules(), opts=self._after(previous))
        aws.s3.BucketPolicy(f"{name}-tls-only", bucket=bucket.id,
                            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
                            opts=self._after(previous))

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.url = bucket.bucket.apply(lambda bucket_name: store_url("s3", bucket_name))
        self.register_outputs({"url": self.url})

    def _after(self, previous: pulumi.Resource) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=[previous])

    def grant(self, name: str, role: aws.iam.Role, parent: pulumi.Resource) -> list[pulumi.Resource]:
        """The replicas' rights on the store, as an inline policy of their role; returns what a replica must wait
        for before it boots (the rights, and the store with its settings)."""
        rights = aws.iam.RolePolicy(
            f"{name}-use-artefacts", role=role.id,
            policy=self.bucket_arn.apply(lambda arn: json.dumps(replica_rights(arn))),
            opts=pulumi.ResourceOptions(parent=parent))
        return [rights, self]

    def grant_pods(self, name: str, cluster_name: pulumi.Input[str], namespace: str, service_account: str,
                   parent: pulumi.Resource) -> list[pulumi.Resource]:
        """A role for the pods' Kubernetes service account through EKS Pod Identity (an association of the
        cluster's namespace/serviceaccount with the role), with pod_rights on this store; returns what the pods
        must wait for: EKS hands a pod its role's credentials only if the association exists when the pod is
        created."""
        child = pulumi.ResourceOptions(parent=parent)
        invoke = pulumi.InvokeOptions(parent=parent)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        cluster_arn = pulumi.Output.format("arn:aws:eks:{0}:{1}:cluster/{2}", region, account, cluster_name)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(account, cluster_arn).apply(lambda v: pod_trust_policy(*v)),
            opts=child)
        rights = aws.iam.RolePolicy(
            f"{name}-use-artefacts", role=role.id,
            policy=self.bucket_arn.apply(lambda arn: json.dumps(pod_rights(arn))), opts=child)
        association = aws.eks.PodIdentityAssociation(
            f"{name}-identity", cluster_name=cluster_name, namespace=namespace, service_account=service_account,
            role_arn=role.arn, opts=child)
        return [rights, association, self]
