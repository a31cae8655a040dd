"""The pipeline spec's JSON Schema, generated from the models that validate specs, so editors
check a spec as it is typed (see the README). The checked-in copy is
docs/pipeline-spec.schema.json; a test keeps it current. Regenerate it with
`python -m dataver.pipelines.schema > docs/pipeline-spec.schema.json`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic.alias_generators import to_camel

from .spec import KUBERNETES_ONLY, PipelineSpec

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict[str, Any]:
    """The schema of a spec as users write it: snake_case or camelCase names, as dataver takes
    both, and `$schema` allowed, so a spec file can name this schema for its editor."""
    schema = PipelineSpec.model_json_schema(by_alias=False)
    sections = {
        "": schema,
        "transform": schema["$defs"]["Transform"],
        "parallelism_spec": schema["$defs"]["ParallelismSpec"],
        "resource_limits": schema["$defs"]["ResourceLimits"],
        "resource_requests": schema["$defs"]["ResourceLimits"],
    }
    for section, names in KUBERNETES_ONLY.items():
        for name in names:
            sections[section]["properties"][name] = {"description": "only meaningful on Kubernetes: accepted, ignored"}
    for model in [schema, *schema.get("$defs", {}).values()]:
        properties = model.get("properties", {})
        for name in list(properties):
            properties.setdefault(to_camel(name), properties[name])
    schema["properties"]["$schema"] = {"type": "string", "description": "this schema's location, for editors"}
    return {"$schema": SCHEMA_URL, "title": "dataver pipeline spec (Pachyderm's format)", **schema}


def render() -> str:
    return json.dumps(spec_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
