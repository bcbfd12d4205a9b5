"""Init container of the Triton pods: pull a model repository from S3, decrypt it if encrypted.

    python -m pipelines.serving.puller pull --bucket B --prefix credit-risk/ \
        --dest /models/credit-risk --decrypt-if-encrypted

Credentials come from IRSA (the pod's service account); decryption keys from the backend the
artifact manifest names (Vault transit through Kubernetes auth, KMS, or a mounted key file),
through the same library path as ``sovml artifact decrypt``: the manifest is checked in full
before any key service is called, and ``SOVML_ARTIFACT_KEY_NAME`` pins the key it must name.

Exit codes follow ``sovml``'s: 0 done, 2 bad input (a tampered or foreign artifact, a
destination that may not be replaced), 3 the environment (S3 or the key service failing); on
SIGTERM the partial plaintext is removed and the process dies of the signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from pipelines import artifacts as art

EXIT_BAD_INPUT = 2
"""Bad input: the artifact, its manifest or the destination (the same code as ``sovml``)."""
EXIT_ENVIRONMENT = 3
"""The environment: S3, the key service, the file system."""


def key_service_for(located: art.Located) -> art.KeyService:
    """The key service an encrypted artifact names in its manifest.

    Pod settings come from the environment: ``VAULT_K8S_ROLE`` (Kubernetes auth role),
    ``AWS_REGION`` (KMS), ``SOVML_LOCAL_KEY`` (a mounted local key file) and
    ``SOVML_ARTIFACT_KEY_NAME`` (the transit key name or KMS key the artifacts must name; a
    manifest naming another key is refused before any call).
    """
    backend, _ = located.key()
    expected = os.environ.get("SOVML_ARTIFACT_KEY_NAME") or None
    return art.open_artifact_key_service(
        located,
        expected if backend != "local" else None,
        local_key_file=os.environ.get("SOVML_LOCAL_KEY"),
        vault_role=os.environ.get("VAULT_K8S_ROLE"),
        region=os.environ.get("AWS_REGION"),
    )


def decrypt_all(dest: Path) -> list[Path]:
    """Decrypt every ``*.enc`` artifact at the top of ``dest`` beside it; returns the outputs.

    A restarted init container finds its earlier output in the pod's volume: it is replaced,
    which the library allows only for an earlier output of the same artifact's files.
    """
    outputs: list[Path] = []
    for enc in sorted(p for p in dest.iterdir() if p.name.endswith(art.CIPHERTEXT_SUFFIX)):
        located = art.locate(enc)
        target = dest / enc.name[: -len(art.CIPHERTEXT_SUFFIX)]
        art.decrypt_path(located, key_service_for(located), out=target, overwrite=True)
        outputs.append(target)
    return outputs


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
        decrypt_all(dest)
    return downloaded


def _say_interrupted(signum: int) -> None:
    name = signal.Signals(signum).name
    print(f"model-puller: interrupted by {name}; partial output removed", file=sys.stderr)


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
    with art.exit_on_signals(_say_interrupted):
        try:
            files = pull(args.bucket, args.prefix, args.dest, decrypt=args.decrypt_if_encrypted)
        except art.ArtifactError as exc:
            print(f"model-puller: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT if exc.cause == "input" else EXIT_ENVIRONMENT
        except Exception as exc:  # S3, network, file system: one line, never a traceback
            print(f"model-puller: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_ENVIRONMENT
    print(
        f"model-puller: {len(files)} objects from s3://{args.bucket}/{args.prefix} -> {args.dest}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
