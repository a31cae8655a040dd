"""Help that reads like a man page: plain placeholders, whole summaries, an example per command.

typer's own rendering shows `{address}...` and `<str>` and cuts each summary at 45 characters
with "...". Rather than repeat a metavar on every parameter of every command, the built click
command tree is finished here once: options get their name as placeholder (FILE, MESSAGE),
arguments the words their help starts with (REPO BRANCH [PATH]), every command its first
sentence as summary and the example below.
"""

from __future__ import annotations

import types
from typing import Any

EXAMPLES = {
    "create-project": "dataver create-project vision --description 'image models'",
    "list-project": "dataver list-project --json",
    "inspect-project": "dataver inspect-project vision",
    "update-project": "dataver update-project vision --description 'images and their edges'",
    "delete-project": "dataver delete-project vision --force",
    "create-repo": "dataver create-repo training --description 'iris data'",
    "list-repo": "dataver list-repo --json",
    "inspect-repo": "dataver inspect-repo training",
    "delete-repo": "dataver delete-repo scratch",
    "delete-all": "dataver delete-all --yes",
    "create-branch": "dataver create-branch training staging --head master",
    "list-branch": "dataver list-branch training",
    "delete-branch": "dataver delete-branch training staging",
    "inspect-branch": "dataver inspect-branch model@master",
    "start-commit": "dataver start-commit training master -m 'two files at once'",
    "finish-commit": "dataver finish-commit training master",
    "delete-commit": "dataver delete-commit training master",
    "list-commit": "dataver list-commit training@master -n 5",
    "inspect-commit": "dataver inspect-commit training master^",
    "subscribe-commit": "dataver subscribe-commit training@master --new",
    "squash-commit": "dataver squash-commit training@master^",
    "put-file": "dataver put-file training master data/ -f iris.csv",
    "mount": "dataver mount /mnt/pfs training@master model",
    "unmount": "dataver unmount /mnt/pfs",
    "get-file": "dataver get-file training@master:/iris.csv -o copy.csv",
    "list-file": "dataver list-file training master data",
    "glob-file": "dataver glob-file training master '/data/*.csv'",
    "find-commits": "dataver find-commits training@master:/iris.csv",
    "inspect-file": "dataver inspect-file inference master 2 --provenance",
    "diff-file": "dataver diff-file training@master training@master^",
    "delete-file": "dataver delete-file training master data -r",
    "copy-file": "dataver copy-file training@master:/iris.csv backup@master:/iris.csv",
    "create-pipeline": "dataver create-pipeline -f pipelines/train.json",
    "update-pipeline": "dataver update-pipeline -f pipelines/train.json --reprocess",
    "edit-pipeline": "dataver edit-pipeline model --reprocess",
    "list-pipeline": "dataver list-pipeline",
    "inspect-pipeline": "dataver inspect-pipeline model --history",
    "serve": "dataver serve serve --address 127.0.0.1",
    "console": "dataver console --address 127.0.0.1:8800",
    "list-service": "dataver list-service --json",
    "delete-pipeline": "dataver delete-pipeline inference",
    "stop-pipeline": "dataver stop-pipeline model",
    "start-pipeline": "dataver start-pipeline model",
    "rerun-pipeline": "dataver rerun-pipeline model",
    "run-cron": "dataver run-cron scraper",
    "dag": "dataver dag --mermaid",
    "build-images": "dataver build-images --offline",
    "build-image": "dataver build-image images/pyinfer",
    "list-job": "dataver list-job -p model",
    "inspect-job": "dataver inspect-job 94e756a6b3d7",
    "list-datum": "dataver list-datum 94e756a6b3d7",
    "inspect-datum": "dataver inspect-datum 94e756a6b3d7 9f76ffa4fb54",
    "wait-job": "dataver wait-job 94e756a6b3d7 --timeout 600",
    "stop-job": "dataver stop-job 94e756a6b3d7",
    "delete-job": "dataver delete-job 94e756a6b3d7",
    "restart-datum": "dataver restart-datum 94e756a6b3d7 /iris.csv",
    "logs": "dataver logs -p model",
    "wait-commit": "dataver wait-commit training@master --timeout 600",
    "provenance": "dataver provenance inference master 2",
    "fsck": "dataver fsck --repair",
    "gc": "dataver gc --dry-run",
    "version": "dataver version",
    "init": "dataver init --root ~/team --metadata postgresql://dv@db/dataver --objects s3://ml-data/dataver",
    "admin": "dataver --root ~/dataver-admin admin migrate",
    "daemon": "dataver daemon start",
    "daemon run": "dataver daemon run",
    "daemon start": "dataver daemon start --api --api-address 0.0.0.0:30650",
    "serve-api": "dataver serve-api --address 0.0.0.0:30650 --tls-cert server.crt --tls-key server.key",
    "api-token": "dataver api-token create --name ci",
    "api-token create": "dataver api-token create --name ci",
    "api-token list": "dataver api-token list --json",
    "api-token revoke": "dataver api-token revoke ci",
    "daemon stop": "dataver daemon stop --now",
    "daemon status": "dataver daemon status --json",
    "daemon logs": "dataver daemon logs -n 50",
    "config": "dataver config set runtime docker",
    "config get": "dataver config get runtime",
    "config set": "dataver config set daemon.log_max_bytes 1000000 --user",
    "config unset": "dataver config unset runtime",
    "config list": "dataver config list --json",
    "create-secret": "dataver create-secret -f db-secret.json",
    "list-secret": "dataver list-secret --json",
    "delete-secret": "dataver delete-secret db",
    "remote": "dataver remote add origin s3://ml-data/dataver",
    "remote add": "dataver remote add origin s3://ml-data/dataver",
    "remote list": "dataver remote list --json",
    "remote remove": "dataver remote remove origin",
    "push": "dataver push origin training model@master",
    "pull": "dataver pull origin training@master",
    "clone": "dataver clone s3://ml-data/dataver --root ~/copy",
    "start-transaction": "dataver start-transaction",
    "finish-transaction": "dataver finish-transaction",
    "stop-transaction": "dataver stop-transaction",
    "resume-transaction": "dataver resume-transaction 854e85036e5d4542805ca73a39200bf8",
    "delete-transaction": "dataver delete-transaction",
    "inspect-transaction": "dataver inspect-transaction --json",
    "list-transaction": "dataver list-transaction",
}


