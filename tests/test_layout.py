"""The package keeps DESIGN.md's shape: no import cycle (type-only imports included), a monitor that
only loops (at most 300 lines), no class over 300 lines but the ExtensionApp, handlers that never
reach into the app module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_autoshutdown"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that `path` imports, at run time or for type checking."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            candidates = {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            candidates = {alias.name for alias in node.names}
        else:
            continue
        found |= {candidate for candidate in candidates if candidate in known and candidate != name}
    return found


def test_no_module_imports_one_that_imports_it_back():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(paths)) for name, path in paths.items()}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in graph[node]:
            if target in trail:
                cycles.append([*trail[trail.index(target):], target])
            elif target not in done:
                done.add(target)
                visit(target, [*trail, target])

    for start in graph:
        done: set[str] = {start}
        visit(start, [start])
    assert not cycles, cycles


def test_the_monitor_only_loops_and_classes_stay_small():
    monitor = PACKAGE / "act" / "monitor.py"
    assert len(monitor.read_text().splitlines()) <= 300
    large = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name != "AutoShutdown":
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 300:
                    large.append((module_name(path), node.name, length))
    assert not large, large


def test_handlers_get_the_service_not_the_app():
    for name in ("handlers.py", "mixin.py", "status.py", "service.py"):
        assert not imports_of(PACKAGE / "serve" / name, {"jupyter_autoshutdown.app"}), name


#: The stages, bottom to top, and what each may import (besides itself). Top-level modules (app,
#: client, the package's __init__) may import anything; no stage imports them but `_version`.
ALLOWED_IMPORTS = {
    "core": set(),
    "observe": {"core"},
    "decide": {"core"},
    "actions": {"core", "decide"},
    "act": {"core", "observe", "decide", "actions"},
    "serve": {"core", "observe", "decide", "act", "actions"},
    "cli": {"core"},
    "hub": {"core"},
}


def stage_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ALLOWED_IMPORTS) else "top"


def test_every_stage_imports_only_the_stages_below_it():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    wrong = []
    for name, path in paths.items():
        stage = stage_of(name)
        if stage == "top":
            continue
        for target in imports_of(path, set(paths)):
            if target in ("jupyter_autoshutdown", "jupyter_autoshutdown._version"):
                continue
            target_stage = stage_of(target)
            if target_stage != stage and target_stage not in ALLOWED_IMPORTS[stage]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_every_stage_says_what_it_owns_and_may_import():
    for stage in ALLOWED_IMPORTS:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text())) or ""
        assert "Imports:" in doc or "imports `core`" in doc, stage


def test_every_mutation_of_the_mutation_check_still_finds_its_protected_code(monkeypatch):
    import importlib.util

    monkeypatch.chdir(PACKAGE.parent)
    script = PACKAGE.parent / "tests" / "mutation_check.py"
    spec = importlib.util.spec_from_file_location("mutation_check", script)
    assert spec is not None and spec.loader is not None
    mutation_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutation_check)
    assert mutation_check.MUTATIONS and not mutation_check.stale()


def test_every_number_trait_states_its_unit_first():
    """A duration's name may hide its unit (starting_timeout is minutes, shutdown_timeout
    seconds): the unit is tagged (the docs table shows it) and opens the help text."""
    from jupyter_autoshutdown.app import AutoShutdown

    unitless = {"max_concurrent_shutdowns"}  # a count
    wrong = []
    for name, trait in AutoShutdown.class_own_traits(config=True).items():
        if type(trait).__name__ not in ("Float", "Int") or name in unitless:
            continue
        unit = trait.metadata.get("unit")
        word = unit[:-1] if unit and unit.endswith("s") else unit  # "Minutes" and "Minute" alike
        if word is None or not (trait.help or "").lower().lstrip().startswith(word):
            wrong.append(name)
    assert not wrong, wrong


def test_the_files_the_package_opens_by_path_are_where_it_looks():
    from jupyter_autoshutdown.core.telemetry import EVENT_SCHEMA_PATH

    assert EVENT_SCHEMA_PATH.is_file()
    assert (PACKAGE / "openapi.json").is_file()
