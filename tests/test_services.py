"""The test servers are real: PostgreSQL through psycopg, S3 through boto3 over HTTP, configured only
by what the fixtures give (a URL; the standard AWS environment), as the shared store will be."""

from __future__ import annotations

import os
import threading
import time

import pytest

# Without these (the extra `cluster`), the fixtures skip each test, or fail it where the server is required.
try:
    import psycopg
except ImportError:
    psycopg = None
try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
except ImportError:
    boto3 = None

MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------- PostgreSQL


def test_postgres_table_insert_and_read(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE refs (name text PRIMARY KEY, commit_id text NOT NULL)")
        conn.execute("INSERT INTO refs VALUES (%s, %s), (%s, %s)", ("main", "abc", "dev", "déf"))
        conn.commit()
        assert conn.execute("SELECT name, commit_id FROM refs ORDER BY name").fetchall() == [
            ("dev", "déf"),
            ("main", "abc"),
        ]


def test_postgres_each_test_has_its_own_database(postgres_url: str, postgres_server) -> None:
    assert postgres_url.startswith(f"postgresql://dataver@127.0.0.1:{postgres_server.port}/")
    other = postgres_server.new_database()
    assert other != postgres_url
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(other) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)


def test_postgres_two_connections_see_committed_rows(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as a, psycopg.connect(postgres_url) as b:
        a.execute("CREATE TABLE t (x int)")
        a.commit()
        a.execute("INSERT INTO t VALUES (1)")
        assert b.execute("SELECT count(*) FROM t").fetchone() == (0,)  # not committed yet
        b.rollback()
        a.commit()
        assert b.execute("SELECT x FROM t").fetchall() == [(1,)]
        b.execute("INSERT INTO t VALUES (2)")
        b.commit()
        a.rollback()
        assert a.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]


def test_postgres_listen_notify_between_connections(postgres_url: str) -> None:
    with (
        psycopg.connect(postgres_url, autocommit=True) as listener,
        psycopg.connect(postgres_url, autocommit=True) as sender,
    ):
        listener.execute("LISTEN dataver_refs")
        sender.execute("SELECT pg_notify('dataver_refs', 'main moved')")
        got = list(listener.notifies(timeout=10, stop_after=1))
        assert [(n.channel, n.payload) for n in got] == [("dataver_refs", "main moved")]
        assert got[0].pid == sender.info.backend_pid


def test_postgres_taken_away_mid_session_and_brought_back(postgres_url: str, postgres_server) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
        postgres_server.kill()
        try:
            with pytest.raises(psycopg.OperationalError):
                conn.execute("SELECT x FROM t")
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(postgres_url, connect_timeout=2)
        finally:
            postgres_server.start()
    with psycopg.connect(postgres_url) as conn:  # committed rows survive the crash
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]


# ------------------------------------------------------------------------------------------------ S3


def _s3(**config):
    """A client from the environment alone, as the shared store will make it. A new Session each
    time: boto3's default session keeps the credentials it resolved first, whatever the env says later."""
    return boto3.session.Session().client("s3", config=Config(**config) if config else None)


def _split(url: str) -> tuple[str, str]:
    assert url.startswith("s3://")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix


def test_s3_bucket_is_a_url_and_the_environment_points_at_the_server(s3_bucket: str, s3_server) -> None:
    bucket, prefix = _split(s3_bucket)
    assert prefix == "store"
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert "AWS_PROFILE" not in os.environ
    s3 = _s3()
    assert s3.meta.endpoint_url == s3_server.endpoint
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_s3_put_and_get(s3_bucket: str) -> None:
    bucket, prefix = _split(s3_bucket)
    s3 = _s3()
    s3.put_object(Bucket=bucket, Key=f"{prefix}/objects/ab/cdef", Body=b"hello\x00world")
    got = s3.get_object(Bucket=bucket, Key=f"{prefix}/objects/ab/cdef")
    assert got["Body"].read() == b"hello\x00world"
    assert got["ContentLength"] == 11
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key=f"{prefix}/objects/ab/nope")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"


def _upload_parts(s3, bucket: str, key: str, parts: list[bytes]) -> tuple[str, list[dict]]:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for n, part in enumerate(parts, 1):
        sent = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=part)
        done.append({"PartNumber": n, "ETag": sent["ETag"]})
    return upload, done


