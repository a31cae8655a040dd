"""Projects, as Pachyderm 2.x has them: named groups of repos and pipelines.

A repo or pipeline of project P is named `P/name` below the Client; those of the `default`
project, which every store has, keep their bare names, so stores made before projects existed
read as they always did. A project holding repos cannot be deleted (a pipeline's output repo
is in its project, so that covers pipelines too).
"""

from __future__ import annotations

import time

from ..errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ..models import ProjectInfo
from ..names import DEFAULT_PROJECT, check_name, did_you_mean, split_qualified
from ..storage.store import Store
from .refs import ProjectRecord, RefsTable


def check_project(name: str) -> str:
    """A project name: the rules of a repo name."""
    return check_name("project", name)


def require_project(refs: RefsTable, name: str) -> ProjectRecord:
    """The project, or NotFound saying how to make it (or which one was meant)."""
    found = refs.project(name)
    if found is None:
        close = did_you_mean(name, [p.name for p in refs.projects()])
        advice = "see `dataver list-project`" if close else f"create it with `dataver create-project {name}`"
        raise NotFound(f"project {name} not found{close}: {advice}")
    return found


class ProjectStore:
    """The projects of one store."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.refs = RefsTable(store.db)

    def create_project(self, name: str, description: str = "") -> ProjectInfo:
        check_project(name)
        with self.db.write():
            if not self.refs.insert_project(ProjectRecord(name, description, time.time())):
                raise AlreadyExists(f"project {name} already exists: pick another name or use it as it is")
        return self.inspect_project(name)

    def list_projects(self) -> list[ProjectInfo]:
        with self.db.read():
            return [ProjectInfo(p.name, p.description, p.created) for p in self.refs.projects()]

    def inspect_project(self, name: str) -> ProjectInfo:
        check_project(name)
        with self.db.read():
            found = require_project(self.refs, name)
            return ProjectInfo(found.name, found.description, found.created)

    def update_project(self, name: str, description: str) -> ProjectInfo:
        """Pachyderm's `update project --description`: the one thing about a project that changes."""
        check_project(name)
        with self.db.write():
            require_project(self.refs, name)
            self.refs.set_project_description(name, description)
        return self.inspect_project(name)

    def repos_in(self, name: str) -> list[str]:
        return sorted(r for r in self.refs.repo_names() if split_qualified(r)[0] == name)

    def check_deletable(self, name: str) -> None:
        """A project that exists and is not `default` (which holds every repo named without one)."""
        check_project(name)
        if name == DEFAULT_PROJECT:
            raise InvalidArgument("the default project cannot be deleted: it holds every repo named without a project")
        self.inspect_project(name)

    def delete_project(self, name: str) -> None:
        """Refused while the project holds repos (its pipelines' output repos among them)."""
        with self.db.write():
            self.check_deletable(name)
            held = self.repos_in(name)
            if held:
                raise Conflict(
                    f"cannot delete project {name}: it still holds repo(s) {', '.join(held)}: delete them (and the "
                    f"pipelines writing them) first, or `dataver delete-project {name} --force` to delete them too"
                )
            self.refs.delete_project(name)
