"""The console's pages: one Starlette route each, reading through `dataver.Client`, rendering a
Jinja2 template. Read-only: every route answers GET (and HEAD) only. Lists are pages of `PAGE`
rows, so a store with 10,000 jobs or a 100,000-file folder renders as fast as a small one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..app.client import Client
from ..app.display import ago, datum_counts, duration, size
from ..errors import DataverError, InvalidArgument, NotFound
from ..models import CommitInfo
from ..names import DEFAULT_PROJECT
from . import graph, preview
from .graph import Direction, Graph, Node
from .server import is_loopback

if TYPE_CHECKING:
    from ..pipelines.models import JobInfo

HERE = Path(__file__).parent
PAGE = 50
MAX_PAGE = 10**9
COOKIE = "dataver_console"
PROVENANCE_NODES = 400
"""The most boxes a provenance graph draws (an output computed from 20,000 files would be a
picture a million pixels tall): the rest are counted in a line under it."""
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    **NOSNIFF,
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
"""The console's own pages load only its own script, styles and images, and are never framed."""


def _link(where: str, /, **params: Any) -> str:
    """A console address with its query (`path` is often one of the parameters)."""
    shown = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{where}?{urlencode(shown)}" if shown else where


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.globals.update(link=_link, ago=ago, size=size, duration=duration, progress=datum_counts)
    return env


