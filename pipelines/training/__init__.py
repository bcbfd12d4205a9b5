"""The credit-risk training pipeline (KFP v2), its steps and their library code."""
