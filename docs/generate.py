"""The generated reference pages: configuration traits (from the traits' own help) and the REST
API (from openapi.json). Run by conf.py at every build; the pages are committed (the README links
them) and CI fails when a build changes them, so they never drift from the code."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from jupyter_autoshutdown.app import AutoShutdown


def _cell(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split()).replace("|", "\\|")


def traits_page() -> str:
    lines = ["# Configuration traits", "",
             "Every setting of `c.AutoShutdown` (in any Jupyter config file, or "
             "`--AutoShutdown.<name>=<value>` on the command line), generated from the traits' help.",
             "", "| trait | unit | type | default | what it does |", "|---|---|---|---|---|"]
    for name, trait in sorted(AutoShutdown.class_traits(config=True).items()):
        if trait.this_class is not AutoShutdown and name not in AutoShutdown.__dict__:
            continue  # the ExtensionApp's own traits (open_browser, ...)
        default = _cell(trait.default_value_repr())
        unit = trait.metadata.get("unit", "")
        kind = type(trait).__name__
        lines.append(f"| `{name}` | {unit} | {kind} | `{default}` | {_cell(trait.help or '')} |")
    return "\n".join(lines) + "\n"


def _schema_text(schema: dict[str, Any], components: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if ref:
        return f"[{ref.rsplit('/', 1)[1]}](#schema-{ref.rsplit('/', 1)[1].lower()})"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_schema_text(schema.get('items', {}), components)}"
    return str(kind) + (" or null" if schema.get("nullable") else "")


def rest_page(spec: dict[str, Any]) -> str:
    components = spec.get("components", {}).get("schemas", {})
    lines = ["# REST API reference", "",
             "Every route under the server's `base_url`, generated from the `openapi.json` shipped in the "
             "package (the fuzz test checks that the server serves exactly these).", ""]
    for path, operations in spec["paths"].items():
        lines += [f"## `{path}`", ""]
        for method, operation in operations.items():
            lines += [f"### {method.upper()} `{path}`", "", _cell(operation.get("summary", "")), ""]
            for parameter in operation.get("parameters", []):
                lines.append(f"- query `{parameter['name']}`: {_cell(parameter.get('description', ''))}")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body:
                lines.append(f"- body: {_schema_text(body['schema'], components)}")
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {}).get("application/json", {})
                reply = f": {_schema_text(content['schema'], components)}" if content else ""
                lines.append(f"- {code}{reply}")
            lines.append("")
    lines += ["## Schemas", ""]
    for name, schema in components.items():
        lines += [f"({('schema-' + name.lower())})=", f"### {name}", ""]
        properties = schema.get("properties", {})
        if not properties:
            lines += ["```json", json.dumps(schema, indent=2), "```", ""]
            continue
        lines += ["| field | type | notes |", "|---|---|---|"]
        for field, spec_of_field in properties.items():
            notes = _cell(spec_of_field.get("description", ""))
            if "enum" in spec_of_field:
                choices = ", ".join(f"`{value}`" for value in spec_of_field["enum"])
                notes = (notes + " " if notes else "") + "one of " + choices
            lines.append(f"| `{field}` | {_schema_text(spec_of_field, components)} | {notes} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_references(directory: Path, spec: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    for name, text in (("traits.md", traits_page()), ("rest-api.md", rest_page(spec))):
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
