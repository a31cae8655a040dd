"""Runtimes: where and how a datum's command runs (local sandbox or Docker)."""
