"""The generator of ``policies/rules/aws_types.json``: residency and encryption of every AWS type.

The table is read from the installed pulumi-aws Python SDK's SOURCES with :mod:`ast` (importing
pulumi-aws would cost seconds and 270 MB, and the CrossGuard pack's virtualenv has no pulumi-aws at
all). For every class decorated ``@pulumi.type_token("aws:...")`` that subclasses
``pulumi.CustomResource``, the generator walks its ``<Class>Args`` input type and, recursively,
the nested input types of the module's ``_inputs.py``, under the wire names the engine sees
(``@pulumi.getter(name="...")``, else the Python name). Lists are written ``name[]`` and maps
``name{}``, so a path reads ``rules[].destination.bucket``.

Per type it records:

* ``regional``: False for the services AWS runs globally (``kinds.GLOBAL_SERVICES``).
* ``paths``: every input path whose leaf can name a region, an availability zone, an ARN, an
  endpoint (URL or host), a bucket, an account or a KMS key (classified from the property's name
  and docstring by ``kinds.leaf_kinds``), and whether it lies under a destination (replication,
  replica, copy, backup, delivery, subscription, export, forwarding, log destination, target ...).
* ``encryption``: whether the type stores data, the input path(s) that select a customer-managed
  key (preference order), companion inputs that must hold given values, and the AWS default when
  no customer key is set (``encryption.encryption_of``, with curated corrections).

``tests/test_classification.py`` fails when the file is not what this script generates from the
installed pulumi-aws, so an upgrade of pulumi-aws forces a regeneration (and a review of new types).

    .venv/bin/python -m policies.gen_classification            # is the table current?
    .venv/bin/python -m policies.gen_classification --write    # rewrite the table

Modules: ``sdk`` (reading the SDK's sources), ``kinds`` (what a leaf names, destinations, global
services), ``encryption`` (which types store data and which inputs select their key, with the
curated corrections), ``table`` (the file: build, render, compare, write).
"""
