"""The shape of the code, kept by a test (read with `ast`, nothing imported):

- the core (`realtime/`) imports no app: apps plug into its registries;
- no import cycle among the project's modules, counting imports inside functions;
- no module (tests and migrations aside) is longer than 400 lines.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("realtime", "chats", "channels_app", "notes", "bench", "testing")
APPS = ("chats", "channels_app", "notes")
MAX_LINES = 400


def project_files() -> dict[str, Path]:
    """Every project module by dotted name (migrations aside)."""
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a module imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # The longest prefix that is a project module: `from a import b` names
            # module a.b if there is one, else module a.
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def is_test(name: str) -> bool:
    parts = name.split(".")
    return "tests" in parts or parts[0] == "testing"


def test_the_graph_is_read():
    graph = import_graph()
    assert "realtime.hub" in graph and "notes.events" in graph
    assert "realtime.hub" in graph["notes.events"]


def test_the_core_imports_no_app():
    offenders = {
        name: sorted(t for t in targets if t.split(".")[0] in APPS)
        for name, targets in import_graph().items()
        if name.split(".")[0] == "realtime" and not is_test(name)
    }
    assert {n: t for n, t in offenders.items() if t} == {}


def test_there_is_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_module_is_longer_than_400_lines():
    long = {
        name: n
        for name, path in project_files().items()
        if not is_test(name) and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