class Console:
    """The pages over one store, through one Client kept open: its caches of trees (which never
    change: they are named by their hash) then serve every request. The pages run on the server's
    event loop, one at a time, so the Client is never used by two at once."""

    def __init__(self, root: Path, token: str | None) -> None:
        self.root = root
        self.token = token
        self.session = secrets.token_urlsafe(32)
        """What the cookie holds once the token was given (see `_guard`)."""
        self.templates = _templates()
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:  # names on the pages are qualified from the default project (P/x, or x)
            self._client = Client(self.root, project=DEFAULT_PROJECT, run_jobs=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.templates.get_template(template).render(request=request, **context)
        return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)

    # ---- the DAG --------------------------------------------------------------------------

    def dag_view(self, client: Client) -> dict[str, Any]:
        """The drawing of repos and pipelines, each pipeline with its state and its last job's
        progress, and the pipelines whose last job failed (listed above it, so a failure is never
        lost off the edge of a big graph); a failed pipeline links its first failed datum's log."""
        drawn = Graph()
        pipelines = client.list_pipelines(all_projects=True)
        outputs = {p.name for p in pipelines}
        for repo in client.list_repos(all_projects=True):
            kind = "output" if repo.name in outputs else "repo"
            drawn.add(Node(f"repo:{repo.name}", repo.name, _link("/repo", repo=repo.name), kind, size(repo.size)))
        failures: list[Failure] = []
        for pipeline in pipelines:
            job = client.last_job(pipeline.name)
            state = pipeline.state if pipeline.state != "running" or job is None else job.state
            paused = "paused · " if pipeline.state != "running" else ""
            detail = f"{paused}{job.state} · {datum_counts(job)}" if job else pipeline.state
            badge = None
            if job is not None and job.state == "failure":
                failed = next((d for d in client.list_datums(job.id) if d.state == "failed"), None)
                log = _link("/datum", job=job.id, datum=failed.id) if failed is not None else None
                badge = ("log", log) if log is not None else None
                failures.append(Failure(pipeline.name, job, log))
            node = Node(
                f"pipeline:{pipeline.name}",
                pipeline.name,
                _link("/pipeline", name=pipeline.name),
                "pipeline",
                detail,
                state,
                badge,
            )
            drawn.add(node)
            for source in pipeline.inputs:
                drawn.add(Node(f"repo:{source.repo}", source.repo, _link("/repo", repo=source.repo), "repo"))
                drawn.link(f"repo:{source.repo}", node.id)
            drawn.add(Node(f"repo:{pipeline.name}", pipeline.name, _link("/repo", repo=pipeline.name), "output"))
            drawn.link(node.id, f"repo:{pipeline.name}")
        svg = graph.render(drawn, "The DAG of repos and pipelines", Direction.AUTO)
        listed = self.templates.get_template("dag_failures.html").render(failures=failures)
        return {"svg": svg, "failures": listed, "digest": hashlib.sha256((listed + svg).encode()).hexdigest()[:16]}

    async def dag(self, request: Request) -> Response:
        client = self.client
        return self.page(request, "dag.html", title="DAG", **self.dag_view(client))

    async def dag_fragment(self, request: Request) -> Response:
        """What the DAG page swaps in as jobs run: the list of failures and the drawing; its ETag
        tells the page whether anything changed."""
        client = self.client
        view = self.dag_view(client)
        return HTMLResponse(view["failures"] + view["svg"], headers={**PAGE_HEADERS, "ETag": f'"{view["digest"]}"'})

    # ---- repos, commits, files --------------------------------------------------------------

    async def repos(self, request: Request) -> Response:
        client = self.client
        repos = client.list_repos(all_projects=True)
        return self.page(request, "repos.html", title="Repos", repos=repos)

    async def repo(self, request: Request) -> Response:
        name = _arg(request, "repo")
        branch = request.query_params.get("branch") or None
        number = _page(request)
        client = self.client
        info = client.inspect_repo(name)
        branches = client.list_branches(name)
        # one page past this one is asked for, to know whether there is a next page
        commits = client.list_commits(name, branch, limit=(number + 1) * PAGE + 1)
        shown = commits[number * PAGE : (number + 1) * PAGE]
        more = len(commits) > (number + 1) * PAGE
        return self.page(
            request,
            "repo.html",
            title=name,
            repo=info,
            branches=branches,
            branch=branch,
            commits=shown,
            number=number,
            more=more,
        )

    async def commit(self, request: Request) -> Response:
        repo, ref = _arg(request, "repo"), _arg(request, "commit")
        client = self.client
        info = client.inspect_commit(repo, ref)
        upstream = client.upstream_commits(repo, info.id)
        downstream = client.computed_from(repo, info.id)
        job = _job_of(client, info)
        return self.page(
            request,
            "commit.html",
            title=f"{repo}@{info.id}",
            commit=info,
            upstream=upstream,
            downstream=downstream,
            job=job,
        )

    async def files(self, request: Request) -> Response:
        repo, ref = _arg(request, "repo"), _arg(request, "commit")
        path = request.query_params.get("path", "/") or "/"
        client = self.client
        commit = client.inspect_commit(repo, ref)
        info = client.inspect_file(repo, commit.id, path) if path.strip("/") else None
        if info is not None and info.type == "file":
            info, head = client.read_file_head(repo, commit.id, path, preview.LIMIT)
            shown = preview.preview(path, head, info.size)
            return self.page(
                request,
                "file.html",
                title=f"{repo}@{commit.id[:12]}:{path}",
                commit=commit,
                file=info,
                preview=shown,
            )
        number = _page(request)
        entries, count = client.list_files_page(repo, commit.id, path, limit=PAGE, offset=number * PAGE)
        return self.page(
            request,
            "folder.html",
            title=f"{repo}@{commit.id[:12]}:{path}",
            commit=commit,
            path="/" + path.strip("/"),
            parents=_parents(path),
            entries=entries,
            **_paging(number, count),
        )

    async def raw(self, request: Request) -> Response:
        """The file's bytes (verified against its hash as they are fetched): a download, or an
        image shown in a preview."""
        repo, ref, path = _arg(request, "repo"), _arg(request, "commit"), _arg(request, "path")
        client = self.client
        spool = tempfile.NamedTemporaryFile(delete=False, prefix="console-", dir=client.store.objects.tmp_dir)
        try:
            with spool:
                client.get_file_to(repo, ref, path, spool)
        except BaseException:
            os.unlink(spool.name)
            raise
        name = path.rstrip("/").rsplit("/", 1)[-1]
        image = preview.media_type(path)
        return FileResponse(
            spool.name,
            media_type=image or "application/octet-stream",
            filename=None if image and request.query_params.get("inline") else name,
            background=BackgroundTask(os.unlink, spool.name),
            # a file is data, never a page of the console: an SVG in a repo runs no script here
            headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox", **NOSNIFF},
        )

    async def diff(self, request: Request) -> Response:
        repo, new = _arg(request, "repo"), _arg(request, "new")
        old = request.query_params.get("old") or None
        client = self.client
        newer = client.inspect_commit(repo, new)
        older = client.inspect_commit(repo, old or newer.parent) if (old or newer.parent) else None
        changes = client.diff_files(repo, newer.id, older.id if older else None)
        return self.page(request, "diff.html", title=f"diff {repo}", repo=repo, new=newer, old=older, changes=changes)

    # ---- pipelines, jobs, datums --------------------------------------------------------------

    async def pipelines(self, request: Request) -> Response:
        client = self.client
        pipelines = [(p, client.last_job(p.name)) for p in client.list_pipelines(all_projects=True)]
        return self.page(request, "pipelines.html", title="Pipelines", pipelines=pipelines)

    async def pipeline(self, request: Request) -> Response:
        name = _arg(request, "name")
        number = _page(request)
        client = self.client
        info = client.inspect_pipeline(name)
        versions = client.pipeline_history(name)
        jobs = client.list_jobs(name, limit=PAGE, offset=number * PAGE)
        count = client.count_jobs(name)
        wanted = request.query_params.get("version")
        version = next((v for v in versions if str(v.version) == wanted), versions[-1])
        return self.page(
            request,
            "pipeline.html",
            title=name,
            pipeline=info,
            versions=versions,
            version=version,
            user_spec=json.dumps(version.user_spec, indent=2) if version.user_spec is not None else None,
            spec=json.dumps(version.spec, indent=2),
            jobs=jobs,
            **_paging(number, count),
        )

    async def jobs(self, request: Request) -> Response:
        number = _page(request)
        client = self.client
        jobs = client.list_jobs(limit=PAGE, offset=number * PAGE)
        count = client.count_jobs()
        return self.page(request, "jobs.html", title="Jobs", jobs=jobs, **_paging(number, count))

    async def job(self, request: Request) -> Response:
        job_id = _arg(request, "id")
        number = _page(request)
        client = self.client
        info = client.inspect_job(job_id)
        datums = client.list_datums(info.id)
        return self.page(
            request,
            "job.html",
            title=f"job {info.id}",
            job=info,
            datums=datums[number * PAGE : (number + 1) * PAGE],
            **_paging(number, len(datums)),
        )

    async def datum(self, request: Request) -> Response:
        job_id, datum_id = _arg(request, "job"), _arg(request, "datum")
        client = self.client
        job = client.inspect_job(job_id)
        datum = client.inspect_datum(job.id, datum_id)
        logs = client.logs(job=job.id, datum=datum.id)
        log = "".join(text for _, _, text in logs)
        return self.page(request, "datum.html", title=f"datum {datum.id}", job=job, datum=datum, log=log)

    # ---- provenance -----------------------------------------------------------------------

    async def provenance(self, request: Request) -> Response:
        repo, ref, path = _arg(request, "repo"), _arg(request, "commit"), _arg(request, "path")
        client = self.client
        root = client.file_provenance(repo, ref, path)
        drawn = Graph()
        left = _provenance_graph(drawn, root)[1]
        return self.page(
            request,
            "provenance.html",
            title=f"provenance of {repo}:{path}",
            root=root,
            svg=graph.render(drawn, f"Where {path} came from"),
            left=left,
        )


