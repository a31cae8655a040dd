"""Hostile input, fuzzed: whatever the text, dataver answers with a result or one of its own
errors (which the CLI turns into one line), never another exception, and the store stays sound."""

from __future__ import annotations

import json
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataver import Client
from dataver.errors import DataverError, InvalidArgument, SpecError
from dataver.globs import compile_glob
from dataver.names import NAME_RE, check_name, normalize_path, parse_commit_ref, parse_target
from dataver.pipelines.spec import parse_spec

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", "/", "..", "../x", "a/../b", "a\x00b", "master^", "master^^3~2", "@", "a@b:c", "[", "(*)", "**", "{a,"]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
GOOD_SPEC = {"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]}, "input": {"pfs": {"repo": "r", "glob": "/*"}}}


@FUZZ
@given(TEXT)
def test_names(text):
    try:
        assert NAME_RE.match(check_name("repo", text))
    except InvalidArgument:
        pass


@FUZZ
@given(TEXT)
def test_paths_never_escape_and_normalise_once(text):
    try:
        path = normalize_path(text)
    except InvalidArgument:
        return
    parts = path.split("/") if path else []
    assert not path.startswith("/") and "\x00" not in path
    assert ".." not in parts and "." not in parts and "" not in parts
    assert normalize_path(path) == path


@FUZZ
@given(TEXT, TEXT)
def test_globs_compile_or_refuse_and_never_crash_matching(pattern, path):
    try:
        glob = compile_glob(pattern)
    except InvalidArgument:
        return
    glob.match(path)


@FUZZ
@given(st.lists(TEXT, max_size=4))
def test_references_and_targets(words):
    for parse in (lambda: parse_target(words), lambda: [parse_commit_ref(w) for w in words]):
        try:
            parse()
        except InvalidArgument:
            pass


@FUZZ
@given(JSON)
def test_arbitrary_json_is_never_a_crash(value):
    try:
        parse_spec(json.dumps(value))
    except SpecError:
        pass


@FUZZ
@given(
    st.sampled_from(["pipeline", "transform", "input", "parallelism_spec", "datum_tries", "output_branch"]),
    JSON,
    st.booleans(),
)
def test_mutated_specs_are_refused_with_the_field_named(field, value, drop):
    mutated = dict(GOOD_SPEC)
    if drop:
        mutated.pop(field, None)
    else:
        mutated[field] = value
    try:
        parse_spec(json.dumps(mutated))
    except SpecError as exc:
        assert str(exc).startswith("spec: ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(TEXT, st.binary(max_size=64)), min_size=1, max_size=8))
def test_puts_at_fuzzed_paths_round_trip_or_are_refused(items):
    with tempfile.TemporaryDirectory() as folder, Client(folder) as client:
        client.create_repo("r")
        for path, data in items:
            try:
                client.put_file("r", "master", path, source=data)
            except DataverError:
                continue
            assert client.get_file("r", "master", path) == data
        assert client.fsck().ok
