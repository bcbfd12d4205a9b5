"""The Feast feature repository of the credit-risk model (``definitions.py`` + the configs).

``feature_store.yaml`` is the local default (state under ``build/feature_store/``) and
``feature_store.prod.yaml`` the cluster configuration; :mod:`pipelines.features.store` is the library
that applies, materializes and reads them.
"""