@dataclass(frozen=True)
class Failure:
    """A pipeline whose last job failed, as the DAG page lists it."""

    pipeline: str
    job: JobInfo
    log: str | None
    """The first failed datum's log page (None when no datum failed: e.g. the job timed out)."""


def _provenance_graph(drawn: Graph, node: Any) -> tuple[str, int]:
    """Add a file, the datum that wrote it and, recursively, that datum's input files, up to
    `PROVENANCE_NODES` boxes; its node id, and how many files were left out."""
    file_id = f"file:{node.repo}@{node.commit}:{node.path}"
    href = _link("/files", repo=node.repo, commit=node.commit, path=node.path)
    drawn.add(Node(file_id, f"{node.repo}:{node.path}", href, "file", f"@{node.commit[:8]} · {size(node.size)}"))
    left = 0
    if node.job is not None:
        datum_id = f"datum:{node.job}:{node.datum}"
        label = f"{node.pipeline} v{node.version}"
        datum_href = _link("/datum", job=node.job, datum=node.datum)
        drawn.add(Node(datum_id, label, datum_href, "datum", f"datum {node.datum[:12]}"))
        drawn.link(datum_id, file_id)
        for source in node.inputs:
            if len(drawn.nodes) >= PROVENANCE_NODES:
                left += 1
                continue
            source_id, more = _provenance_graph(drawn, source)
            drawn.link(source_id, datum_id)
            left += more
    return file_id, left


