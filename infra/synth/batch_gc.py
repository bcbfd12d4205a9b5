"""Garbage-collector settings for a process that synthesizes stack after stack.

A synth allocates a few hundred thousand container objects (the SDK's futures, ``Output``\\ s and
their callbacks, the record) that mostly live until the program's end. At CPython's default
thresholds ``(700, 10, 10)`` each run triggers dozens of full collections, and every full
collection walks the whole heap: the imported ``pulumi_aws`` and ``pulumi_kubernetes`` modules
(several hundred thousand objects) each time. Measured on a warm process over ten SMB tenants
(``prepare_gate``: synth, rules, schemas, scan inputs), CPU per stack: 2.65 s at the defaults,
2.11 s with the survivors of the first stack frozen (``gc.freeze``), 1.76 s frozen and with the
young generation collected every 200,000 allocations instead of 700 (358 MB peak instead of 227
MB). A later session, on faster code, measured the young threshold again (eight tenants, three
rounds, CPU per stack): 1.41 s at 200,000 (325 MB peak), 1.28 s at 1,000,000 (307 MB), 1.19 s at
3,000,000 (404 MB): a synth's objects live until it ends, so every young collection only moved
them along. ``THRESHOLD`` is the last.

Collection timing changes no record: the synth's results do not depend on when unreachable
cycles are freed (``tests/test_synth_process.py`` compares a record made in a process with these
settings, after another stack, with a fresh process's, byte for byte; ``tests/test_fleet_gate.py``
the fleet's verdicts with the per-stack command's). The fleet's worker processes and the test
suite's workers (``tests/conftest.py``) use this; the CLI's own process keeps the defaults.
"""

from __future__ import annotations

import gc

THRESHOLD = (3_000_000, 10, 10)
"""Allocations between young collections, then collections between older ones."""

_started = _settled = False


def start() -> None:
    """Collect the young generation less often (call once, when the worker process starts)."""
    global _started
    _started = True
    gc.set_threshold(*THRESHOLD)


def settle() -> None:
    """After the first unit of work: free its garbage and freeze what survived (the imported
    modules, their caches), which later full collections then skip. Runs once per process, and
    only in a process that called ``start`` (a caller's own process keeps its collector)."""
    global _settled
    if _settled or not _started:
        return
    _settled = True
    gc.collect()
    gc.freeze()
