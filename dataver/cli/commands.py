"""The index of the `dataver` commands: each one's module and one-line summary, so that the CLI
builds only the command it runs.

Building typer's click objects for all ~90 commands took longer than most commands' own work,
and importing every command module pulled in much of the package. `dataver --help` lists the
summaries from here; `dataver CMD ...` imports CMD's module and builds that command alone.
tests/test_cli_startup.py checks this table against the modules (a new command, or a changed
first sentence of a docstring, fails it, naming the entry to write).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

MODULES: dict[str, tuple[tuple[str, str], ...]] = {
    "project": (("app", ""),),
    "repo": (("app", ""),),
    "branch": (("app", ""),),
    "commit": (("app", ""),),
    "file": (("app", ""),),
    "mount": (("app", ""),),
    "pipeline": (("app", ""),),
    "service": (("app", ""),),
    "job": (("app", ""),),
    "console": (("app", ""),),
    "api": (("app", ""),),
    "admin": (("app", ""), ("admin_app", "admin")),
    "remote": (("app", ""), ("remote_app", "remote")),
    "secret": (("app", ""),),
    "transaction": (("app", ""),),
    "daemon": (("app", "daemon"),),
    "api_token": (("app", "api-token"),),
    "config": (("app", "config"), ("init_app", "")),
}
"""Each command module's typer apps, as (attribute, group name): '' adds the app's commands at the
top level (`list-file`), a name makes them a group (`daemon start`)."""

COMMANDS: dict[str, tuple[str, str]] = {
    "create-project": ("project", "Create a project to hold repos and pipelines (`default` always exists)."),
    "list-project": (
        "project",
        "List projects by name; ACTIVE marks the current one (--project, else the project setting).",
    ),
    "inspect-project": ("project", "Show one project: description, creation time."),
    "update-project": ("project", "Change a project's description (pachctl's `update project`)."),
    "delete-project": (
        "project",
        "Delete an empty project (with --force, its pipelines and repos first; `dataver gc` frees their objects).",
    ),
    "create-repo": ("repo", "Create a repo to hold versioned data."),
    "list-repo": ("repo", "List the current project's repos (every project's with -A), newest first."),
    "inspect-repo": ("repo", "Show one repo: description, creation time, size of master, branches."),
    "delete-repo": ("repo", "Delete a repo with its branches and commits (objects are freed by `dataver gc`)."),
    "delete-all": ("repo", "Delete every pipeline, job and repo of the store (objects are freed by `dataver gc`)."),
    "create-branch": ("branch", "Create a branch, or move it to --head."),
    "list-branch": ("branch", "List the branches of a repo with their head commits."),
    "inspect-branch": (
        "branch",
        "Show a branch: its head, and for a pipeline's output branch what it is computed from.",
    ),
    "delete-branch": ("branch", "Delete a branch (its commits stay, reachable by id)."),
    "start-commit": ("commit", "Open a commit on a branch; put-file to the branch writes into it until finish-commit."),
    "finish-commit": ("commit", "Finish an open commit, making its files visible to readers of the branch."),
    "delete-commit": ("commit", "Delete an open commit; its branch goes back to the parent."),
    "squash-commit": ("commit", "Fold a commit into its children: they keep every file, it leaves the history."),
    "list-commit": (
        "commit",
        "List commits, newest first (a branch's history, the whole repo, or every repo's); with a global ID, "
        "the commits of that commit set (one change and all it caused), the change first.",
    ),
    "inspect-commit": ("commit", "Show a commit: id, parent, branch, times, size and provenance."),
    "subscribe-commit": (
        "commit",
        "Print each commit of a branch as it lands (the existing ones first, unless --new), until Ctrl-C.",
    ),
    "put-file": (
        "file",
        "Put files, directories or URLs into a branch (its own commit) or into the branch's open commit.",
    ),
    "get-file": ("file", "Print a file's bytes (verified against its hash), or save it or a directory with -o."),
    "list-file": ("file", "List a directory of a commit (the root by default), or with --history a file's versions."),
    "find-commits": ("file", "List the commits, newest first, that added, modified or deleted a path."),
    "glob-file": ("file", "List the files and directories a glob pattern matches (as a pipeline input would)."),
    "inspect-file": ("file", "Show a file's type, size, content hash and the commit that last changed it."),
    "diff-file": ("file", "Files added, modified and deleted between two commits (default: a commit and its parent)."),
    "delete-file": ("file", "Delete a file (or a directory with -r) in a new commit or the branch's open commit."),
    "copy-file": ("file", "Copy a file or directory between repos or branches without copying bytes."),
    "mount": ("mount", "Show repos read-only as folders, DIR/REPO, each at the commit its reference names now."),
    "unmount": (
        "mount",
        "End a mount (the `dataver mount` serving it then exits), or with --all every mount of this store.",
    ),
    "create-pipeline": (
        "pipeline",
        "Create a pipeline and its output repo; runs a job at once if its inputs have data.",
    ),
    "update-pipeline": ("pipeline", "Record a new version of a pipeline's spec and run it over the current inputs."),
    "edit-pipeline": (
        "pipeline",
        "Edit a pipeline's spec in $EDITOR (else $VISUAL, else vi), then record it as a new version.",
    ),
    "list-pipeline": (
        "pipeline",
        "List the current project's pipelines (every project's with -A): version, inputs, state, last job's state.",
    ),
    "inspect-pipeline": (
        "pipeline",
        "Show a pipeline: version, state, runtime, inputs and its spec (every version with --history).",
    ),
    "delete-pipeline": ("pipeline", "Delete a pipeline, its jobs and (unless --keep-repo) its output repo."),
    "stop-pipeline": ("pipeline", "Pause a pipeline: new commits do not start its jobs until start-pipeline."),
    "start-pipeline": ("pipeline", "Resume a paused pipeline (and catch up with its inputs)."),
    "rerun-pipeline": (
        "pipeline",
        "Run a job over the pipeline's current inputs now, even if it is up to date (after a job failed for a"
        " reason outside its datums, such as a cluster that went away): datums that succeeded before are "
        "skipped.",
    ),
    "run-cron": (
        "pipeline",
        "Tick every cron input of a pipeline now, due or not (the daemon makes the scheduled ticks); the "
        "pipeline's job then runs, here unless a daemon runs it: exit 1 if it fails.",
    ),
    "dag": ("pipeline", "The graph of repos and pipelines."),
    "build-images": (
        "pipeline",
        "Build every images/*/Dockerfile with the tags the pipelines use (for --runtime docker).",
    ),
    "build-image": ("pipeline", "Build one image folder (and the base first, if it is missing)."),
    "serve": (
        "service",
        "Serve a service pipeline in the foreground, following its inputs (Ctrl-C stops it). The daemon "
        "serves every service by itself: this is for a store without one.",
    ),
    "list-service": (
        "service",
        "List service pipelines: URL, state, the input commits answering, requests and errors.",
    ),
    "list-job": (
        "job",
        "List jobs, newest first (PROGRESS: processed + skipped / total datums; + recovered and + N failed "
        "before the / if any); with a global ID, the jobs one change caused.",
    ),
    "inspect-job": ("job", "Show a job: inputs, output commit, datums, timing, runtime and why it failed."),
    "list-datum": ("job", "List a job's datums: id, input files, state and time; or, with -f SPEC, a dry run's."),
    "inspect-datum": (
        "job",
        "Show one datum of a job: state, worker, time, exit code, attempts, reason and input files.",
    ),
    "wait-job": (
        "job",
        "Wait until a job is done (JOB, or PIPELINE@ID), or with a global id every job of that change, "
        "downstream ones included; exit 1 if one did not succeed.",
    ),
    "stop-job": (
        "job",
        "Stop a running job: its datums are killed, no output commit is made, and it is not run again until "
        "its inputs or spec change (`rerun-pipeline` runs it now).",
    ),
    "delete-job": (
        "job",
        "Stop a job if it runs, then forget it (a job whose output commit landed is kept: its files name it "
        "as their provenance).",
    ),
    "restart-datum": (
        "job",
        "Kill running datums of a job on this host so that they are tried again (as another attempt).",
    ),
    "logs": ("job", "Print what the command wrote to stdout and stderr, datum by datum."),
    "wait-commit": ("job", "Wait until every commit downstream of this one is finished, and list them."),
    "provenance": (
        "job",
        "Where a file came from: the job and datum that wrote it, and their inputs, back to the source.",
    ),
    "console": (
        "console",
        "Open the web console: the DAG, repos, files, pipelines, jobs, logs and provenance in a browser, "
        "read-only. Prints the URL (with the token, when bound beyond 127.0.0.1); Ctrl-C stops it.",
    ),
    "serve-api": (
        "api",
        "Serve Pachyderm's 2.x gRPC API (pachd's services) over the store, in the foreground, running the jobs "
        "commits trigger; Ctrl-C stops it.",
    ),
    "fsck": (
        "admin",
        "Check the metadata database, rehash every object, check every reference; exit 1 if anything is wrong.",
    ),
    "gc": ("admin", "Remove objects that no commit references (and leftovers of interrupted writes)."),
    "status": (
        "admin",
        "The whole store on one screen, from any host using it: its metadata and objects, the schema version,"
        " where datums run (a Dask cluster's workers), the daemons serving it (alive, or stale: killed or cut"
        " off) and the leases held. `daemon status` answers for this root alone.",
    ),
    "push": ("remote", "Send repos with their history and provenance to a remote; only what it lacks is sent."),
    "pull": ("remote", "Fetch new commits of repos from a remote and fast-forward this store's branches."),
    "clone": ("remote", "Make a new store from a remote, with every repo; the remote becomes its `origin`."),
    "create-secret": ("secret", "Create or replace a secret (kept on this host, readable by you only)."),
    "list-secret": ("secret", "List secrets with their key names (never their values)."),
    "delete-secret": ("secret", "Delete a secret (a pipeline that reads it fails its next job, naming it)."),
    "start-transaction": (
        "transaction",
        "Start a transaction: create/delete repo, start/finish/delete commit, create/delete branch and "
        "create/update pipeline are queued in it until finish-transaction applies them as one change.",
    ),
    "finish-transaction": (
        "transaction",
        "Apply a transaction's commands together (then run the jobs they trigger, one per pipeline).",
    ),
    "stop-transaction": (
        "transaction",
        "Stop queueing commands into the active transaction; it stays, to be resumed or finished.",
    ),
    "resume-transaction": ("transaction", "Make a stopped transaction the active one again."),
    "delete-transaction": ("transaction", "Drop a transaction and its queued commands, applying none of them."),
    "inspect-transaction": (
        "transaction",
        "Show a transaction: when it started, whether it is active, and its queued commands.",
    ),
    "list-transaction": (
        "transaction",
        "List the transactions not finished or deleted, oldest first (* marks the active one).",
    ),
    "daemon": ("daemon", "The watcher: runs jobs as commits land (start, stop, status, logs, run)."),
    "api-token": ("api_token", "Tokens that callers of serve-api beyond loopback must present (create, list, revoke)."),
    "admin": ("admin", "What the store's administrator runs: migrate (upgrade the store's schema)."),
    "remote": ("remote", "Name the stores, folders and buckets to push to and pull from."),
    "config": (
        "config",
        "Settings: the store's own (every host using it sees them), then this host's files (get, set, unset, list).",
    ),
    "init": ("config", "Make a store here whose metadata and objects may live on shared servers, or join one."),
}
"""Every top-level command in the order `dataver --help` lists them: (its module, its summary:
the first paragraph of its help, on one line)."""


def build(name: str) -> Any:
    """The click command of one indexed command (`list-file`, or the group `daemon`), alone,
    finished as the root finishes its own: plain help with an example, completion of names,
    text checks."""
    import importlib

    import typer

    from . import completion, helptext, text

    source = importlib.import_module(f".{COMMANDS[name][0]}", __package__)
    # The root's settings, which typer hands down to the commands it builds under it.
    holder = typer.Typer(rich_markup_mode=None)
    for attribute, group in MODULES[COMMANDS[name][0]]:
        app = getattr(source, attribute)
        if group == name:
            holder.add_typer(app, name=group)
        elif not group:
            holder.registered_commands += [
                info
                for info in app.registered_commands
                if (info.name or typer.main.get_command_name(info.callback.__name__)) == name
            ]
    built = typer.main.get_group(holder)
    helptext.finish(built)
    completion.attach(built)
    text.require_text(built)
    return built.commands[name]


class Commands(Mapping[str, Any]):
    """A group's commands by name, as click and typer look them up: an indexed one is built on
    first lookup; listing their names builds nothing."""

    def __init__(self, built: dict[str, Any]) -> None:
        self._built = dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built and name in COMMANDS:
            self._built[name] = build(name)
        return self._built[name]

    def __contains__(self, name: object) -> bool:
        return name in self._built or name in COMMANDS

    def __iter__(self) -> Iterator[str]:
        yield from (name for name in self._built if name not in COMMANDS)
        yield from COMMANDS

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def summary(self, name: str) -> str:
        """The one-line help `--help` lists, without building the command."""
        if name in self._built or name not in COMMANDS:
            return self[name].get_short_help_str()
        return COMMANDS[name][1]
