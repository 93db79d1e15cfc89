"""Rewrite rules, one module per statement family."""
