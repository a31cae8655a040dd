"""Whether a store has any pipeline, asked without loading the pipeline layer.

Every commit a command lands asks it (jobs to run?), and importing the pipeline layer's records,
models and executors to answer cost a put of unchanged files a fifth of its time.
"""

from __future__ import annotations

from ..storage.metadata import Database


def any_pipeline(db: Database) -> bool:
    return db.query_one("SELECT 1 FROM pipelines LIMIT 1") is not None
