"""Cron inputs (`input.cron`) and `run-cron`, as Pachyderm's: the schedule, the repo the ticks
land in, the files a tick commits, what the pipeline's datums see, and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import spec

from dataver.pipelines import cron
from dataver.pipelines.schedules import parse_schedule

T0 = datetime(2026, 11, 23, 11, 30, 0, tzinfo=UTC)


def cron_input(name: str = "tick", every: str = "@every 10s", **extra) -> dict:
    return {"cron": {"name": name, "spec": every, **extra}}


LIST_TICKS = "ls /pfs/tick > /pfs/out/$(ls /pfs/tick | tail -1)"
"""Each datum (one tick file) writes a file named for its tick listing what /pfs/tick holds."""


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("@every 10s", T0, T0 + timedelta(seconds=10)),
        ("@every 1h30m", T0, T0 + timedelta(minutes=90)),
        ("*/10 * * * *", T0 + timedelta(minutes=1), T0 + timedelta(minutes=10)),
        ("@hourly", T0, datetime(2026, 11, 23, 12, 0, tzinfo=UTC)),
        ("@daily", T0, datetime(2026, 11, 24, 0, 0, tzinfo=UTC)),
        ("30 0 * * * *", T0, datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)),  # seconds first, as robfig/cron
        ("@never", T0, None),
    ],
)
def test_schedules_as_pachyderm_reads_them(text, after, expected):
    assert parse_schedule(text).next_after(after) == expected


def test_missed_ticks_are_one_tick_the_newest_due():
    every = parse_schedule("@every 10s")
    assert every.latest_due(T0, T0 + timedelta(seconds=9)) is None
    assert every.latest_due(T0, T0 + timedelta(hours=1, seconds=5)) == T0 + timedelta(hours=1)
    minutely = parse_schedule("* * * * *")
    assert minutely.latest_due(T0, T0 + timedelta(minutes=30, seconds=20)) == T0 + timedelta(minutes=30)
    # a quarter of a century of missed seconds: found at once, not stepped through
    secondly, then = parse_schedule("* * * * * *"), datetime(2000, 1, 1, tzinfo=UTC)
    assert secondly.latest_due(then, T0 + timedelta(microseconds=5)) == T0
    yearly = parse_schedule("@yearly")
    assert yearly.latest_due(then, T0) == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_tick_past_the_year_9999_is_no_tick():
    assert parse_schedule("@hourly").next_after(datetime(9999, 12, 31, 23, 30, tzinfo=UTC)) is None
    assert parse_schedule("@every 87600h").next_after(datetime(9999, 6, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("@every 0.5s", "input.cron.spec: @every 0.5s: the period must be at least 1s"),
        ("@every 90000000h", "input.cron.spec: @every 90000000h: the period must be at most a century"),
        ("@every soon", "input.cron.spec: @every 'soon': give a duration such as 10s, 5m or 1h30m"),
        ("@fortnightly", "input.cron.spec: '@fortnightly' is not a cron descriptor: use @every <duration>"),
        ("* * *", "input.cron.spec: '* * *' is not a cron spec: give 5 fields"),
        ("61 * * * *", "input.cron.spec: '61 * * * *' is not a cron spec: Bad minute"),
    ],
)
def test_a_bad_schedule_is_one_line_naming_the_field(cli, root, bad, said):
    path = root.parent / "bad.json"
    path.write_text(json.dumps(spec("scraper", "true", cron_input(every=bad))))
    done = cli("create-pipeline", "-f", str(path))
    assert done.code == 2 and said in done.err and len(done.err.strip().splitlines()) == 1  # a usage error
    assert "Traceback" not in done.err


def test_create_makes_the_tick_repo_and_run_cron_ticks_and_runs_the_job(cli, client, root):
    path = root.parent / "scraper.json"
    path.write_text(json.dumps(spec("scraper", LIST_TICKS, cron_input())))
    made = cli("create-pipeline", "-f", str(path))
    assert made.code == 0
    assert "note: the cron inputs of scraper tick while the daemon runs" in made.err
    assert "has no branch master" not in made.err  # the tick repo's branch comes with its first tick
    assert [r.name for r in client.list_repos()] == ["scraper", "scraper_tick"]
    assert client.list_jobs("scraper") == []  # no tick yet: nothing to run
    ran = cli("run", "cron", "scraper")  # pachctl 2.x's spelling
    assert ran.code == 0 and ran.out.startswith("scraper_tick@")
    [tick] = client.list_files("scraper_tick", "master")
    stamp = datetime.strptime(tick.path, "/%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)  # RFC 3339, UTC
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5 and tick.size == 0
    [job] = client.list_jobs("scraper")
    assert job.state == "success"
    assert client.get_file("scraper", "master", tick.path).decode().split() == [tick.path.lstrip("/")]
    cli("run-cron", "scraper")  # a second tick (even within the same second, a commit)
    assert len(client.list_commits("scraper_tick")) == 2


def test_each_job_runs_the_new_tick_only_and_overwrite_keeps_one_file(client):
    client.create_pipeline(spec("keep", LIST_TICKS, cron_input()))
    client.create_pipeline(spec("latest", LIST_TICKS, cron_input(overwrite=True)))
    records, repos = client.pipeline_layer.records, client.repos
    for seconds in (10, 20, 30):
        fired = cron.fire(repos, records, datetime.now(UTC) + timedelta(seconds=seconds))
        assert len(fired.ticks) == 2 and fired.wait is not None and fired.problems == []
        client.run_pending()
    kept = [f.path for f in client.list_files("keep_tick", "master")]
    assert len(kept) == 3  # three ticks, ten seconds apart
    assert [j.processed for j in client.list_jobs("keep")] == [1, 1, 1]  # earlier ticks skipped
    assert [j.skipped for j in client.list_jobs("keep")] == [2, 1, 0]
    assert len(client.list_files("latest_tick", "master")) == 1
    newest = client.list_files("latest", "master")[-1].path
    assert client.get_file("latest", "master", newest).decode().split() == [
        newest.lstrip("/")
    ]  # only the newest tick seen


def test_a_tick_already_made_is_not_made_again(client):
    client.create_pipeline(spec("scraper", LIST_TICKS, cron_input()))
    records, repos = client.pipeline_layer.records, client.repos
    later = datetime.now(UTC) + timedelta(seconds=15)
    assert len(cron.fire(repos, records, later).ticks) == 1
    assert cron.fire(repos, records, later).ticks == []  # another daemon's pass at the same moment
    assert len(client.list_commits("scraper_tick")) == 1


def test_no_ticks_before_start_and_none_while_paused(client):
    start = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.create_pipeline(spec("later", LIST_TICKS, cron_input(start=start)))
    records, repos = client.pipeline_layer.records, client.repos
    fired = cron.fire(repos, records)
    assert fired.ticks == [] and 3590 < fired.wait <= 3610
    client.stop_pipeline("later")
    assert cron.fire(repos, records, datetime.now(UTC) + timedelta(hours=2)) == cron.Fired([], [], None)


def test_the_tick_repo_follows_pachydermss_naming_and_projects(client):
    client.create_project("scrapes")
    client.create_pipeline(
        {
            **spec("nightly", LIST_TICKS, cron_input(name="night", every="@daily")),
            "pipeline": {"name": "nightly", "project": {"name": "scrapes"}},
        }
    )
    assert "scrapes/nightly_night" in [r.name for r in client.list_repos(all_projects=True)]
    client.create_pipeline(spec("named", LIST_TICKS, cron_input(repo="my_ticks")))
    assert "my_ticks" in [r.name for r in client.list_repos()]


def test_delete_pipeline_deletes_its_tick_repo_unless_keep_repo(client, cli):
    client.create_pipeline(spec("gone", LIST_TICKS, cron_input()))
    client.create_pipeline(spec("kept", LIST_TICKS, cron_input()))
    assert cli("delete-pipeline", "gone").code == 0
    assert cli("delete-pipeline", "kept", "--keep-repo").code == 0
    assert sorted(r.name for r in client.list_repos()) == ["kept", "kept_tick"]


def test_run_cron_on_a_pipeline_without_cron_input_is_one_line(client, cli):
    client.create_repo("in")
    client.create_pipeline(spec("plain", "true", {"pfs": {"repo": "in", "glob": "/*"}}))
    done = cli("run-cron", "plain")
    assert done.code == 2
    assert done.err.strip() == (
        "dataver: error: pipeline plain has no cron input: run-cron ticks the cron inputs of a pipeline "
        '("input": {"cron": {"name": ..., "spec": ...}})'
    )


def test_a_cron_input_never_takes_over_a_repo_that_exists(client, cli, root):
    """Its repo is deleted with the pipeline: a user's repo, or another pipeline's output, is refused."""
    client.create_repo("p_tick")
    client.put_file("p_tick", "master", "precious.txt", source=b"mine")
    path = root.parent / "p.json"
    path.write_text(json.dumps(spec("p", LIST_TICKS, cron_input(overwrite=True))))
    refused = cli("create-pipeline", "-f", str(path))
    assert refused.code == 1 and refused.err.count("\n") == 1
    assert "cron input tick would tick into repo p_tick, which exists already" in refused.err
    assert [p.name for p in client.list_pipelines()] == []
    client.create_repo("in")
    client.create_pipeline(spec("up", "true", {"pfs": {"repo": "in", "glob": "/"}}))
    path.write_text(json.dumps(spec("q", LIST_TICKS, cron_input(repo="up"))))
    assert "would tick into repo up, which exists already" in cli("create-pipeline", "-f", str(path)).err
    client.create_pipeline(spec("r", LIST_TICKS, cron_input()))
    client.update_pipeline(spec("r", LIST_TICKS, cron_input(every="@hourly")))  # its own repo: kept
    assert client.get_file("p_tick", "master", "precious.txt") == b"mine"
