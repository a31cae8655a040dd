"""Objects in an S3-compatible bucket: `<prefix>/objects/ab/cdef...` (loose objects, the same
two-character fan-out as the folder store), `<prefix>/packs/<id>.pack`, and damaged objects set
aside under `<prefix>/damaged/<oid>`.

Why boto3: it is the AWS reference SDK, so it resolves the standard chain by itself
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, `~/.aws/config` and `credentials`,
instance roles) and dataver needs no variables of its own. Big files are uploaded in parts on
several threads by this module itself (not boto3's TransferManager), for the deadlines (egress,
which writes another system's keys, still uses the TransferManager, each request within them): see
`Deadlines`. It speaks to AWS, MinIO, Ceph, Cloudflare R2 and the S3 API
of Google Cloud Storage alike. boto3 is imported only when a store first talks to its bucket:
it costs a few hundred milliseconds, which commands that never touch an s3:// store must not pay.

What a bucket changes, and what it does not: an S3 PUT is durable when it returns, so
`publish` is "upload everything, wait for all of it" (no flush, no rename). A key exists only
once its whole PUT (or multipart upload) completed, so a name never points at partial bytes,
as the shared ObjectStore docstring requires. Every request costs a round trip, which is why
small objects reach the bucket inside one pack per write batch and never one PUT each.

A store's endpoint and region are recorded by `dataver init` (`s3.endpoint`, `s3.region`) and
pinned from then on: a shell, daemon or worker that forgot AWS_ENDPOINT_URL still reaches the
store's server, never AWS with its credentials, and one whose AWS_ENDPOINT_URL names another
server is refused before any request (`Endpoint`).

Every failure of the bucket (unreachable endpoint, missing bucket, refused credentials) becomes
one `DataverError` line naming the store and what to do (`_translate`); FileNotFoundError is kept
where the interface promises it, since the shared code turns it into "object missing".
"""

from __future__ import annotations

import errno
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast
from urllib.parse import urlsplit

from ...errors import DataverError, InvalidArgument, Unreachable
from ..objects import CHUNK, DocumentVersion, ObjectStore, check_oid, check_pack_id
from ..packs import PackIndex

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

ASSEMBLY_TIMEOUT = 120
"""Read timeout of the client that completes a multipart upload: completing one makes the server
assemble the object (moto, in memory, took over 4 s for 1 GiB; S3 may take minutes for huge
objects, sending whitespace meanwhile), so its answer may be long in coming. The upload's total
deadline (`Deadlines.upload_timeout`) still bounds the wait."""


@dataclass(frozen=True)
class Deadlines:
    """How long the bucket may keep a command waiting (the `s3.*` settings). Every request has
    `connect_timeout` to connect and `read_timeout` of silence while an answer is due, and is
    tried `retries` more times (botocore's standard mode: throttling, 5xx and dropped connections,
    with jittered backoff): a bucket that stalls fails a request within `stall_bound`, 55 s by
    default. The read deadline leaves room for a busy server's slow answer to a 16 MiB part.
    A file uploaded in parts has `upload_timeout` in all, checked before every part and bounding
    the wait for its completion: a slow trickle cannot hold it for ever either."""

    connect_timeout: int = 2
    read_timeout: int = 10
    retries: int = 3
    upload_timeout: int = 3600

    @property
    def stall_bound(self) -> int:
        """Seconds a bucket that accepts connections and answers nothing can hold one request:
        every try's deadlines, and botocore's backoff between tries (1, 2, 4... s)."""
        return (self.retries + 1) * (self.connect_timeout + self.read_timeout) + 2**self.retries - 1

    def describe(self) -> str:
        return (
            f"{self.retries + 1} tries, s3.connect_timeout {self.connect_timeout} s, "
            f"s3.read_timeout {self.read_timeout} s"
        )


MULTIPART = 16 << 20
"""Files above this are uploaded in parts of this size: bounded memory for any size, and a
failed part is retried alone instead of the whole file."""

PART_THREADS = 8
"""Parts of one file uploaded at once."""

FILE_THREADS = 4
"""Files of one batch uploaded at once. Times PART_THREADS this is POOL: no request ever waits
for, or throws away, a pooled connection."""

POOL = FILE_THREADS * PART_THREADS

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_DENIED = {
    "403",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AccountProblem",
}
_BUSY = {"SlowDown", "503", "ServiceUnavailable", "RequestTimeout", "InternalError", "500"}
_CHANGED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"} | _NOT_FOUND
"""A conditional PUT refused: another writer changed (or removed) the key first, or is changing it."""

