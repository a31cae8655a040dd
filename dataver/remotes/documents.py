"""The one parser of what a remote holds: `remote.json`, the pack indexes (`packs/<id>.idx`), the
repo manifests (`repos/<name>.json`, their commits and jobs), the pipeline exports and the trees
read from its objects.

A remote is a folder or bucket other people write, so everything read from it is hostile until
it parses here: strict models (pydantic, imported only by a transfer) with exact types, ids in
lowercase hex of their length, names as local names are checked, times finite, sizes and offsets
bounded, parents that exist and form no cycle, tree entries that are one path component. What
does not parse is one line naming the remote and the document (`RemoteDamaged`), raised before
anything is written, so nothing of it reaches this store.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ..errors import Corruption, InvalidArgument
from ..names import check_name, check_qualified, file_name, is_stored_path
from ..storage.packs import PACK_LIMIT
from ..storage.trees import MAX_SIZE, Entry, TreeStore, decode_tree

if TYPE_CHECKING:
    from ..pipelines.exports import PipelineExport
    from ..storage.objects import ObjectStore
    from .manifest import RepoManifest

MAX_TEXT = 1 << 20
"""The longest description, reason or spec a document may hold."""
MAX_COUNT = 1 << 31
"""The largest count (datums, restarts, a version) a document may give."""


class RemoteDamaged(Corruption):
    """A remote's document or tree that this dataver cannot take: damaged, or made to do harm."""


def damaged(label: str, document: str, problem: str) -> RemoteDamaged:
    """The one line every refusal of a remote's document is (what the remote wrote, a name with a
    newline say, is escaped: it stays one line)."""
    return RemoteDamaged(
        f"{label}: {_printable(document)}: {_printable(problem)}: the remote is damaged or hostile; "
        "nothing was transferred"
    )


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]


def pack_index(raw: bytes, label: str, document: str) -> list[tuple[str, int, int]]:
    """A `packs/<id>.idx` document's (object id, offset, size) rows."""
    return [tuple(row) for row in _parse(_models().PackIndexDoc, raw, label, document).objects]  # type: ignore[misc]


def marker(raw: bytes, label: str) -> None:
    """`remote.json`: what makes a place a dataver remote."""
    _parse(_models().MarkerDoc, raw, label, "remote.json")


def manifest(raw: bytes, label: str, repo: str) -> RepoManifest:
    """A repo's manifest, whole and consistent: it names `repo`, its commits are of that repo,
    its branches and provenance name commits it holds, and each commit's parents are there and
    lead back to a first commit (no cycle)."""
    from ..pipelines.exports import JobExport
    from ..versioning.refs import CommitRecord, RepoRecord
    from .manifest import FORMAT, RepoManifest

    document = f"repos/{file_name(repo)}.json"
    _check_format(raw, label, document, FORMAT)
    doc = _parse(_models().ManifestDoc, raw, label, document)
    if doc.repo.name != repo:
        raise damaged(label, document, f"it describes repo {doc.repo.name!r}, not {repo}")
    commits: dict[str, CommitRecord] = {}
    for c in doc.commits:
        if c.id in commits:
            raise damaged(label, document, f"commit {c.id} is there twice")
        if c.repo != repo:
            raise damaged(label, document, f"commit {c.id} says it is of repo {c.repo!r}")
        commits[c.id] = CommitRecord(**{**c.model_dump(), "global_id": c.global_id or c.id})
    _check_ancestry(commits, label, document)
    for branch, head in doc.branches.items():
        if head is not None and head not in commits:
            raise damaged(label, document, f"branch {branch} points at commit {head}, which it does not hold")
    for commit_id in doc.provenance:
        if commit_id not in commits:
            raise damaged(label, document, f"the provenance of commit {commit_id}, which it does not hold")
    jobs = [JobExport.from_dict(j.model_dump()) for j in doc.jobs]
    provenance = {k: list(v) for k, v in doc.provenance.items()}
    return RepoManifest(RepoRecord(**doc.repo.model_dump()), dict(doc.branches), commits, provenance, jobs)


