"""The web console: the DAG, repos, files, pipelines, jobs, datums, logs and provenance in a
browser, read-only, over `dataver.Client` (Starlette and Jinja2, imported only by `dataver console`
and `daemon start --console`). Presentation only: every fact comes from the Client."""