def _job_of(client: Client, commit: CommitInfo) -> Any:
    """The job that made an output commit (None for a commit a user made)."""
    return client.job_for_commit(commit.id) if commit.origin == "job" else None


def _arg(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if not value:
        raise InvalidArgument(f"the address names no {name}: follow a link from the console's pages")
    return value


def _page(request: Request) -> int:
    try:
        number = int(request.query_params.get("page", "0"))
    except ValueError:
        raise InvalidArgument("page must be a whole number") from None
    if not 0 <= number <= MAX_PAGE:
        raise InvalidArgument(f"page must be between 0 and {MAX_PAGE}")
    return number


def _paging(number: int, count: int) -> dict[str, int | bool]:
    """What the pager shows of page `number` of `count` rows."""
    return {"number": number, "count": count, "more": count > (number + 1) * PAGE}


def _parents(path: str) -> list[tuple[str, str]]:
    """(name, path) of each folder above and including `path`, for the breadcrumb."""
    parts = [p for p in path.strip("/").split("/") if p]
    return [(part, "/" + "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


class LoopbackHosts:
    """Answers only requests whose Host names the loopback (localhost, any of 127.0.0.0/8, ::1),
    whichever loopback address the console is bound to: a web page whose own name was made to
    point at 127.0.0.1 (DNS rebinding) sends that name, and is refused in one line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            if not is_loopback(_host_name(host)):
                message = (
                    f"this console answers requests for a loopback address only (localhost, 127.0.0.0/8, ::1), "
                    f"not {host[:80]!r}: open the URL `dataver console` printed\n"
                )
                await PlainTextResponse(message, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(header: str) -> str:
    """A Host header's name, without its port or an IPv6 address's brackets."""
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def make_app(root: Path, token: str | None = None) -> Starlette:
    """The console over the store at `root`; with a `token`, every request must carry it (a
    `?token=` once, which sets a cookie, or `Authorization: Bearer TOKEN`). Without one (bound to
    loopback) only requests naming a loopback host are answered: a web page whose own name was
    made to point at 127.0.0.1 (DNS rebinding) is refused instead of reading the store."""
    console = Console(root, token)
    pages = {
        "/": console.dag,
        "/dag/graph": console.dag_fragment,
        "/repos": console.repos,
        "/repo": console.repo,
        "/commit": console.commit,
        "/files": console.files,
        "/raw": console.raw,
        "/diff": console.diff,
        "/pipelines": console.pipelines,
        "/pipeline": console.pipeline,
        "/jobs": console.jobs,
        "/job": console.job,
        "/datum": console.datum,
        "/provenance": console.provenance,
    }
    routes: list[Any] = [Route(path, _guard(console, handler), methods=["GET"]) for path, handler in pages.items()]
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        console.close()

    middleware = [] if token is not None else [Middleware(LoopbackHosts)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _guard(console: Console, handler: Any) -> Any:
    """The token check, then the page; a DataverError is a page of one line (404 for what is not
    there, 400 for a bad address), and anything else one line too (500), never a traceback."""

    async def guarded(request: Request) -> Response:
        if console.token is not None:
            given = request.query_params.get("token")
            if given is not None and _same(given, console.token):
                response = RedirectResponse(_without_token(request), status_code=303)
                # the cookie holds this run's session, not the token: a browser sends a cookie to
                # every port of the host, and a session dies with the console that made it
                response.set_cookie(COOKIE, console.session, httponly=True, samesite="strict")
                return response
            scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
            held = (scheme.lower() == "bearer" and _same(bearer.strip(), console.token)) or _same(
                request.cookies.get(COOKIE, ""), console.session
            )
            if not held:
                return PlainTextResponse(
                    "this console needs its token: open the URL `dataver console` printed (with ?token=...)\n",
                    status_code=401,
                )
        try:
            return await handler(request)
        except DataverError as exc:
            status = 404 if isinstance(exc, NotFound) else 400
            title = "Not found" if status == 404 else "Bad request"
            return console.page(request, "error.html", status=status, title=title, message=str(exc))
        except Exception as exc:  # a page's own bug: one line, and the console goes on
            message = f"this page failed: {type(exc).__name__}: {exc}"
            return console.page(request, "error.html", status=500, title="Error", message=message)

    return guarded


def _without_token(request: Request) -> str:
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + (f"?{urlencode(params)}" if params else "")
