"""Pipelines: specs, datums, jobs, scheduling and provenance."""
