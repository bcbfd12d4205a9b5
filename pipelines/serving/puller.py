"""Init container of the Triton pods: pull a model repository from S3, decrypt it if encrypted.

    python -m pipelines.serving.puller pull --bucket B --prefix credit-risk/ \
        --dest /models/credit-risk --decrypt-if-encrypted

Credentials come from IRSA (the pod's service account); decryption keys from the backend the
artifact manifest names (Vault transit through Kubernetes auth, KMS, or a mounted key file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines import artifacts as art


def key_service_for(located: art.Located) -> art.KeyService:
    """The key service an encrypted artifact names in its manifest.

    Pod settings come from the environment: ``VAULT_K8S_ROLE`` (Kubernetes auth role),
    ``AWS_REGION`` (KMS) and ``SOVML_LOCAL_KEY`` (a mounted local key file).
    """
    return art.open_artifact_key_service(
        located,
        local_key_file=os.environ.get("SOVML_LOCAL_KEY"),
        vault_role=os.environ.get("VAULT_K8S_ROLE"),
        region=os.environ.get("AWS_REGION"),
    )


def pull(
    bucket: str, prefix: str, dest: Path, *, decrypt: bool, client: object = None
) -> list[Path]:
    """Download every object under ``prefix`` into ``dest``; decrypt ``*.enc`` artifacts."""
    import boto3

    s3 = client or boto3.client("s3")
    dest.mkdir(parents=True, exist_ok=True)
    downloaded: list[Path] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):  # type: ignore[attr-defined]
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :].lstrip("/")
            if not rel or ".." in Path(rel).parts:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))  # type: ignore[attr-defined]
            downloaded.append(target)
    if decrypt:
        for enc in sorted(p for p in dest.iterdir() if p.name.endswith(".enc")):
            located = art.locate(enc)
            art.decrypt_path(enc, key_service_for(located), out=dest / enc.name[: -len(".enc")])
    return downloaded


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of the init container."""
    parser = argparse.ArgumentParser(prog="model-puller", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pull", help="Download (and decrypt) a model repository prefix.")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--dest", required=True, type=Path)
    p.add_argument("--decrypt-if-encrypted", action="store_true")
    args = parser.parse_args(argv)
    try:
        files = pull(args.bucket, args.prefix, args.dest, decrypt=args.decrypt_if_encrypted)
    except art.ArtifactError as exc:
        print(f"model-puller: {exc}", file=sys.stderr)
        return 1
    print(
        f"model-puller: {len(files)} objects from s3://{args.bucket}/{args.prefix} -> {args.dest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