def pipeline(raw: bytes, label: str, name: str) -> PipelineExport:
    """A pipeline's export: its record names it, and every version's spec is a pipeline spec."""
    from ..errors import SpecError
    from ..pipelines.exports import PipelineExport
    from ..pipelines.spec import parse_spec

    document = f"pipelines/{file_name(name)}.json"
    doc = _parse(_models().PipelineDoc, raw, label, document)
    if doc.record.name != name:
        raise damaged(label, document, f"it describes pipeline {doc.record.name!r}, not {name}")
    for version, spec, _ in doc.versions:
        try:
            parse_spec(spec)
        except (SpecError, InvalidArgument) as exc:
            raise damaged(label, document, f"version {version} is not a pipeline spec ({exc})") from None
    return PipelineExport.from_dict(doc.model_dump())


def document_name(document: str, folder: str, label: str, check: Callable[[str, str], str]) -> str:
    """The repo or pipeline name a `<folder>/<name>.json` document is kept under (`P.x` is P/x)."""
    name = document[len(folder) + 1 :].removesuffix(".json").replace(".", "/")
    try:
        if not document.endswith(".json"):
            raise InvalidArgument(document)
        check("repo" if folder == "repos" else "pipeline", name)
    except InvalidArgument:
        raise damaged(label, document, "its name is not a repo or pipeline name") from None
    return name


class RemoteTrees(TreeStore):
    """Trees read from a remote's objects (or another store's, used as a remote): each decoded
    strictly (`trees.decode_tree`), a refusal naming the remote."""

    def __init__(self, objects: ObjectStore, label: str) -> None:
        super().__init__(objects)
        self.label = label

    def _load(self, oid: str) -> dict[str, Entry]:
        try:
            return decode_tree(self.objects.read_bytes(oid))
        except ValueError as exc:
            raise damaged(self.label, f"tree {oid}", str(exc)) from None


def _check_ancestry(commits: dict[str, Any], label: str, document: str) -> None:
    """Every parent is in the manifest, and following parents always ends (a cycle would make
    `list-file --history` and `find-commits` walk for ever)."""
    done: set[str] = set()
    for start in commits:
        chain: set[str] = set()
        commit_id: str | None = start
        while commit_id is not None and commit_id not in done:
            if commit_id in chain:
                raise damaged(label, document, f"commit {commit_id} names itself as its own ancestor")
            chain.add(commit_id)
            parent = commits[commit_id].parent
            if parent is not None and parent not in commits:
                raise damaged(label, document, f"commit {commit_id} has the parent {parent}, which it does not hold")
            commit_id = parent
        done |= chain


def _check_format(raw: bytes, label: str, document: str, newest: int) -> None:
    """A document of a format newer than this dataver reads is named as such, not as damage."""
    found = re.search(rb'"format"\s*:\s*([0-9]{1,9})', raw[:64])  # the writer puts it first
    if found is not None and int(found.group(1)) > newest:
        raise RemoteDamaged(
            f"{label}: {document} is of format {int(found.group(1))}, written by a newer dataver (this one reads "
            f"formats up to {newest}): upgrade dataver here; nothing was transferred"
        )


