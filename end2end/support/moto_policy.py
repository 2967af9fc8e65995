"""Edits a repository policy in moto by hand, as someone outside the portal would.

Usage: moto_policy.py ENDPOINT ACCOUNT REPOSITORY remove-portal-statement
       moto_policy.py ENDPOINT ACCOUNT REPOSITORY push TAG [TAG ...]   (one image per tag, as CI would)
       moto_policy.py ENDPOINT ACCOUNT REPOSITORY terraform-module    (what the Terraform module made:
                      MUTABLE, scan on push, production's read-only statement)
Runs with the project's venv (boto3 comes with moto).
"""
import json
import sys

import boto3

endpoint, account, repository, action = sys.argv[1:5]
creds = boto3.client(
    "sts", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
).assume_role(RoleArn=f"arn:aws:iam::{account}:role/hand-edit", RoleSessionName="hand-edit")["Credentials"]
ecr = boto3.client(
    "ecr",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=creds["AccessKeyId"],
    aws_secret_access_key=creds["SecretAccessKey"],
    aws_session_token=creds["SessionToken"],
)
if action == "remove-portal-statement":
    policy = json.loads(ecr.get_repository_policy(repositoryName=repository)["policyText"])
    policy["Statement"] = [s for s in policy["Statement"] if s.get("Sid") != "EcrPortalProductionPull"]
    policy["Statement"].append(
        {"Sid": "HandEdit", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::444444444444:root"}, "Action": "ecr:ListImages"}
    )
    ecr.set_repository_policy(repositoryName=repository, policyText=json.dumps(policy))
elif action == "terraform-module":
    ecr.create_repository(
        repositoryName=repository, imageTagMutability="MUTABLE", imageScanningConfiguration={"scanOnPush": True}
    )
    readonly = {
        "Sid": "ReadOnly",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::222222222222:root"]},
        "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
    }
    ecr.set_repository_policy(
        repositoryName=repository, policyText=json.dumps({"Version": "2012-10-17", "Statement": [readonly]})
    )
elif action == "push":
    import hashlib
    import time

    for tag in sys.argv[5:]:
        digest = hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1, "digest": f"sha256:{digest}"},
            # moto derives the image digest from the layers' digests: one layer of its own per image.
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1, "digest": f"sha256:{digest}"}],
        }
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        time.sleep(1.1)  # push times are in seconds: keep the order visible
else:
    raise SystemExit(f"unknown action {action}")