def finish(command: Any, path: str = "") -> None:
    """Give every command under `command` (a click group) its placeholders, summary and example."""
    if not path:
        _placeholders(command)
    for name, sub in getattr(command, "commands", {}).items():
        key = f"{path} {name}".strip()
        _placeholders(sub)
        help_text = (sub.help or "").strip()
        sub.short_help = help_text.split("\n\n")[0].replace("\n", " ").strip()
        if key in EXAMPLES and "Example:" not in help_text:
            sub.help = f"{help_text}\n\nExample: {EXAMPLES[key]}"
        finish(sub, key)


def _placeholders(command: Any) -> None:
    for param in command.params:
        if param.param_type_name == "option" and not param.is_flag and not param.metavar:
            long = next((o for o in param.opts if o.startswith("--")), param.opts[0])
            param.metavar = long.lstrip("-").upper().replace("-", "_")
        elif param.param_type_name == "argument":
            if not param.metavar:  # one given where the help's first words would not read as usage
                words = []
                for word in (getattr(param, "help", "") or "").replace(", ", " ").split():
                    if any(c.islower() for c in word):
                        break
                    words.append(word.removesuffix(":"))
                param.metavar = " ".join(words) or (param.name or "ARG").upper()
            if not param.required and not param.metavar.startswith("["):
                param.metavar = f"[{param.metavar}]"
            # typer would show a required argument as {METAVAR} in the usage line: show it plainly
            param.make_metavar = types.MethodType(lambda self, *args, **kwargs: self.metavar, param)
