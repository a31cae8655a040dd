"""Creating, updating, pausing and deleting pipelines, with the checks that keep the DAG sound.

A pipeline's output repo is named after it and made with it, in the same transaction.
Its inputs must exist, its name must be free (as a pipeline and as a repo), and it may not
read, directly or through other pipelines, its own output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, Ambiguous, Conflict, InvalidArgument, NotFound, SpecError
from ..names import parse_commit_ref
from ..runtimes import images
from ..runtimes.choice import built_here, check_runtime, choose_runtime
from ..runtimes.references import parse_reference
from ..storage.store import Store
from ..versioning.repos import RepoStore
from .egress import check_target
from .records import PipelineRecord, Placement, Records
from .spec import PipelineSpec

if TYPE_CHECKING:  # the Docker SDK's side is imported only for a pipeline that runs there
    from ..runtimes.pulls import PullListener


@dataclass(frozen=True)
class ImageEvents:
    """Who hears about an image while a pipeline is placed: notes (a pull that fell back to the
    engine's copy, an image the local runtime does not use) and a pull's progress."""

    notice: Callable[[str], None] | None = None
    pulls: PullListener | None = None


QUIET = ImageEvents()


class PipelineService:
    def __init__(self, store: Store, repos: RepoStore, records: Records) -> None:
        self.store = store
        self.repos = repos
        self.records = records

    def downstream(self, repo: str) -> set[str]:
        """Every repo computed, directly or not, from `repo`."""
        seen: set[str] = set()
        frontier = [repo]
        while frontier:
            current = frontier.pop()
            for pipeline in self.records.readers_of(current):
                if pipeline not in seen:
                    seen.add(pipeline)
                    frontier.append(pipeline)
        return seen

    def _check_inputs(self, spec: PipelineSpec, *, early: bool = False) -> None:
        """`early`: before the cron inputs' repos are made (those are left out)."""
        made_later = {c.as_pfs.full_repo for c in spec.cron_inputs()} if early else set()
        for i, pfs in enumerate(spec.pfs_inputs()):
            if pfs.full_repo in made_later:
                continue
            if pfs.full_repo == spec.name or pfs.full_repo in self.downstream(spec.name):
                raise SpecError(
                    f"pipeline {spec.name} would read its own output through repo {pfs.full_repo}: "
                    "a pipeline graph cannot have cycles"
                )
            try:
                self.repos.require_repo(pfs.full_repo)
            except NotFound as exc:
                said = str(exc)
                # a did-you-mean, or how to create it (the repo, or first its project)
                advice = f": {said}" if said.startswith("project ") else said.partition(" not found")[2]
                raise NotFound(
                    f"pipeline {spec.name}: input repo {pfs.full_repo} (input #{i + 1}) does not exist{advice}"
                ) from None
            if pfs.commit:
                try:
                    self.repos.resolve(pfs.full_repo, parse_commit_ref(pfs.commit))
                except (NotFound, InvalidArgument, Ambiguous) as exc:
                    raise NotFound(
                        f"pipeline {spec.name}: input {pfs.input_name} (pfs.commit {pfs.commit}): {exc}"
                    ) from None

    def _make_cron_repos(self, spec: PipelineSpec, current: PipelineSpec | None = None) -> None:
        """A cron input's repo is made with its pipeline (Pachyderm's `<pipeline>_<name>`), and
        deleted with it: so it must be new, never a repo that holds someone's data or another
        pipeline's output (an update keeps the repos its current version made)."""
        owned = {c.as_pfs.full_repo for c in current.cron_inputs()} if current is not None else set()
        for cron in spec.cron_inputs():
            repo = cron.as_pfs.full_repo
            if repo in owned:
                continue
            if self.repos.repo_exists(repo):
                raise AlreadyExists(
                    f"pipeline {spec.name}: cron input {cron.name} would tick into repo {repo}, which exists already: "
                    'a cron input makes its own repo (and deletes it with the pipeline): give it another "repo", '
                    "or delete that repo"
                )
            self.repos.create_repo(repo, f"cron ticks of pipeline {spec.name} ({cron.spec})")

    def place(
        self,
        spec: PipelineSpec,
        runtime: str | None,
        spec_path: Path | None,
        events: ImageEvents = QUIET,
        *,
        dry: bool = False,
    ) -> Placement:
        """Where a pipeline created or updated now runs: `runtime` as asked, or with None the one
        an existing pipeline runs on (auto chose it once) or auto for a new one. Call it outside
        any write: it may pull an image (`dry`: everything is checked, nothing pulled, for a
        transaction's trial)."""
        with self.store.db.read():
            before = self.records.pipeline(spec.name) if self.records.exists(spec.name) else None
        asked = check_runtime(runtime or (before.runtime if before is not None else "auto"))
        placement = self._place(spec, asked, spec_path, events, before, dry)
        if runtime is None and before is not None and before.runtime != "auto":
            placement = replace(placement, why=before.runtime_why)
        return placement

    def _place(
        self,
        spec: PipelineSpec,
        asked: str,
        spec_path: Path | None,
        events: ImageEvents,
        before: PipelineRecord | None,
        dry: bool,
    ) -> Placement:
        """Where the pipeline runs from now on, decided once (see `runtimes.choice`): its runtime,
        and the image, resolved now so that an image no runtime can run is refused at once. On
        the Docker runtime, a registry image is pulled now and pinned (`runtimes.pulls`)."""
        image = spec.transform.image
        if image and not built_here(image, spec_path):  # checked as new specs come, not as stored ones are read
            try:
                parse_reference(image)
            except InvalidArgument as exc:
                raise SpecError(f"pipeline {spec.name}: transform.{exc}") from None
        choice = choose_runtime(asked, image, spec_path)
        if choice.runtime == "docker":
            from ..runtimes.docker import pin_image, require_engine
            from ..runtimes.pulls import PullPolicy
            from ..runtimes.pullsecrets import credentials_for

            require_engine()
            if not image:
                raise SpecError(f"pipeline {spec.name}: the docker runtime needs transform.image: name one")
            wanted = spec.transform.image_pull_secrets
            ours = built_here(image, spec_path)
            credentials = None if ours else credentials_for(self.store.root, wanted, parse_reference(image).registry)
            if dry:
                return Placement(choice.runtime, choice.why, None, None)
            pin = pin_image(
                image,
                PullPolicy(self.store.config.get("images.pull")),
                built_here=ours,
                credentials=credentials,
                tried=wanted,
                listener=events.pulls,
                notice=events.notice,
            )
            return Placement(choice.runtime, choice.why, None, pin)
        if spec.transform.user:  # a name this host does not know is refused now, not at the first job
            from ..runtimes.local import command_user

            command_user(spec.transform.user)
        if not image:
            return Placement(choice.runtime, choice.why, None, None)
        found = images.available(images.search_path(spec_path)).get(images.canonical_tag(image))
        if found is not None:
            return Placement(choice.runtime, choice.why, str(found.path), None)
        if built_here(image, spec_path):  # a dataver/ name no images/ folder has: a typo, most likely
            images.resolve(image, images.search_path(spec_path))  # the NotFound naming what is known
        if self.store.config.get("images.local_unknown") == "refuse":
            known = ", ".join(sorted(images.available(images.search_path(spec_path)))) or "none"
            raise NotFound(
                f"image {image} is not one of the images the local runtime knows ({known}), and images.local_unknown "
                "is refuse: use `--runtime docker`, or `dataver config set images.local_unknown run` to run it with "
                "this host's tools"
            )
        unchanged = (
            before is not None
            and before.runtime == "local"
            and json.loads(before.spec)["transform"].get("image") == image
        )
        if events.notice is not None and not unchanged:
            events.notice(
                f"note: image {image} is not used by the local runtime: the command runs with this host's tools; "
                "`--runtime docker` runs it in the image"
            )
        return Placement(choice.runtime, choice.why, None, None)

    def _check_egress(self, spec: PipelineSpec) -> None:
        """An egress into a store or a remote is refused before anything is recorded (and again
        at every egress: a folder may become a store later)."""
        if spec.egress is not None:
            check_target(spec.egress.url, self.store)

    def create(
        self,
        spec: PipelineSpec,
        runtime: str = "auto",
        spec_path: Path | None = None,
        global_id: str = "",
        events: ImageEvents = QUIET,
        placement: Placement | None = None,
    ) -> None:
        """`global_id`: the commit set (a transaction's) the new pipeline is part of, if any.
        The image is pulled (if it must be) before anything is recorded, outside the write;
        `placement`: already done so (a transaction places its pipelines before it writes)."""
        check_runtime(runtime)
        self._check_egress(spec)
        if placement is None:
            with self.store.db.read():
                self._check_new(spec)
                self._check_inputs(spec, early=True)
            placement = self.place(spec, runtime, spec_path, events)
        with self.store.db.write():
            self._check_new(spec)
            self._make_cron_repos(spec)
            self._check_inputs(spec)
            self.repos.create_repo(spec.name, f"output of pipeline {spec.name}")
            self.records.insert_pipeline(spec, placement, global_id)
            self.store.db.after_commit(self._notify)

    def _check_new(self, spec: PipelineSpec) -> None:
        if self.records.exists(spec.name):
            raise AlreadyExists(f"pipeline {spec.name} already exists: use `dataver update-pipeline -f SPEC`")
        if self.repos.repo_exists(spec.name):
            raise AlreadyExists(
                f"a repo named {spec.name} already exists, and a pipeline's output repo takes its name: "
                "rename the pipeline or delete the repo"
            )

    def update(
        self,
        spec: PipelineSpec,
        *,
        runtime: str | None = None,
        spec_path: Path | None = None,
        reprocess: bool = False,
        global_id: str = "",
        events: ImageEvents = QUIET,
        placement: Placement | None = None,
    ) -> int:
        """With no `runtime`, the pipeline keeps the one it runs on (`auto` chose it once)."""
        self._check_egress(spec)
        if placement is None:
            with self.store.db.read():
                self.records.pipeline(spec.name)  # (NotFound, naming it, before anything is pulled)
                self._check_inputs(spec, early=True)
            placement = self.place(spec, runtime, spec_path, events)
        with self.store.db.write():
            row = self.records.pipeline(spec.name)
            self._make_cron_repos(spec, PipelineSpec.model_validate_json(row.spec))
            self._check_inputs(spec)
            self.store.db.after_commit(self._notify)
            return self.records.update_pipeline(spec, placement, reprocess, global_id)

    def delete(self, name: str, *, keep_repo: bool = False) -> None:
        with self.store.db.write():
            self.records.pipeline(name)
            readers = self.records.readers_of(name)
            if readers and not keep_repo:
                raise Conflict(
                    f"pipeline(s) {', '.join(readers)} read the output of {name}: delete them first, "
                    "or use --keep-repo to keep the repo they read"
                )
            crons = PipelineSpec.model_validate_json(self.records.pipeline(name).spec).cron_inputs()
            self.records.delete_pipeline(name)
            if not keep_repo:
                self.repos.delete_repo(name)
                for cron in crons:  # made with the pipeline, gone with it (as in Pachyderm)
                    if self.repos.repo_exists(cron.as_pfs.full_repo) and not self.records.readers_of(
                        cron.as_pfs.full_repo
                    ):
                        self.repos.delete_repo(cron.as_pfs.full_repo)

    def set_state(self, name: str, state: str) -> None:
        with self.store.db.write():
            self.records.set_state(name, state)
            self.store.db.after_commit(self._notify)

    def _notify(self) -> None:
        self.store.notify("pipelines")

    def spouts(self) -> list[str]:
        return [row.name for row in self.records.pipelines() if row.is_spout]

    def edges(self) -> list[tuple[str, str, str]]:
        """(input repo, pipeline, output repo) for every pipeline input."""
        return [(i.repo, row.name, row.name) for row in self.records.pipelines() for i in self.records.inputs(row.name)]


def _node(name: str) -> str:
    """A Mermaid node id for a repo or pipeline name: a project's `/` cannot be in one, so it
    becomes `-1` (and `-` becomes `-0`, so that no two names meet)."""
    return name.replace("-", "-0").replace("/", "-1")


def render_dag(edges: list[tuple[str, str, str]], repos: list[str], fmt: str, spouts: tuple[str, ...] = ()) -> str:
    """The graph of repos and pipelines as text, Mermaid or Graphviz dot; `spouts` are pipelines
    with no input (their data comes from outside)."""
    pipelines = sorted({p for _, p, _ in edges} | set(spouts))
    if fmt == "mermaid":
        lines = ["graph LR"]
        lines += [f"  repo_{_node(r)}[({r})]" for r in repos]
        lines += [f"  pipe_{_node(p)}{{{{{p}}}}}" for p in pipelines]
        lines += [f"  repo_{_node(src)} --> pipe_{_node(p)}" for src, p, _ in edges]
        lines += [f"  pipe_{_node(p)} --> repo_{_node(p)}" for p in pipelines]
        return "\n".join(lines)
    if fmt == "dot":
        lines = ["digraph dataver {", "  rankdir=LR;"]
        lines += [f'  "repo:{r}" [label="{r}", shape=cylinder];' for r in repos]
        lines += [f'  "pipeline:{p}" [label="{p}", shape=box];' for p in pipelines]
        lines += [f'  "repo:{src}" -> "pipeline:{p}";' for src, p, _ in edges]
        lines += [f'  "pipeline:{p}" -> "repo:{p}";' for p in pipelines]
        return "\n".join([*lines, "}"])
    inputs: dict[str, list[str]] = {}
    for src, p, _ in edges:
        inputs.setdefault(p, []).append(src)
    lines = [f"{' + '.join(inputs.get(p, [])) or '(spout)'} -> [{p}] -> {p}" for p in pipelines]
    lonely = [r for r in repos if r not in pipelines and not any(r in srcs for srcs in inputs.values())]
    return "\n".join(lines + [f"{r} (no pipeline reads it)" for r in lonely])
