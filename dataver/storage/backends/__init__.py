"""Where a store's objects and metadata rest: a folder and SQLite on this host (the default), or
an S3-compatible bucket and PostgreSQL shared by many hosts. Each module implements one
interface of the storage layer for one backend; nothing outside the storage layer imports them:
`dataver.storage.registry` builds them from a URL's scheme."""
