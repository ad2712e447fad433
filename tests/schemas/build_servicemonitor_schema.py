"""Write servicemonitor-monitoring.coreos.com-v1.json, the schema the ServiceMonitor is checked against.

No PyPI package ships the prometheus-operator CRDs as JSON schema; cloudcoil-models-prometheus-operator
ships pydantic models generated from them. This script turns the ServiceMonitor model into a JSON
schema, made strict like the `-strict` Kubernetes schemas (no property the CRD does not define: the
API server would silently prune a misspelt field) and with `apiVersion` and `kind` required.
Run it once in a throwaway environment, not in the project's:

    python -m venv /tmp/cc && /tmp/cc/bin/pip install cloudcoil-models-prometheus-operator==0.80.1.0
    /tmp/cc/bin/python tests/schemas/build_servicemonitor_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "servicemonitor-monitoring.coreos.com-v1.json"
SOURCE = "cloudcoil-models-prometheus-operator"


def strict(node: Any) -> None:
    """Forbid undeclared properties in every object schema that declares some."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)


def main() -> None:
    from importlib.metadata import version

    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    schema = ServiceMonitor.model_json_schema(by_alias=True)
    strict(schema)
    schema["required"] = sorted({"apiVersion", "kind", *schema.get("required", [])})
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["description"] = (
        f"ServiceMonitor (monitoring.coreos.com/v1) from {SOURCE} {version(SOURCE)}, "
        "made strict by tests/schemas/build_servicemonitor_schema.py"
    )
    OUTPUT.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
