"""The web console, end to end: a real console server (uvicorn) over a real store with the iris
pipelines, driven in headless chromium (selenium with chromium-driver) as a user clicks through it,
and over HTTP for the token, read-only and error answers."""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from backends import on_both_stores
from helpers import iris_store, pfs, spec
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from dataver import Client
from dataver.console.server import Binding, ConsoleServer

BROKEN = spec("broken", "echo reading $(ls /pfs/attributes); echo cannot parse >&2; exit 2", pfs("attributes"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """A store with the iris example run through (model, inference) and a pipeline that fails."""
    root = tmp_path_factory.mktemp("console") / "store"
    iris_store(root)
    with Client(root) as client:
        client.create_pipeline({**BROKEN, "datum_tries": 1})
    return root


@pytest.fixture(scope="module")
def console(iris):
    """The console over the iris store, on a free port of 127.0.0.1; its base URL."""
    server = ConsoleServer(iris, Binding("127.0.0.1", free_port()), None)
    server.start()
    yield server.binding.url().rstrip("/")
    server.stop()


def get(url: str, **headers: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def node(browser, name: str):
    """A DAG node's link, by the node's id (`pipeline:NAME`, `repo:NAME`)."""
    return browser.find_element(By.CSS_SELECTOR, f'g[data-node="{name}"] > a')


def test_the_dag_shows_the_iris_pipelines_and_a_failed_datum_log_is_one_click_away(browser, console):
    browser.get(console + "/")
    assert browser.title == "DAG · dataver"
    nodes = {g.get_attribute("data-node") for g in browser.find_elements(By.CSS_SELECTOR, "svg.graph g.node")}
    assert {"repo:training", "pipeline:model", "repo:model", "pipeline:inference", "repo:attributes"} <= nodes
    model = browser.find_element(By.CSS_SELECTOR, 'g[data-node="pipeline:model"]')
    assert "state-success" in model.get_attribute("class") and "1 + 0 / 1" in model.text
    broken = browser.find_element(By.CSS_SELECTOR, 'g[data-node="pipeline:broken"]')
    assert "state-failure" in broken.get_attribute("class")
    broken.find_element(By.CSS_SELECTOR, "a.badge").click()  # the failed datum's log
    assert browser.title.startswith("datum ")
    assert re.search(r"reading [12]\.csv", browser.find_element(By.ID, "log").text)
    assert "cannot parse" in browser.find_element(By.ID, "log").text
    assert "the command exited with code 2" in browser.page_source


def test_from_the_dag_to_a_pipeline_its_job_and_a_datum(browser, console):
    browser.get(console + "/")
    node(browser, "pipeline:inference").click()
    assert browser.title == "inference · dataver"
    assert '"name": "inference"' in browser.find_element(By.CSS_SELECTOR, "pre.spec").text
    browser.find_element(By.CSS_SELECTOR, "table.jobs tbody tr td a").click()
    assert browser.title.startswith("job ")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.datums tbody tr")
    assert len(rows) == 2 and all("success" in r.text for r in rows)
    files = sorted(r.find_elements(By.TAG_NAME, "td")[2].text for r in rows)
    assert files == ["attributes:/1.csv, model:/", "attributes:/2.csv, model:/"] or all(
        "attributes:/" in f for f in files
    )
    rows[0].find_element(By.TAG_NAME, "a").click()
    assert browser.title.startswith("datum ")
    assert browser.find_element(By.ID, "log").text  # the log, or that the command printed nothing


def test_a_file_previews_downloads_and_shows_its_provenance_down_to_the_users_data(browser, console):
    browser.get(console + "/repos")
    browser.find_element(By.LINK_TEXT, "inference").click()
    browser.find_element(By.LINK_TEXT, "files").click()
    browser.find_element(By.LINK_TEXT, "2").click()
    assert browser.find_element(By.CSS_SELECTOR, "pre.preview").text.split() == [
        "Iris-versicolor",
        "Iris-virginica",
        "Iris-virginica",
        "Iris-virginica",
        "Iris-setosa",
        "Iris-setosa",
    ]
    download = browser.find_element(By.ID, "download").get_attribute("href")
    status, body, headers = get(download)
    assert status == 200 and body.split()[0] == "Iris-versicolor" and "attachment" in headers["content-disposition"]
    browser.find_element(By.ID, "provenance").click()
    nodes = {g.get_attribute("data-node") for g in browser.find_elements(By.CSS_SELECTOR, "svg.graph g.node")}
    files = {n.split("@")[0] + ":" + n.split(":", 2)[2] for n in nodes if n.startswith("file:")}
    assert files == {
        "file:inference:/2",
        "file:model:/model.pkl",
        "file:model:/model.txt",
        "file:attributes:/2.csv",
        "file:training:/iris.csv",
    }
    assert {n.split(":")[0] for n in nodes} == {"file", "datum"}
    browser.find_element(By.CSS_SELECTOR, 'g.file[data-node^="file:training@"] > a').click()  # the data put in
    assert "training@" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.CSS_SELECTOR, "table.csv").text.startswith("5.1")


def test_a_commit_shows_what_it_came_from_what_was_computed_from_it_and_a_diff(browser, console, iris):
    with Client(iris) as client:
        model = client.inspect_commit("model", "master")
        training = client.inspect_commit("training", "master")
    browser.get(f"{console}/commit?repo=model&commit={model.id}")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#upstream a")] == [f"training@{training.id[:12]}"]
    assert [a.text.split("@")[0] for a in browser.find_elements(By.CSS_SELECTOR, "#downstream a")] == ["inference"]
    browser.get(f"{console}/diff?repo=model&new={model.id}")
    changes = [r.text.split()[:2] for r in browser.find_elements(By.CSS_SELECTOR, "table.diff tbody tr")]
    assert changes == [["added", "/model.pkl"], ["added", "/model.txt"]]
    with Client(iris) as client:  # two commits of one repo, picked on the page
        first = client.put_file("training", "master", "extra.csv", source=b"1,2,3,4,Iris-setosa\n").id
        client.delete_file("training", "master", "extra.csv")
        second = client.put_file("training", "master", "more.csv", source=b"5,6,7,8,Iris-setosa\n").id
    browser.get(f"{console}/commit?repo=training&commit={second}")
    browser.find_element(By.ID, "diff-with").send_keys(first)
    browser.find_element(By.CSS_SELECTOR, ".diff-form button").click()
    changes = [r.text.split()[:2] for r in browser.find_elements(By.CSS_SELECTOR, "table.diff tbody tr")]
    assert changes == [["deleted", "/extra.csv"], ["added", "/more.csv"]]


def test_the_dag_follows_the_store_as_jobs_run(browser, console, iris):
    browser.get(console + "/")
    before = browser.find_element(By.CSS_SELECTOR, 'g[data-node="pipeline:inference"]').text
    assert "success" in before and "/ 2" in before  # two attributes files so far
    with Client(iris) as client:  # a third attributes file: inference runs one new datum
        client.put_file("attributes", "master", "3.csv", source=b"6.3,3.3,6.0,2.5\n")
    deadline = time.monotonic() + 15
    while "1 + 2 / 3" not in _node_text(browser, "pipeline:inference"):
        assert time.monotonic() < deadline, "the DAG did not follow the new job"
        time.sleep(0.3)


def _node_text(browser, node: str) -> str:
    """A DAG node's text; '' while the page swaps in a new drawing (every 2 s), when the node
    found a moment ago is no longer in the page."""
    try:
        return browser.find_element(By.CSS_SELECTOR, f'g[data-node="{node}"]').text
    except StaleElementReferenceException:
        return ""


def test_a_big_folder_is_paged(browser, console, iris, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(120):
        (folder / f"f{i:03d}").write_text("x")
    with Client(iris) as client:
        client.create_repo("many")
        client.put_file("many", "master", "/", source=[str(folder)], recursive=True)
    browser.get(f"{console}/files?repo=many&commit=master")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.files tbody td:first-child a")]
    assert names == [f"f{i:03d}" for i in range(50)]
    assert "120 in all" in browser.find_element(By.CSS_SELECTOR, ".pager").text
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.files tbody td:first-child a")]
    assert names == [f"f{i:03d}" for i in range(100, 120)]
    assert not browser.find_elements(By.CSS_SELECTOR, "a[rel=next]")


def test_what_is_not_there_is_one_line_and_the_console_is_read_only(console):
    status, body, _ = get(console + "/repo?repo=nope")
    assert status == 404 and "repo nope not found" in body and "Traceback" not in body
    status, body, _ = get(console + "/files?repo=training&commit=master&path=/nope.csv")
    assert status == 404 and "nope.csv" in body
    status, body, _ = get(console + "/repo")
    assert status == 400 and "the address names no repo" in body
    for method in ("POST", "PUT", "DELETE"):
        request = urllib.request.Request(console + "/repos", method=method, data=b"")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405


def test_bound_beyond_loopback_every_request_needs_the_token(iris):
    port = free_port()
    server = ConsoleServer(iris, Binding("0.0.0.0", port), "s3cret-token")
    server.start()
    try:
        base = f"http://127.0.0.1:{port}"
        status, body, _ = get(base + "/repos")
        assert status == 401 and "needs its token" in body and "training" not in body
        assert get(base + "/repos", Authorization="Bearer wrong")[0] == 401
        status, body, _ = get(base + "/repos", Authorization="Bearer s3cret-token")
        assert status == 200 and "training" in body
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(base + "/repos?token=s3cret-token", timeout=10) as answer:  # the URL printed: a cookie
            assert answer.status == 200 and answer.url == base + "/repos" and "training" in answer.read().decode()
        with opener.open(base + "/pipelines", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.stop()


def test_the_console_command_prints_its_url_and_refuses_a_bad_address(iris):
    env_root = ["--root", str(iris)]
    bad = subprocess.run(
        [sys.executable, "-m", "dataver", *env_root, "console", "--address", "here:port"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "dataver: error: console address 'here:port': give HOST:PORT, e.g. 127.0.0.1:8800"
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataver", *env_root, "console", "--address", f"0.0.0.0:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"console at http://0.0.0.0:{port}/?token=") and "(Ctrl-C stops it)" in line
        token = line.split("token=")[1].split()[0]
        assert get(f"http://127.0.0.1:{port}/repos", Authorization=f"Bearer {token}")[0] == 200
        taken = subprocess.run(
            [sys.executable, "-m", "dataver", *env_root, "console", "--address", f"0.0.0.0:{port}"],
            capture_output=True,
            text=True,
        )
        assert taken.returncode == 1 and taken.stderr.count("\n") == 1
        assert f"the console cannot listen on http://0.0.0.0:{port}/" in taken.stderr
        proc.send_signal(signal.SIGINT)  # Ctrl-C: stops, quietly
        assert proc.wait(30) == 0 and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(10)


def test_the_daemon_serves_the_console_too(dv):
    port = free_port()
    started = dv("daemon", "start", "--console", "--console-address", f"127.0.0.1:{port}")
    assert f"console at http://127.0.0.1:{port}/" in started.stdout
    dv("create-repo", "training")
    status, body, _ = get(f"http://127.0.0.1:{port}/repos")
    assert status == 200 and "training" in body
    assert json.loads(dv("daemon", "status", "--json").stdout)["pid"]
    dv("daemon", "stop")


def test_the_console_works_on_a_shared_store(hosts, tmp_path):
    """Host a puts a file in the shared store (PostgreSQL and a bucket); a console on host b
    shows the repo and previews the file, read from the bucket."""
    a, b = hosts
    a("create-repo", "shared")
    (tmp_path / "notes.txt").write_text("written on host a\n")
    a("put-file", "shared", "master", "-f", str(tmp_path / "notes.txt"))
    server = ConsoleServer(b.root, Binding("127.0.0.1", free_port()), None)
    server.start()
    try:
        base = server.binding.url().rstrip("/")
        status, body, _ = get(base + "/repos")
        assert status == 200 and "shared" in body
        status, body, _ = get(base + "/files?repo=shared&commit=master&path=/notes.txt")
        assert status == 200 and "written on host a" in body
    finally:
        server.stop()


@on_both_stores
def test_every_page_answers_on_either_store(root):
    """Every page of the console over the iris example, as its links lead, on a local store and on
    a shared one (PostgreSQL and S3): each answers 200 with what it is about, so no page runs a
    query only one dialect understands (the browser tests above run on the local store)."""
    iris_store(root)
    with Client(root) as client:
        job = client.list_jobs("inference")[0]
        datum = client.list_datums(job.id)[0]
    server = ConsoleServer(root, Binding("127.0.0.1", free_port()), None)
    server.start()
    try:
        base = server.binding.url().rstrip("/")
        for page, shows in [
            ("/", "inference"),
            ("/dag/graph", "inference"),
            ("/repos", "attributes"),
            ("/repo?repo=inference", "inference"),
            ("/commit?repo=inference&commit=master", "inference"),
            ("/files?repo=inference&commit=master&path=/", "2"),
            ("/files?repo=inference&commit=master&path=/2", "Iris-setosa"),
            ("/raw?repo=inference&commit=master&path=/2", "Iris-setosa"),
            ("/diff?repo=inference&new=master", "inference"),
            ("/pipelines", "model"),
            ("/pipeline?name=inference", "infer"),
            ("/jobs", "inference"),
            (f"/job?id={job.id}", job.id),
            (f"/datum?job={job.id}&datum={datum.id}", datum.id),
            ("/provenance?repo=inference&commit=master&path=/2", "iris.csv"),
        ]:
            status, body, _ = get(base + page)
            assert status == 200 and shows in body, (page, status, body[-500:])
    finally:
        server.stop()


def test_a_file_from_a_repo_never_runs_as_a_console_page(console, iris):
    """An SVG holding a script, put by anyone: served sandboxed, as data; pages load only the console's own."""
    with Client(iris) as client:
        client.create_repo("pictures")
        client.put_file(
            "pictures",
            "master",
            "evil.svg",
            source=b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        )
    status, _, headers = get(console + "/raw?repo=pictures&commit=master&path=/evil.svg&inline=1")
    assert (
        status == 200
        and "sandbox" in headers["content-security-policy"]
        and headers["x-content-type-options"] == "nosniff"
    )
    status, _, headers = get(console + "/repos")
    assert status == 200 and "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_web_page_cannot_read_a_loopback_console_by_another_name(console):
    """DNS rebinding: a page whose name was made to point at 127.0.0.1 is refused."""
    assert get(console + "/repos", Host="attacker.example:8800")[0] == 400
    assert get(console + "/repos", Host="localhost")[0] == 200


def test_a_console_on_another_loopback_address_answers_any_loopback_name(iris):
    """Bound to 127.0.0.2: every loopback name is answered (it was 400 for all), another name not."""
    server = ConsoleServer(iris, Binding("127.0.0.2", free_port()), None)
    server.start()
    try:
        base = server.binding.url().rstrip("/")
        port = server.binding.port
        for host in (f"127.0.0.2:{port}", "127.0.0.1", f"127.9.9.9:{port}", f"localhost:{port}", f"[::1]:{port}"):
            status, body, _ = get(base + "/repos", Host=host)
            assert status == 200 and "attributes" in body, host
        others = ("attacker.example", f"127.0.0.2.attacker.example:{port}", "localhost.attacker.example", "10.0.0.1")
        for host in others:
            status, body, _ = get(base + "/repos", Host=host)
            assert status == 400 and body == (
                "this console answers requests for a loopback address only (localhost, 127.0.0.0/8, ::1), "
                f"not {host!r}: open the URL `dataver console` printed\n"
            )
    finally:
        server.stop()


def test_odd_tokens_pages_and_projects_are_one_line_answers(iris, monkeypatch):
    with Client(iris) as client:
        client.create_project("p")
        client.create_repo("p/data")
    monkeypatch.setenv("DATAVER_PROJECT", "p")  # a current project: the pages still name repos from the default
    port = free_port()
    server = ConsoleServer(iris, Binding("0.0.0.0", port), "s3cret-token")
    server.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert get(base + "/repos?token=%C3%A9")[0] == 401  # not a 500
        assert get(base + "/repos", Authorization="Bearer \u00e9")[0] == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        assert get(base + "/repo?repo=training", **auth)[0] == 200
        assert get(base + "/repo?repo=p/data", **auth)[0] == 200
        status, body, _ = get(base + "/jobs?page=99999999999999999999", **auth)
        assert status == 400 and "page must be between 0 and" in body
        redirect = urllib.request.build_opener(NoRedirect()).open
        with pytest.raises(urllib.error.HTTPError) as moved:
            redirect(base + "/repos?token=s3cret-token", timeout=10)
        cookie = moved.value.headers["set-cookie"]
        assert moved.value.code == 303 and "s3cret-token" not in cookie and "HttpOnly" in cookie
    finally:
        server.stop()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


CHAIN = 8


@pytest.fixture(scope="module")
def long_dag(tmp_path_factory):
    """A console over a chain of CHAIN pipelines (step1 reads raw, step2 reads step1, ...) and
    `publish` at its far end, which fails: one row of it is several pages wide."""
    root = tmp_path_factory.mktemp("long-dag") / "store"
    Client.init(root)
    with Client(root) as client:
        client.create_repo("raw")
        client.put_file("raw", "master", "data.txt", source=b"some data\n")
        for i in range(1, CHAIN + 1):
            client.create_pipeline(
                spec(f"step{i}", "cp -r /pfs/in/. /pfs/out/", pfs("raw" if i == 1 else f"step{i - 1}", name="in"))
            )
        client.create_pipeline(
            {
                **spec("publish", "echo the upload server refused the file >&2; exit 3", pfs(f"step{CHAIN}")),
                "datum_tries": 1,
            }
        )
    server = ConsoleServer(root, Binding("127.0.0.1", free_port()), None)
    server.start()
    yield server.binding.url().rstrip("/")
    server.stop()


@pytest.fixture
def small_window(browser):
    """The browser at 1280x800 (a laptop), as the report that the DAG ran off the page had it."""
    before = browser.get_window_size()
    browser.set_window_size(1280, 800)
    yield browser
    browser.set_window_size(before["width"], before["height"])


def in_view(browser, element) -> bool:
    return browser.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;",
        element,
    )


def test_a_long_dag_fits_the_window_with_its_failure_in_view_and_a_legend(small_window, long_dag):
    browser = small_window
    browser.get(long_dag + "/")
    publish = browser.find_element(By.CSS_SELECTOR, 'g[data-node="pipeline:publish"]')
    assert "state-failure" in publish.get_attribute("class")
    assert in_view(browser, publish), "the failed pipeline is off-screen"
    assert browser.execute_script("return document.documentElement.scrollWidth <= innerWidth")  # no sideways scroll
    for i in range(1, CHAIN + 1):  # the whole graph is in view, not only the failure
        assert in_view(browser, browser.find_element(By.CSS_SELECTOR, f'g[data-node="pipeline:step{i}"]'))
    failures = browser.find_element(By.ID, "failures")
    assert "1 failed pipeline" in failures.text and "publish" in failures.text
    assert "datum(s) failed" in failures.find_element(By.CLASS_NAME, "reason").text
    legend = browser.find_element(By.ID, "legend").text.split("\n")
    assert legend == ["input repo", "pipeline", "output repo", "job running", "job failed", "job success"]
    assert "output" in browser.find_element(By.CSS_SELECTOR, 'g[data-node="repo:step1"]').get_attribute("class")
    assert "output" not in browser.find_element(By.CSS_SELECTOR, 'g[data-node="repo:raw"]').get_attribute("class")
    failures.find_element(By.LINK_TEXT, "log").click()  # the failure list leads to the log
    assert "the upload server refused the file" in browser.find_element(By.ID, "log").text


def test_the_dag_zooms_pans_and_fits_again(small_window, long_dag):
    browser = small_window
    browser.get(long_dag + "/")

    def box() -> dict:
        return browser.find_element(By.CSS_SELECTOR, 'g[data-node="pipeline:step1"] rect').rect

    fitted = box()
    browser.find_element(By.ID, "dag-zoom-in").click()
    browser.find_element(By.ID, "dag-zoom-in").click()
    zoomed = box()
    assert zoomed["width"] > fitted["width"] * 1.5
    graph = browser.find_element(By.ID, "dag")
    ActionChains(browser).move_to_element(graph).click_and_hold().move_by_offset(-150, -100).release().perform()
    panned = box()
    assert round(panned["x"] - zoomed["x"]) == -150 and round(panned["y"] - zoomed["y"]) == -100
    assert browser.title == "DAG · dataver"  # the drag was not a click on a node
    browser.find_element(By.ID, "dag-fit").click()
    assert box() == fitted


def test_a_failure_reason_wraps_between_words(small_window, console):
    """The job's reason (a long sentence) on the DAG page's list of failures and on the job page:
    every line break falls between words, none inside one."""
    browser = small_window
    browser.get(console + "/")
    reason = browser.find_element(By.CSS_SELECTOR, "#failures .reason")
    lines = _lines(browser, reason)
    assert len(lines) > 1, "the reason is long enough to wrap"
    for before, after in itertools.pairwise(lines):
        assert not (before[-1:].isalnum() and after[:1].isalnum()), f"cut mid-word: {before!r} | {after!r}"
    browser.find_element(By.CSS_SELECTOR, "#failures a[href^='/job']").click()
    state = browser.find_element(By.CSS_SELECTOR, "dd.state-failure")
    assert browser.execute_script("return getComputedStyle(arguments[0]).wordBreak", state) != "break-all"
    assert browser.execute_script("return getComputedStyle(arguments[0]).overflowWrap", state) == "anywhere"


def _lines(browser, element) -> list[str]:
    """The text of an element as the browser laid it out, line by line."""
    return browser.execute_script(
        """
        const text = arguments[0].firstChild, range = document.createRange(), lines = [];
        let top = null;
        for (let i = 0; i < text.length; i++) {
          range.setStart(text, i); range.setEnd(text, i + 1);
          const rects = range.getClientRects();
          if (!rects.length) { if (lines.length) lines[lines.length - 1] += text.data[i]; continue; }
          if (top === null || rects[0].top > top + 2) { lines.push(""); top = rects[0].top; }
          lines[lines.length - 1] += text.data[i];
        }
        return lines;
        """,
        element,
    )


def test_the_pipeline_page_shows_the_spec_as_written_and_the_normalized_one_folded(browser, console, iris):
    with Client(iris) as client:
        client.create_pipeline(spec("as-written", "cat /pfs/attributes/* > /pfs/out/all", pfs("attributes", glob="/")))
    browser.get(console + "/pipeline?name=as-written")
    written = json.loads(browser.find_element(By.ID, "spec").text)
    assert written == spec("as-written", "cat /pfs/attributes/* > /pfs/out/all", pfs("attributes", glob="/"))
    assert '"stdin"' not in browser.find_element(By.ID, "spec").text
    folded = browser.find_element(By.CSS_SELECTOR, "details.normalized")
    assert folded.get_attribute("open") is None
    normalized = browser.find_element(By.CSS_SELECTOR, "pre.spec-normalized")
    assert not normalized.is_displayed() and '"stdin": []' in normalized.get_attribute("textContent")
    folded.find_element(By.TAG_NAME, "summary").click()
    assert normalized.is_displayed()