def _parse(model: Any, raw: bytes, label: str, document: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = "".join(f"{p}: " for p in [".".join(map(str, error["loc"]))] if p)
        raise damaged(label, document, f"{where}{error['msg'][:200]}") from None


@cache
def _models() -> SimpleNamespace:
    """The document models, built on first use: pydantic stays out of every other command's start."""
    from typing import Annotated, Literal

    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

    def named(check: Callable[[str, str], str], kind: str) -> AfterValidator:
        def valid(value: str) -> str:
            try:
                return check(kind, value)
            except InvalidArgument as exc:
                raise ValueError(str(exc)) from None

        return AfterValidator(valid)

    def stored_path(value: str) -> str:
        if not is_stored_path(value):
            raise ValueError(f"{value[:80]!r} is not a path inside a repo")
        return value

    oid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    uid = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    """A commit, job, pack or commit set id."""
    size = Annotated[int, Field(ge=0, le=MAX_SIZE)]
    packed = Annotated[int, Field(ge=0, le=PACK_LIMIT)]
    """Only objects up to PACK_LIMIT are packed: a bigger size is a lie that would be read whole."""
    count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
    when = Annotated[float, Field(ge=0, allow_inf_nan=False)]
    text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
    word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@/ ()-]{0,200}$")]
    """A state, origin or runtime description: short, printable."""
    repo = Annotated[str, named(check_qualified, "repo")]
    branch = Annotated[str, named(check_name, "branch")]
    input_name = Annotated[str, named(check_name, "input")]
    path = Annotated[str, AfterValidator(stored_path)]

    class Strict(BaseModel):
        model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    class MarkerDoc(Strict):
        model_config = ConfigDict(strict=True, extra="allow", frozen=True)
        what: Literal["a dataver remote"]
        format: int

    class PackIndexDoc(Strict):
        objects: list[tuple[oid, size, packed]]

    class RepoDoc(Strict):
        name: repo
        description: text
        created: when

    class CommitDoc(Strict):
        id: uid
        repo: repo
        branch: branch | None
        parent: uid | None
        tree: oid
        state: Literal["finished"]
        origin: word
        description: text
        started: when
        finished: when | None
        size: size
        global_id: uid | None = None
        """Absent in format 1 (before commit sets): the commit is a set of its own."""

    class JobDoc(Strict):
        id: uid
        pipeline: repo
        version: count
        state: Literal["success"]
        runtime: text
        created: when
        started: when | None
        finished: when | None
        output_commit: uid
        reason: text
        restarts: count
        total: count
        processed: count
        skipped: count
        failed: count
        recovered: count
        global_id: uid | None = None
        image: text = ""
        """Absent before format 3 (images recorded per job)."""

    class JobInputDoc(Strict):
        name: input_name
        repo: repo
        branch: branch
        commit: uid

    class JobDatumDoc(Strict):
        job_id: uid
        datum_id: oid
        state: word
        started: when | None
        finished: when | None
        attempts: count
        exit_code: int | None
        reason: text
        log_oid: oid | None
        worker: text

    class DatumInputDoc(Strict):
        name: input_name
        repo: repo
        path: path
        oid: oid
        size: size

    class DatumDoc(Strict):
        id: oid
        created: when
        inputs: list[DatumInputDoc]
        outputs: list[tuple[path, oid, size]]

    class JobExportDoc(Strict):
        job: JobDoc
        inputs: list[JobInputDoc]
        datums: list[JobDatumDoc]
        datum_records: list[DatumDoc]

    class ManifestDoc(Strict):
        format: Literal[1, 2, 3]
        repo: RepoDoc
        branches: dict[branch, uid | None]
        commits: list[CommitDoc]
        provenance: dict[uid, list[uid]]
        jobs: list[JobExportDoc]

    class PipelineRecordDoc(Strict):
        name: repo
        version: count
        spec: text
        salt: text
        state: word
        runtime: word
        context: text | None
        created: when
        updated: when
        runtime_why: text = ""
        image_id: Annotated[str, StringConstraints(pattern=r"^(sha256:[0-9a-f]{64})?$")] = ""
        image_digest: Annotated[
            str, StringConstraints(pattern=r"^([a-z0-9._:/\[\]-]{1,255}@sha256:[0-9a-f]{64})?$")
        ] = ""
        """Checked again where it is used: only a digest of the spec image's own repository is pulled."""

    class PipelineInputDoc(Strict):
        name: input_name
        repo: repo
        branch: branch

    class PipelineDoc(Strict):
        record: PipelineRecordDoc
        versions: list[tuple[count, text, when]]
        inputs: list[PipelineInputDoc]

    return SimpleNamespace(
        MarkerDoc=MarkerDoc, PackIndexDoc=PackIndexDoc, ManifestDoc=ManifestDoc, PipelineDoc=PipelineDoc
    )
