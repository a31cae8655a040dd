"""Where a store's objects and metadata rest: a folder and SQLite on this host (the default), or
an S3-compatible bucket and PostgreSQL shared by many hosts. Each module implements one
interface of the storage layer for one backend; nothing above the storage layer imports them
except `dataver.store`, which picks them from the store's config."""
