"""Drift monitoring: comparing tables, the retraining decision, the HTML report, the drift job."""