PROBE = ".conditional-writes"
"""The document a store writes to learn whether its server honours conditional writes."""


AWS = "aws"
"""The recorded endpoint of a store on AWS itself: its endpoints for the recorded region."""
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""Where boto3 takes a process's endpoint from (the first wins)."""


@dataclass(frozen=True)
class Endpoint:
    """Where a store's bucket is served, as `init` recorded it: `url`, an http(s) URL or `aws`,
    and `region`. Empty for a store made before init recorded them (and for buckets that are
    not a store's: remotes, egress): then the standard AWS chain decides, as it always did."""

    url: str = ""
    region: str = ""

    def check_environment(self, location: str) -> None:
        """Refuse a process whose environment names another endpoint: boto3 would not send the
        bucket's requests there (the recorded one is pinned), but the user meant something else."""
        if not self.url:
            return
        for name in ENDPOINT_VARIABLES:
            named = os.environ.get(name)
            if named and (self.url == AWS or _normal(named) != _normal(self.url)):
                served = "on AWS" if self.url == AWS else f"at {self.url}"
                raise DataverError(
                    f"the object store {location} is served {served} (recorded by `dataver init`), and ${name} "
                    f"names {named}: unset {name} here (the store's endpoint is used without it)"
                )

    def client(self, session: Any, config: Any) -> Any:
        """A boto3 S3 client of `session` pinned to this endpoint and region (environment and
        ~/.aws/config endpoints ignored), or the standard chain's for an unrecorded one."""
        if not self.url:
            return session.client("s3", config=config)
        from botocore.config import Config

        pins = Config(ignore_configured_endpoint_urls=True, region_name=self.region or None)
        return session.client("s3", config=config.merge(pins), endpoint_url=None if self.url == AWS else self.url)


