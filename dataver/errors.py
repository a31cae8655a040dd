"""One exception hierarchy for everything a user can cause.

The CLI turns any `DataverError` into a single line on stderr and its `exit_code`;
the messages therefore say what was wrong, where, and what to do next.
"""


class DataverError(Exception):
    """Base of every error dataver raises on purpose."""

    exit_code = 1


class InvalidArgument(DataverError):
    """A name, path, reference or option that is malformed."""

    exit_code = 2


class NotFound(DataverError):
    """A repo, branch, commit, file, pipeline or job that does not exist."""


class AlreadyExists(DataverError):
    """Creating something whose name is taken."""


class Conflict(DataverError):
    """The request is well formed but the store's state does not allow it now."""


class Unreachable(DataverError):
    """A server the store lives on (its metadata database, its bucket) did not answer: nothing is
    wrong with the request, and trying again once the server is back may work."""


class LeaseLost(Conflict):
    """This process no longer holds the lease its work needs (it was paused or cut off past the
    lease, and another may have taken the work over): it must stop, and write nothing more of it."""


class Ambiguous(DataverError):
    """A commit prefix that matches more than one commit."""

    exit_code = 2


class JobFailed(DataverError):
    """A job this command ran, or waited for, failed (the commit that triggered it did land)."""


class JobOrphaned(DataverError):
    """A job recorded running that no process runs any more (its runner was killed)."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C while this process ran a job: its commands were killed and it is recorded killed
    (the next run of pending jobs, or `rerun-pipeline`, runs it again, skipping finished datums).
    Still a KeyboardInterrupt: whatever stops on one stops on this."""

    def __init__(self, job_id: str, pipeline: str) -> None:
        super().__init__(f"job {job_id} of pipeline {pipeline} interrupted")
        self.job_id = job_id
        self.pipeline = pipeline


class Corruption(DataverError):
    """An object whose bytes no longer match its hash, or that is missing."""

    def __init__(self, message: str, oid: str = "", actual: str = "") -> None:
        """`oid` and `actual` (what its bytes hash to now) name a damaged object, so that a
        process that may not set it aside (a Dask worker) can report it to one that may."""
        super().__init__(message)
        self.oid = oid
        self.actual = actual


class NoSpace(DataverError):
    """The filesystem holding the store is full."""


class SpecError(DataverError):
    """A pipeline spec that cannot be parsed or validated."""

    exit_code = 2


def no_space(where: object) -> NoSpace:
    """The one message for a full disk, wherever it is hit."""
    return NoSpace(
        f"no space left on the device holding the store {where}: free some space and retry (nothing was committed)"
    )


class SchemaMismatch(DataverError):
    """The store's metadata schema is not the one this dataver reads and writes, and this process
    may not change it: a role without the rights to migrate it, a read-only opening, or a schema
    a newer dataver made."""


class NotWritable(DataverError):
    """The store is on a read-only filesystem, or belongs to someone else."""


def not_writable(where: object) -> NotWritable:
    """The one message for a write to a store this process may only read."""
    return NotWritable(
        f"the store {where} is not writable (a read-only filesystem, or owned by another user): "
        "reads work, but to change it run dataver as its owner or on a writable copy (nothing was changed)"
    )
