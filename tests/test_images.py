"""Image references, registry credentials and the local runtime's unknown images: what a user
sees without a registry (the pulls themselves are in tests/e2e/test_registry.py)."""

from __future__ import annotations

import base64
import json

import pytest
from helpers import pfs, spec

from dataver.errors import InvalidArgument
from dataver.runtimes.pullsecrets import parse_dockerconfig
from dataver.runtimes.references import parse_reference


@pytest.mark.parametrize(
    ("written", "registry", "path", "tag", "name"),
    [
        ("python:3.11-slim", "docker.io", "library/python", "3.11-slim", "python"),
        ("pachyderm/opencv:0.0.1", "docker.io", "pachyderm/opencv", "0.0.1", "pachyderm/opencv"),
        ("ghcr.io/team/tool:2.3", "ghcr.io", "team/tool", "2.3", "ghcr.io/team/tool"),
        ("127.0.0.1:5000/team/tool", "127.0.0.1:5000", "team/tool", "latest", "127.0.0.1:5000/team/tool"),
        ("localhost/x:1", "localhost", "x", "1", "localhost/x"),
        ("docker.io/library/python", "docker.io", "library/python", "latest", "python"),
    ],
)
def test_references_are_read_as_docker_reads_them(written, registry, path, tag, name):
    ref = parse_reference(written)
    assert (ref.registry, ref.path, ref.tag, ref.name) == (registry, path, tag, name)


def test_a_digest_pins_a_reference():
    digest = "sha256:" + "ab" * 32
    ref = parse_reference(f"127.0.0.1:5000/team/tool@{digest}")
    assert ref.pinned and ref.pull_tag == digest and ref.tag == ""


@pytest.mark.parametrize(
    "bad", ["UPPER/Case::x", "a:b:c", "team//tool", "tool@sha256:12", "-tool", "x:" + "t" * 129, "tool:vé"]
)
def test_a_bad_reference_is_refused_naming_it(bad):
    with pytest.raises(InvalidArgument, match=r"is not a valid image reference: "):
        parse_reference(bad)


def test_a_bad_reference_in_a_spec_is_one_line_and_nothing_is_made(cli, tmp_path):
    cli("create-repo", "in")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("p", "true", pfs("in"), transform={"image": "UPPER/Case::x"})))
    made = cli("create-pipeline", "-f", str(path))
    assert made.code == 2 and "pipeline p: transform.image 'UPPER/Case::x' is not a valid image reference" in made.err
    assert len(made.err.strip().splitlines()) == 1 and "Traceback" not in made.err
    assert "p" not in cli("list-repo").out.split()


def _secret(name: str, config: object, kind: str = "kubernetes.io/dockerconfigjson") -> str:
    raw = config if isinstance(config, str) else json.dumps(config)
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name},
            "type": kind,
            "data": {".dockerconfigjson": base64.b64encode(raw.encode()).decode()},
        }
    )


def test_dockerconfigjson_secrets_are_read_as_kubectl_writes_them():
    """`kubectl create secret docker-registry` writes username, password and auth; a hand-written
    one may give only auth; Docker Hub's key is its v1 URL."""
    both = base64.b64encode(b"ci:s3cret").decode()
    found = parse_dockerconfig(
        json.dumps(
            {
                "auths": {
                    "127.0.0.1:5000": {"username": "ci", "password": "s3cret", "email": "ci@x", "auth": both},
                    "https://ghcr.io": {"auth": both},
                    "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
                    "myregistry.azurecr.io": {"identitytoken": "refresh-token"},
                },
                "credsStore": "desktop",  # a whole ~/.docker/config.json: its other keys are passed over
                "HttpHeaders": {"User-Agent": "x"},
            }
        ),
        "regcred",
    )
    assert found == {
        "127.0.0.1:5000": ("ci", "s3cret", ""),
        "ghcr.io": ("ci", "s3cret", ""),
        "docker.io": ("hub", "pw", ""),
        "myregistry.azurecr.io": ("", "", "refresh-token"),
    }


@pytest.mark.parametrize(
    ("config", "said"),
    [
        ("not json", "is not a Docker config"),
        ({"auth": {}}, "is not a Docker config"),
        ({"auths": {"r:5000": {"username": "u"}}}, "has no username and password"),
        ({"auths": {"r:5000": {"auth": "!!"}}}, "is not base64"),
        ({"auths": {"r:5000": {"username": 1, "password": "p"}}}, "is not a Docker config"),
    ],
)
def test_a_malformed_registry_secret_is_refused_when_created(cli, tmp_path, config, said):
    path = tmp_path / "regcred.json"
    path.write_text(_secret("regcred", config))
    made = cli("create-secret", "-f", str(path))
    assert made.code == 2 and said in made.err and len(made.err.strip().splitlines()) == 1
    assert "regcred" not in cli("list-secret").out


def test_a_registry_secret_without_its_key_is_refused(cli, tmp_path):
    path = tmp_path / "regcred.json"
    path.write_text(
        json.dumps(
            {
                "kind": "Secret",
                "metadata": {"name": "regcred"},
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": {"config": "{}"},
            }
        )
    )
    made = cli("create-secret", "-f", str(path))
    assert made.code == 2 and "holds its Docker config under data..dockerconfigjson" in made.err


