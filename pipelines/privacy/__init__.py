"""Privacy by design at ingest: detect direct identifiers, replace them by keyed-hash tokens.

``recognizers`` finds Emirates ID numbers, UAE phone numbers, e-mail addresses and name-shaped
values; ``tokens`` derives the pseudonymization key from the key service and makes the tokens;
``tables`` classifies every column of an incoming table and pseudonymizes it, deny by default.
"""
