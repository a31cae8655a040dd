"""Planning a job from the last successful one: only the datums whose files changed.

Adding one file to a 100,000-datum input changes one datum. A job then plans the glob matches
whose entries differ between the last successful job's input tree and its own (equal subtrees
are skipped by id, `TreeStore.load` reads only the folders on the way), keeps the other datums'
records (`Records.carry_skipped`) and edits that job's output tree with the changed datums'
outputs (`Committer.edit`), instead of planning, recording and merging every datum again.

It is taken only where it gives what the full path gives: one pfs input whose glob matches at a
fixed depth (`Glob.exact`: every match's datum is its entry at that path, so an unchanged entry
is an unchanged datum, with the same id); the last successful job of the same spec version (so
the same glob, salt and outputs), every one of whose datums succeeded or was skipped (a
recovered datum is not done, and runs again); its input and output commits still there; datums
not reprocessed every job. Anywhere else `increment` says None and the job plans in full.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from ..globs import compile_glob
from ..storage.trees import TreeStore, join_path
from ..versioning.refs import RefsTable
from .datums import Datum, InputCommit, datum_id, matched_part
from .records import JobRecord, PipelineRecord, Records
from .spec import PipelineSpec


@dataclass(frozen=True)
class Increment:
    """What changed since the last successful job (`base`)."""

    base: JobRecord
    base_output: str
    """The tree of its output commit, which the new output edits."""
    gone: list[Datum]
    """Its datums whose glob matches changed or went: their records are not carried, their
    outputs leave the output tree."""
    fresh: list[Datum]
    """The datums of the changed matches in the new input: planned as any job plans its datums."""

    @property
    def total(self) -> int:
        """The new job's datums: the base's (all done) but the gone ones, and the fresh ones."""
        return self.base.total - len(self.gone) + len(self.fresh)


def increment(
    spec: PipelineSpec,
    row: PipelineRecord,
    inputs: list[InputCommit],
    records: Records,
    refs: RefsTable,
    trees: TreeStore,
) -> Increment | None:
    """The change since the pipeline's last successful job, or None where only a full plan is
    sure to give the same datums and output (see the module's docstring)."""
    leaf = spec.input.leaf if spec.input is not None else None
    if leaf is None or spec.reprocess_spec == "every_job" or len(inputs) != 1:
        return None
    glob = compile_glob(leaf.glob)
    if not glob.exact:
        return None
    base = records.last_success(row.name)
    if (
        base is None
        or base.version != row.version
        or base.failed
        or base.recovered
        or base.processed + base.skipped != base.total
    ):
        return None
    (new,) = inputs
    read = [i for i in records.job_inputs(base.id) if i.name == new.name]
    old_commit = refs.commit(read[0].commit) if len(read) == 1 else None
    output = refs.commit_in(row.name, base.output_commit)
    if old_commit is None or output is None or read[0].repo != new.repo:
        return None
    old = replace(new, commit=old_commit.id, tree=old_commit.tree)
    gone: list[Datum] = []
    fresh: list[Datum] = []
    for path in _changed(trees, old.tree, new.tree, len(glob.steps)):
        match = glob.match(path)
        if match is None:
            continue
        for commit, datums in ((old, gone), (new, fresh)):
            entry = trees.lookup(commit.tree, path)
            part = matched_part(leaf, commit, trees, path, entry, match) if entry is not None else None
            if part is not None:
                datums.append(Datum(datum_id(row.salt, (part,)), (part,)))
    return Increment(base, output.tree, gone, fresh)


def _changed(trees: TreeStore, old: str | None, new: str | None, depth: int, prefix: str = "") -> Iterator[str]:
    """The paths `depth` names down whose entries differ between two trees (None: no tree there),
    in path order, not reading below an equal entry."""
    if old == new:
        return
    before = trees.load(old) if old else {}
    after = trees.load(new) if new else {}
    differ = [name for name, entry in after.items() if before.get(name) != entry]
    differ += [name for name in before if name not in after]
    for name in sorted(differ):  # only the few that differ sorted, not a 100,000-entry folder
        a, b = before.get(name), after.get(name)
        path = join_path(prefix, name)
        if depth == 1:
            yield path
            continue
        old_dir, new_dir = (e.oid if e is not None and e.is_dir else None for e in (a, b))
        yield from _changed(trees, old_dir, new_dir, depth - 1, path)
