"""Experiment tracking and the model registry on a real MLflow server, with lifecycle states and
approvals (``mlflow_rest``, ``server``, ``tracking``, ``governance``)."""
