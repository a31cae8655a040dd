"""Executors: where a job's datums run (this host's threads, or a Dask cluster)."""
