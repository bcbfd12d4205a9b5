"""The Feast repository of the credit-risk model: ``definitions.py``, local and cluster configs."""
