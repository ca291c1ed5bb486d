"""Visibility analytics: tracked brands, deterministic mention detection and the metrics built on it."""
