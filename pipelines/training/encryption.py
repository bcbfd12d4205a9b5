"""Adapter from the pipeline's encrypt step to the envelope library ``pipelines/artifacts``.

The step only needs "encrypt these folders and files into that folder with this key service, and
prove it decrypts"; this module is the one place that knows the library's API, so a change there
is a change here only. The library is imported inside the functions: it is embedded only in the
encrypt step's pods (``EXTRA_EMBEDDED`` in ``pipelines/training/packaging.py``), not in every step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pipelines.training.data import sha256_file, sha256_tree


def key_service(backend: str, key: str) -> Any:
    """The library's key service for ``backend``.

    Args:
        backend: ``local`` (a key file, created on first use with mode 0600), ``vault``
            (transit engine; address and token from ``VAULT_ADDR``/``VAULT_TOKEN``, or the
            Kubernetes auth role in ``SOVML_VAULT_K8S_ROLE`` inside the cluster) or ``kms``.
        key: Key file path (local), transit key name (vault) or key id/alias (kms); empty for
            the library's default.

    Raises:
        ValueError: ``backend`` is none of the library's backends.
    """
    from pipelines import artifacts

    return artifacts.open_key_service(
        backend, key, create_local=True, vault_role=os.environ.get("SOVML_VAULT_K8S_ROLE")
    )


def encrypt_artifacts(
    sources: dict[str, str | Path], out_dir: str | Path, backend: str, key: str
) -> dict[str, Any]:
    """Encrypt each source (file or folder) to ``out_dir/<name>.enc`` and verify a round trip.

    Args:
        sources: Output name -> plaintext file or folder.
        out_dir: Destination folder (created).
        backend: Key service backend, see :func:`key_service`.
        key: Key reference for the backend.

    Returns:
        A manifest: per artifact the ciphertext path, library manifest path, file count, bytes,
        plaintext tree SHA-256 and ``verified`` (decrypted copy matched the plaintext).
    """
    from pipelines import artifacts

    service = key_service(backend, key)
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    entries: dict[str, Any] = {}
    for name, source in sources.items():
        src = Path(source)
        # overwrite: a rerun replaces its own earlier output (the library refuses anything else).
        report = artifacts.encrypt_path(src, service, out=target / f"{name}.enc", overwrite=True)
        # Decrypt into a scratch folder and compare digests: an artifact that cannot be read
        # back is worse than none, and the key service is exercised while the run is watched.
        # The signal guard makes SIGTERM (a stopped run) remove the scratch plaintext too.
        with (
            artifacts.cleanup_on_signals(),
            tempfile.TemporaryDirectory(prefix="sovml-verify-") as scratch,
        ):
            back = Path(scratch) / name
            artifacts.decrypt_path(report.destination, service, out=back)
            verified = _digest(back) == _digest(src)
        entries[name] = {
            "ciphertext": str(report.destination),
            "manifest": str(report.manifest),
            "files": len(report.files),
            "bytes": report.bytes,
            "plaintext_sha256": _digest(src),
            "verified": verified,
        }
        if not verified:
            raise RuntimeError(f"encrypt: {name}: decrypted copy differs from the plaintext")
    return {
        "backend": service.backend,
        "key": service.describe(),
        "artifacts": entries,
    }


def _digest(path: Path) -> str:
    return sha256_tree(path) if path.is_dir() else sha256_file(path)
