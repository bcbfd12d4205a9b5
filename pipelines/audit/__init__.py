"""The lifecycle log: a hash-chained, append-only record of who trained, registered, approved,
promoted, rolled back, encrypted or offboarded what, and when.

Locally the log is ``build/audit/lifecycle.jsonl`` (``$SOVML_AUDIT_LOG`` overrides it); on the
cluster (``$SOVML_AUDIT_BUCKET`` set) the log is a chain of objects, one per seq, in the
object-locked audit bucket.
Modules: :mod:`~pipelines.audit.entries` (fields, the closed set of events, canonical bytes,
digests, the actor), :mod:`~pipelines.audit.log` (location, the locked append),
:mod:`~pipelines.audit.sink` (the bucket chain), :mod:`~pipelines.audit.verify` (the checks
behind ``sovml audit verify``). Import from those modules; this file only describes them.
"""
