"""Developer tools used by the tests and by reviewers (not part of the product)."""