def test_s3_multipart_upload_and_ranged_get(s3_bucket: str) -> None:
    bucket, prefix = _split(s3_bucket)
    key = f"{prefix}/objects/big"
    data = os.urandom(12 * MiB)
    parts = [data[0 : 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]  # every part but the last >= 5 MiB
    s3 = _s3()
    upload, done = _upload_parts(s3, bucket, key, parts)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount") == 0  # nothing until completed
    completed = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    etag = completed["ETag"]
    assert etag.strip('"').endswith("-3")
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == 12 * MiB
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data

    ranged = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert ranged["Body"].read() == data[5 * MiB - 10 : 5 * MiB + 10]
    assert ranged["ContentRange"] == f"bytes {5 * MiB - 10}-{5 * MiB + 9}/{12 * MiB}"
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206


def test_s3_multipart_rejects_a_small_part_that_is_not_the_last(s3_bucket: str) -> None:
    bucket, prefix = _split(s3_bucket)
    key = f"{prefix}/small-parts"
    s3 = _s3()
    upload, done = _upload_parts(s3, bucket, key, [b"x", b"y"])
    with pytest.raises(ClientError) as small:
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done})
    assert small.value.response["Error"]["Code"] == "EntityTooSmall"


def test_s3_list_objects_v2_with_prefix(s3_bucket: str) -> None:
    bucket, prefix = _split(s3_bucket)
    s3 = _s3()
    keys = [f"{prefix}/objects/aa/1", f"{prefix}/objects/aa/2", f"{prefix}/objects/ab/1", f"{prefix}/refs/main"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/objects/aa/")
    assert [o["Key"] for o in listed["Contents"]] == keys[:2]
    folders = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/")
    assert [p["Prefix"] for p in folders["CommonPrefixes"]] == [f"{prefix}/objects/", f"{prefix}/refs/"]
    paged = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/objects/", MaxKeys=2)
    assert paged["IsTruncated"] and paged["KeyCount"] == 2
    token = paged["NextContinuationToken"]
    rest = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/objects/", ContinuationToken=token)
    assert [o["Key"] for o in rest["Contents"]] == keys[2:3]


def test_s3_hangs_then_answers_again_with_its_data(s3_bucket: str, s3_server) -> None:
    bucket, prefix = _split(s3_bucket)
    s3 = _s3(connect_timeout=1, read_timeout=1, retries={"total_max_attempts": 1})
    s3.put_object(Bucket=bucket, Key=f"{prefix}/kept", Body=b"still here")
    s3_server.pause()
    try:
        with pytest.raises(ReadTimeoutError):
            s3.get_object(Bucket=bucket, Key=f"{prefix}/kept")
    finally:
        s3_server.resume()
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}/kept")["Body"].read() == b"still here"


def test_s3_goes_away_and_comes_back_empty(s3_bucket: str, s3_server) -> None:
    bucket, prefix = _split(s3_bucket)
    s3 = _s3(connect_timeout=1, read_timeout=5, retries={"total_max_attempts": 1})
    s3.put_object(Bucket=bucket, Key=f"{prefix}/lost", Body=b"x")
    s3_server.kill()
    try:
        with pytest.raises(EndpointConnectionError):
            s3.get_object(Bucket=bucket, Key=f"{prefix}/lost")
    finally:
        s3_server.start()
    with pytest.raises(ClientError) as gone:  # moto keeps everything in memory
        s3.get_object(Bucket=bucket, Key=f"{prefix}/lost")
    assert gone.value.response["Error"]["Code"] == "NoSuchBucket"


def test_s3_restarted_from_another_thread_stays_up(s3_server) -> None:
    """The server dies with the thread that started it (PR_SET_PDEATHSIG) only when that is the
    main thread: one brought back from a helper thread must outlive the thread."""
    s3_server.kill()
    thread = threading.Thread(target=s3_server.start)
    thread.start()
    thread.join()
    time.sleep(0.3)  # the thread itself ends a moment after join() returns
    assert s3_server.running
    assert s3_server._proc.poll() is None
    assert s3_server.client().list_buckets()["Buckets"] == []