def test_the_local_runtime_runs_an_unknown_image_with_the_host_tools_saying_so_once(cli, tmp_path):
    """A Pachyderm spec naming `python:3.11-slim` runs on the local runtime with this host's
    tools: one note at create, none at the job; the job records that the image was not used."""
    cli("create-repo", "in")
    cli("put-file", "in", "master", "a.txt", input="hello\n")
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            spec(
                "up", "tr a-z A-Z < /pfs/in/a.txt > /pfs/out/a.txt", pfs("in"), transform={"image": "python:3.11-slim"}
            )
        )
    )
    made = cli("create-pipeline", "-f", str(path), "--runtime", "local")
    assert made.code == 0, made.err
    notes = [line for line in made.err.splitlines() if "is not used by the local runtime" in line]
    assert notes == [
        "note: image python:3.11-slim is not used by the local runtime: the command runs with this host's tools; "
        "`--runtime docker` runs it in the image"
    ]
    assert cli("get-file", "up", "master", "a.txt").out == "HELLO\n"
    [job] = json.loads(cli("list-job", "--json").out)
    assert job["image"] == "python:3.11-slim (not used: the local runtime ran this host's tools)"
    again = cli("put-file", "in", "master", "b.txt", input="x\n")
    assert "is not used by the local runtime" not in again.err
    updated = cli("update-pipeline", "-f", str(path))
    assert "is not used by the local runtime" not in updated.err  # said once per pipeline


def test_images_local_unknown_refuse_refuses_such_a_spec(cli, tmp_path):
    cli("create-repo", "in")
    cli("config", "set", "images.local_unknown", "refuse")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec("up", "true", pfs("in"), transform={"image": "python:3.11-slim"})))
    made = cli("create-pipeline", "-f", str(path), "--runtime", "local")
    assert made.code == 1 and "image python:3.11-slim is not one of the images the local runtime knows" in made.err
    assert "images.local_unknown is refuse" in made.err
    assert "up" not in cli("list-pipeline").out


def test_auto_keeps_images_folder_images_on_the_local_runtime_and_says_why(cli):
    """An images/ image runs on the local runtime under auto (no build needed), whether or not
    an engine answers, and inspect-pipeline says why."""
    from helpers import PROJECT

    cli("create-repo", "training")
    cli("create-pipeline", "-f", str(PROJECT / "pipelines/train.json"))
    shown = cli("inspect-pipeline", "model").out
    assert (
        "Runtime: local (chosen by auto: dataver/pytrain-svm:latest is one of images/'s, which it runs with no build)"
        in shown
    )


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("manifest for r:5000/team/tool:9 not found: manifest unknown: manifest unknown", "not found in registry"),
        (
            "pull access denied for team/tool, repository does not exist or may require 'docker login': denied: "
            "requested access to the resource is denied",
            "not found in registry",  # Docker Hub says both at once: without credentials, a name to check first
        ),
        ('Get "http://r:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused', "cannot be reached"),
        ('Get "https://r/v2/": dial tcp: lookup r on 10.0.0.1:53: no such host', "cannot be reached"),
        ("unauthorized: authentication required", "says unauthorized, with no credentials"),
        ("write /var/lib/docker/tmp/x: no space left on device", "no space left on the Docker engine's disk"),
        ("something else entirely", "the pull failed: something else entirely"),
    ],
)
def test_a_registrys_answer_becomes_one_line_naming_the_image(said, expected):
    from dataver.runtimes.pulls import _failure

    error = str(_failure(parse_reference("r:5000/team/tool:9"), None, [], said))
    assert error.startswith("image r:5000/team/tool:9: ") and expected in error and "\n" not in error


def test_unauthorized_names_the_secret_tried_but_never_its_password():
    from dataver.runtimes.pulls import _failure
    from dataver.runtimes.pullsecrets import RegistryCredentials

    credentials = RegistryCredentials("regcred", "r:5000", "ci", "hunter2")
    error = str(_failure(parse_reference("r:5000/team/tool:9"), credentials, ["regcred"], "unauthorized: no"))
    assert "with the credentials of secret regcred (user ci)" in error and "hunter2" not in error


class _Terminal:
    """stderr as a terminal: what a user watching a pull sees."""

    def __init__(self) -> None:
        self.written = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.written += text

    def flush(self) -> None:
        pass


def test_a_pull_shows_layers_and_bytes_in_place_on_a_terminal_and_one_line_elsewhere(monkeypatch, capsys):
    from dataver.cli.progress import PullLine
    from dataver.runtimes.pulls import PullProgress

    steps = [
        PullProgress("python:3.11-slim", 3, 0, 0, 0, 0),
        PullProgress("python:3.11-slim", 3, 1, 1, 5 << 20, 20 << 20),
        PullProgress("python:3.11-slim", 3, 3, 1, 20 << 20, 20 << 20, done=True),
    ]
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    shown = PullLine()
    for step in steps:
        shown(step)
    assert "\rpulling python:3.11-slim: 1/3 layers, 5.0 MiB of 20.0 MiB" in terminal.written
    assert terminal.written.endswith(
        "\rpulled python:3.11-slim: 3 layers (1 already here), 20.0 MiB downloaded\x1b[K\n"
    )
    monkeypatch.undo()
    elsewhere = PullLine()
    for step in steps:
        elsewhere(step)
    assert capsys.readouterr().err == "pulled python:3.11-slim: 3 layers (1 already here), 20.0 MiB downloaded\n"
    PullLine()(PullProgress("python:3.11-slim", done=True))  # up to date: nothing came down, nothing said
    assert capsys.readouterr().err == ""
