"""Key services that wrap data keys: the base protocol, local key file, Vault transit, KMS."""
