"""The feature store (Feast): repository definitions and the apply/materialize/lookup helpers."""
