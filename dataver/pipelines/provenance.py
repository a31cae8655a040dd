"""File-level provenance: which job and datum wrote a file, from which input files, all the way back.

Pachyderm records provenance per commit; dataver also knows, for every output file, the
datum that wrote it and that datum's input files (repo, commit, path, content hash), so the
chain can be followed file by file back to the data users put in.
"""

from __future__ import annotations

from ..errors import NotFound
from ..names import CommitRef, normalize_path
from ..storage.store import Store
from ..versioning.repos import RepoStore
from .models import ProvenanceNode
from .records import Records

MAX_DEPTH = 64


def file_provenance(
    store: Store, repos: RepoStore, records: Records, repo: str, ref: CommitRef, path: str
) -> ProvenanceNode:
    path = normalize_path(path, allow_root=False)
    with store.db.read():
        commit = repos.resolve(repo, ref)
        return _node(store, repos, records, repo, commit.id, commit.tree, path, MAX_DEPTH)


def _node(
    store: Store, repos: RepoStore, records: Records, repo: str, commit: str, tree: str, path: str, depth: int
) -> ProvenanceNode:
    entry = store.trees.lookup(tree, path)
    if entry is None or entry.is_dir:
        raise NotFound(f"/{path} is not a file in {repo}@{commit}: provenance is kept for files")
    job = records.job_for_commit(commit)
    base = dict(repo=repo, commit=commit, path="/" + path, hash=entry.oid, size=entry.size)
    if job is None or depth == 0:
        return ProvenanceNode(**base)
    datum = records.datum_writer(job.pipeline, path, job.id)
    if datum is None:
        return ProvenanceNode(**base, job=job.id, pipeline=job.pipeline, version=job.version, image=job.image or None)
    commits = {i.name: i.commit for i in records.job_inputs(job.id)}
    inputs = []
    for row in records.datum_input_files(job.pipeline, datum):
        input_commit = commits.get(row.name, "")
        upstream = repos.refs.commit(input_commit)
        if upstream is None:
            inputs.append(ProvenanceNode(row.repo, input_commit, "/" + row.path, row.oid, row.size))
        else:
            inputs.append(_node(store, repos, records, row.repo, input_commit, upstream.tree, row.path, depth - 1))
    ran = dict(job=job.id, pipeline=job.pipeline, version=job.version, image=job.image or None)
    return ProvenanceNode(**base, **ran, datum=datum, inputs=inputs)