def configured_endpoint(url: str | None = None, region: str | None = None) -> Endpoint:
    """The endpoint and region this process's AWS settings name (`url` and `region`, the flags,
    first): what `init` records. AWS's own endpoint is recorded as `aws`, so that the store
    follows its region and no configured endpoint ever replaces it."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    try:
        found = session.client("s3", endpoint_url=url, region_name=region)
        aws = session.client("s3", region_name=region, config=Config(ignore_configured_endpoint_urls=True))
    except ValueError as exc:  # a malformed endpoint
        raise DataverError(
            f"the S3 endpoint cannot be used: {_one_line(str(exc))}: check --s3-endpoint or AWS_ENDPOINT_URL"
        ) from None
    endpoint = found.meta.endpoint_url.rstrip("/")
    on_aws = url is None and endpoint == aws.meta.endpoint_url.rstrip("/")
    return Endpoint(AWS if on_aws else endpoint, found.meta.region_name or "")


def _normal(url: str) -> tuple[str, str, int | None, str]:
    """An endpoint URL compared as a server: scheme and host in any case, the default port
    spelled or not, a trailing slash or not."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return (url, "", None, "")
    return (parts.scheme.lower(), (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def _error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError ("NoSuchKey", "404", ...), else ""."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _one_line(text: str) -> str:
    return " ".join(text.split())


_T = TypeVar("_T")


def _all_or_first_failure(threads: int, name: str, calls: list[Callable[[], _T]]) -> list[_T]:
    """Run `calls` on up to `threads` threads; their results, or the first failure once the calls
    already running have ended (those not started are cancelled)."""
    with ThreadPoolExecutor(max_workers=min(threads, len(calls)), thread_name_prefix=name) as pool:
        futures = [pool.submit(call) for call in calls]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            raise cast(BaseException, future.exception())
    return [future.result() for future in futures]


class S3ObjectStore(ObjectStore):
    """Objects in a bucket, staged on this host under `<root>/tmp/` (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        url: str,
        index: PackIndex | None = None,
        endpoint: Endpoint = Endpoint(),
        deadlines: Deadlines = Deadlines(),
    ) -> None:
        """`url`: `s3://bucket/prefix` (the prefix may be empty); `endpoint`: the store's, as init
        recorded it (refused here if this process's environment names another); `deadlines`: this
        host's `s3.*` settings. Nothing is sent to the bucket until an object is read or written."""
        super().__init__(root, index)
        self.deadlines = deadlines
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise InvalidArgument(f"{url!r} is not an object store url: write s3://bucket or s3://bucket/prefix")
        endpoint.check_environment(url)
        self.endpoint = endpoint
        self.location = url
        self.damaged_location = f"{url.rstrip('/')}/damaged/"
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._loose_at = f"{self.prefix}objects/"
        self._packs_at = f"{self.prefix}packs/"
        self._damaged_at = f"{self.prefix}damaged/"
        self._documents_at = f"{self.prefix}documents/"
        self._client: Any = None
        self._assembler: Any = None
        self._session: Any = None
        self._transfer: TransferConfig | None = None
        self._bucket_seen = False
        self._conditions_seen = False
        self._lock = threading.Lock()

    # ---- keys -------------------------------------------------------------------------

    def key(self, oid: str) -> str:
        """The key of loose object `oid` (whether or not it exists)."""
        check_oid(oid)
        return f"{self._loose_at}{oid[:2]}/{oid[2:]}"

    def pack_key(self, pack: str) -> str:
        return f"{self._packs_at}{check_pack_id(pack)}.pack"

    def damaged_key(self, oid: str) -> str:
        return f"{self._damaged_at}{check_oid(oid)}"

    # ---- talking to the bucket --------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use (one per store: boto3 clients are thread-safe,
        but making one is not, hence the lock and a session of our own)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from boto3.s3.transfer import TransferConfig

                    self._client = self._make_client(self.deadlines.read_timeout)
                    self._transfer = TransferConfig(
                        multipart_threshold=MULTIPART,
                        multipart_chunksize=MULTIPART,
                        max_concurrency=PART_THREADS,
                        use_threads=True,
                    )
        return self._client

    @property
    def assembler(self) -> Any:
        """The client that completes multipart uploads (`ASSEMBLY_TIMEOUT`), made only when a big
        file is uploaded: making a client costs a tenth of a second or more."""
        if self._assembler is None:
            with self._lock:
                if self._assembler is None:
                    self._assembler = self._make_client(ASSEMBLY_TIMEOUT)
        return self._assembler

    def _make_client(self, read_timeout: int) -> Any:
        with self._talking():
            import boto3
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.deadlines.retries, "mode": "standard"},
                max_pool_connections=POOL,
                connect_timeout=self.deadlines.connect_timeout,
                read_timeout=read_timeout,
            )
            if self._session is None:  # one per store: the second client reuses its loaded API model
                self._session = boto3.session.Session()
            try:
                return self.endpoint.client(self._session, config)
            except ValueError as exc:  # a malformed AWS_ENDPOINT_URL
                raise DataverError(
                    f"the object store {self.location} cannot be used: {_one_line(str(exc))}: "
                    "check AWS_ENDPOINT_URL (or endpoint_url in ~/.aws/config)"
                ) from None

    @contextmanager
    def _talking(self) -> Iterator[None]:
        """Turn any failure of boto3 or the bucket inside the block into one DataverError line."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError, Boto3Error) as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException) -> DataverError:
        """The one message for a failure talking to the bucket: what happened and what to do."""
        from botocore.exceptions import (
            ConnectionClosedError,
            CredentialRetrievalError,
            IncompleteReadError,
            NoCredentialsError,
            PartialCredentialsError,
            ProfileNotFound,
            ReadTimeoutError,
            ResponseStreamingError,
        )
        from botocore.exceptions import ConnectionError as NoAnswer

        # boto3's upload_file wraps a ClientError into S3UploadFailedError: find the original.
        cause: BaseException | None = exc
        while cause is not None and not _error_code(cause) and cause.__context__ is not None:
            cause = cause.__context__
        if cause is not None and _error_code(cause):
            exc = cause
        code = _error_code(exc)
        detail = _one_line(str(exc))
        store = f"the object store {self.location}"
        if isinstance(
            exc, NoAnswer | ReadTimeoutError | ConnectionClosedError | ResponseStreamingError | IncompleteReadError
        ):
            pinned = self.endpoint.url not in ("", AWS)
            server = f"the server at {self.endpoint.url}" if pinned else "AWS_ENDPOINT_URL and that the server"
            return Unreachable(
                f"{store} cannot be reached ({detail}; {self.deadlines.describe()}): check {server} is up, "
                "or raise those settings for a slow one"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            return DataverError(
                f"{store} needs credentials ({detail}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or configure ~/.aws/credentials"
            )
        if isinstance(exc, ProfileNotFound):
            return DataverError(f"{store} cannot be used ({detail}): check AWS_PROFILE and ~/.aws/config")
        if code == "NoSuchBucket":
            return DataverError(f"{store}: bucket {self.bucket} does not exist: create it first")
        if code in _DENIED:
            return DataverError(
                f"{store}: access denied ({code}): check the credentials (AWS_ACCESS_KEY_ID or ~/.aws) "
                f"and that they may read and write bucket {self.bucket}"
            )
        if code in _BUSY:
            return DataverError(f"{store} is failing or overloaded ({detail}): retry later")
        return DataverError(f"{store} failed: {detail}")

    def _missing_bucket(self) -> None:
        """A HEAD answers a bare 404 for a missing key and a missing bucket alike: the first time
        one comes back, ask about the bucket (once per store) so that a mistyped bucket is
        reported as such instead of every object looking missing."""
        if self._bucket_seen:
            return
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND | {"NoSuchBucket"}:
                raise DataverError(
                    f"the object store {self.location}: bucket {self.bucket} does not exist: create it first"
                ) from None
            raise
        self._bucket_seen = True

    def _head(self, key: str) -> int | None:
        """The size of the object at `key`, or None when there is none."""
        from botocore.exceptions import ClientError

        with self._talking():
            try:
                return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise
            self._missing_bucket()
            return None

    def _size(self, key: str) -> int:
        size = self._head(key)
        if size is None:
            raise FileNotFoundError(errno.ENOENT, "no such object", f"s3://{self.bucket}/{key}")
        return size

    def _keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix` (one request per 1,000 keys)."""
        with self._talking():
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Contents", ()):
                    yield item["Key"]

    def _delete(self, key: str) -> None:
        """Delete `key`; deleting a key that is not there succeeds, as unlink(missing_ok) does."""
        with self._talking():
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def _upload(self, path: str, key: str) -> None:
        """One file: one PUT, or in parts above MULTIPART."""
        size = os.path.getsize(path)
        if size > MULTIPART:
            self._upload_in_parts(path, key, size)
            return
        with self._talking():
            self.client.upload_file(path, self.bucket, key, Config=self._transfer)

    def _upload_in_parts(self, path: str, key: str, size: int) -> None:
        """A multipart upload of our own rather than boto3's, for its deadlines: parts go on the
        quick client (a stalled part fails within `Deadlines.stall_bound`), the whole upload has
        `upload_timeout`, and only the completion waits longer for its answer. On failure the
        upload is aborted (its parts freed), unless the bucket is unreachable: then so is the abort,
        and the bucket's lifecycle rule (AbortIncompleteMultipartUpload) frees them."""
        deadline = time.monotonic() + self.deadlines.upload_timeout
        with self._talking():
            upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="CRC32")[
                "UploadId"
            ]
        try:
            calls = [
                lambda number=number, offset=offset: self._upload_part(
                    path, key, upload, number, offset, min(MULTIPART, size - offset), deadline
                )
                for number, offset in enumerate(range(0, size, MULTIPART), start=1)
            ]
            parts = _all_or_first_failure(PART_THREADS, "s3-part", calls)
            self._complete(key, upload, parts, size, deadline)
        except Unreachable:
            raise
        except BaseException:
            with suppress(DataverError):
                with self._talking():
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def _upload_part(
        self, path: str, key: str, upload: str, number: int, offset: int, length: int, deadline: float
    ) -> dict[str, Any]:
        """Part `number`, streamed from the file (bounded memory); what completion needs of it."""
        from s3transfer.utils import ReadFileChunk

        self._check_deadline(deadline, key)
        body = ReadFileChunk.from_filename(path, offset, length, enable_callbacks=False)
        try:
            with self._talking():
                answer = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    Body=body,
                    ContentLength=length,
                    ChecksumAlgorithm="CRC32",
                )
        finally:
            body.close()
        checksums = {k: v for k, v in answer.items() if k.startswith("Checksum") and k != "ChecksumType"}
        return {"PartNumber": number, "ETag": answer["ETag"], **checksums}

    def _complete(self, key: str, upload: str, parts: list[dict[str, Any]], size: int, deadline: float) -> None:
        """Complete the upload on the client that waits for assembly, in a thread of its own so
        that the deadline bounds the wait whatever the server does. A completion that timed out
        may have completed all the same (a retried one then finds no upload): the key being
        there, whole, is what counts, and since keys are content hashes, a whole key holds these
        bytes."""
        self._check_deadline(deadline, key)
        failure: list[BaseException] = []

        def complete() -> None:
            try:
                with self._talking():
                    self.assembler.complete_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                    )
            except BaseException as exc:  # handed to the waiting thread
                failure.append(exc)

        worker = threading.Thread(target=complete, name="s3-complete", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise self._too_slow(key) from None
        if failure and self._head(key) != size:
            raise failure[0]

    def _check_deadline(self, deadline: float, key: str) -> None:
        if time.monotonic() > deadline:
            raise self._too_slow(key) from None

    def _too_slow(self, key: str) -> DataverError:
        return DataverError(
            f"the object store {self.location}: uploading s3://{self.bucket}/{key} took more than "
            f"s3.upload_timeout ({self.deadlines.upload_timeout} s): check the network to the S3 endpoint, "
            "or raise s3.upload_timeout for a slow one"
        )

    # ---- the ObjectStore interface ----------------------------------------------------

    def check_reachable(self) -> None:
        """The bucket exists and these credentials may use it (what `dataver init` checks)."""
        with self._talking():
            self._missing_bucket()

    def is_loose(self, oid: str) -> bool:
        return self._head(self.key(oid)) is not None

    def open_loose(self, oid: str) -> BinaryIO:
        """The GET is sent here, so a missing object raises FileNotFoundError at once; the body
        then streams as it is read (any size through bounded memory)."""
        from botocore.exceptions import ClientError

        key = self.key(oid)
        with self._talking():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise
                raise FileNotFoundError(errno.ENOENT, "no such object", f"s3://{self.bucket}/{key}") from None
        return cast(BinaryIO, io.BufferedReader(_Body(self, body), buffer_size=CHUNK))

    def read_range(self, pack: str, offset: int, size: int) -> bytes:
        """One ranged GET. A range past the end of a truncated pack is answered 416 by S3, which
        is the truncation the interface reports as fewer bytes."""
        from botocore.exceptions import ClientError

        key = self.pack_key(pack)
        if size <= 0:  # an empty range cannot be asked for; the pack must still exist
            self._size(key)
            return b""
        with self._talking():
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + size - 1}")
                with body["Body"] as stream:
                    return stream.read()
            except ClientError as exc:
                code = _error_code(exc)
                if code == "InvalidRange":
                    return b""
                if code not in _NOT_FOUND:
                    raise
                raise FileNotFoundError(errno.ENOENT, "no such pack", f"s3://{self.bucket}/{key}") from None

    def loose(self) -> Iterator[str]:
        """Keys under objects/ are `ab/cdef...`; anything else there is not ours and passed over."""
        for key in self._keys(self._loose_at):
            fan, _, rest = key[len(self._loose_at) :].partition("/")
            if len(fan) == 2 and rest and "/" not in rest:
                yield fan + rest

    def packs(self) -> list[str]:
        return [
            key[len(self._packs_at) : -len(".pack")]
            for key in self._keys(self._packs_at)
            if key.endswith(".pack") and "/" not in key[len(self._packs_at) :]
        ]

    def size(self, oid: str) -> int:
        return self._size(self.key(oid))

    def pack_size(self, pack: str) -> int:
        return self._size(self.pack_key(pack))

    def delete(self, oid: str) -> None:
        self._delete(self.key(oid))

    def remove_pack(self, pack: str) -> None:
        self._delete(self.pack_key(pack))

    publishes_in_place = True

    def publish(self, loose: dict[str, str], pack: tuple[str, str] | None) -> None:
        """Upload every staged file, several at once, and return when all are stored: a PUT (or
        a completed multipart upload) is durable when it returns, so nothing else is needed.
        The batch's small objects are all in its one pack, so they cost one PUT together.
        On the first failure the uploads not yet started are cancelled; keys already written
        are unreferenced (the index is not updated) and `dataver gc` removes them."""
        jobs = [(tmp, self.key(oid)) for oid, tmp in loose.items()]
        if pack is not None:
            jobs.append((pack[1], self.pack_key(pack[0])))
        if not jobs:
            return
        self.client  # noqa: B018 -- made here, not raced for by the upload threads
        if len(jobs) == 1:
            self._upload(*jobs[0])
            return
        calls = [lambda path=path, key=key: self._upload(path, key) for path, key in jobs]
        _all_or_first_failure(FILE_THREADS, "s3-publish", calls)

    def keep_damaged(self, oid: str, data: bytes | None) -> None:
        """A loose object is copied aside inside the bucket (no bytes travel through this host,
        any size: the managed copy goes multipart above 5 GB), then deleted."""
        from botocore.exceptions import ClientError

        target = self.damaged_key(oid)
        with self._talking():
            if data is not None:
                self.client.put_object(Bucket=self.bucket, Key=target, Body=data)
                return
            source = self.key(oid)
            try:
                self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target, Config=self._transfer)
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise
                raise FileNotFoundError(errno.ENOENT, "no such object", f"s3://{self.bucket}/{source}") from None
            self.client.delete_object(Bucket=self.bucket, Key=source)

    def upload_as(self, name: str, source: BinaryIO) -> None:
        """A file of another system's at `<prefix><name>` (egress), streamed, any size."""
        with self._talking():
            self.client.upload_fileobj(source, self.bucket, self.prefix + name, Config=self._transfer)

    def read_document(self, name: str) -> bytes | None:
        return self.read_document_version(name).data

    def write_document(self, name: str, data: bytes) -> None:
        """One PUT: S3 replaces a key whole, so readers see the old document or the new."""
        with self._talking():
            self.client.put_object(Bucket=self.bucket, Key=self._documents_at + name, Body=data)

    def read_document_version(self, name: str) -> DocumentVersion:
        """The tag is the key's ETag, which a conditional PUT compares (`If-Match`)."""
        from botocore.exceptions import ClientError

        with self._talking():
            try:
                found = self.client.get_object(Bucket=self.bucket, Key=self._documents_at + name)
                return DocumentVersion(bytes(found["Body"].read()), found["ETag"])
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise
            self._missing_bucket()
        return DocumentVersion(None, None)

    def swap_document(self, name: str, data: bytes, tag: str | None) -> bool:
        """One conditional PUT: `If-Match: <ETag>` to replace, `If-None-Match: *` to create; the
        server compares and writes as one step (AWS S3 since 2024, MinIO)."""
        self._check_conditions()
        condition = {"IfMatch": tag} if tag is not None else {"IfNoneMatch": "*"}
        return self._put_if(self._documents_at + name, data, condition)

    def _put_if(self, key: str, data: bytes, condition: dict[str, str]) -> bool:
        """A PUT with a condition; False if the server refused it for the condition."""
        from botocore.exceptions import ClientError

        with self._talking():
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **condition)
            except ClientError as exc:
                if _error_code(exc) not in _CHANGED:
                    raise
                return False
        return True

    def _check_conditions(self) -> None:
        """Once per store, two PUTs that must be refused (412) on a document of its own: a server
        that ignores the conditions would let two writers each replace what the other wrote, so
        it is refused before anything depends on them."""
        if self._conditions_seen:
            return
        key = self._documents_at + PROBE
        self._put_if(key, b"", {"IfNoneMatch": "*"})  # there from now on, whoever made it
        for header, condition in (("If-None-Match", {"IfNoneMatch": "*"}), ("If-Match", {"IfMatch": '"0"'})):
            if self._put_if(key, b"", condition):
                raise DataverError(
                    f"the object store {self.location} ignores conditional writes ({header}), so two pushes at "
                    "once could lose a branch: no branch was moved; use a server that honours them (AWS S3, MinIO)"
                )
        self._conditions_seen = True

    def documents(self, prefix: str) -> list[str]:
        start = len(self._documents_at)
        return sorted(
            key[start:] for key in self._keys(self._documents_at + prefix) if "/" not in key[start + len(prefix) :]
        )

    def has_damaged(self, oid: str) -> bool:
        return self._head(self.damaged_key(oid)) is not None


class _Body(io.RawIOBase):
    """A GET's streaming body as a raw file, so io.BufferedReader (read, readinto, copyfileobj)
    can sit on it; failures while streaming become the store's one-line DataverError."""

    def __init__(self, store: S3ObjectStore, body: Any) -> None:
        self._store, self._body = store, body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._store._talking():
            return self._body.readinto(buffer)

    def readall(self) -> bytes:
        """One read of the whole rest, not RawIOBase's 8 KiB at a time."""
        with self._store._talking():
            return self._body.read()

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
