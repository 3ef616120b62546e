"""Tuning: QLoRA training data and recipe, adapters, merge parity, and the environment doctor."""
