"""The static import graph of `src/td_detr` (every import statement, also those inside functions; not those under
`if TYPE_CHECKING:`) has no circle, and no module imports from a higher layer than its own. Scripts never import
the command line: they run `td-detr` as a user does, or call the library.

A new module needs a place in `LAYERS`; the failure message says so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "td_detr"

# Lowest first. A module may import from its own layer or a lower one. The longest matching prefix decides.
LAYERS = [
    ("foundation", ["td_detr.errors", "td_detr.devices", "td_detr.output_paths", "td_detr.strict_loading", "td_detr.registry",
                    "td_detr.hub_access"]),
    ("numpy primitives", ["td_detr.metrics", "td_detr.data.layout", "td_detr.data.labels", "td_detr.data.ground_truth",
                          "td_detr.features", "td_detr.visualize"]),
    ("model and data", ["td_detr.configuration_td_detr", "td_detr.span_utils", "td_detr.position_encoding",
                        "td_detr.dropout", "td_detr.attention", "td_detr.dynamics", "td_detr.transformer",
                        "td_detr.matcher", "td_detr.losses", "td_detr.postprocessing", "td_detr.modeling_td_detr",
                        "td_detr.processing_td_detr", "td_detr.modeling_auto", "td_detr.data"]),
    ("applications", ["td_detr.inference", "td_detr.row_chunks", "td_detr.training", "td_detr.training_report", "td_detr.convergence", "td_detr.run_folder",
                      "td_detr.pipeline", "td_detr.hub_presets", "td_detr.hub", "td_detr.conversion", "td_detr.spurious",
                      "td_detr.demo"]),
    ("command line", ["td_detr.commands", "td_detr.cli", "td_detr.__main__"]),
    # The root package only names its modules (a lazy module) and registers the Auto classes (importing the modeling
    # module by name when transformers' Auto package loads); nothing inside the package imports them.
    ("package root", [PACKAGE, "td_detr.auto_registration"]),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _type_checking_only(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The td_detr modules `path` imports (`from .pkg import name` counts as the submodule `pkg.name` when there is
    one, else as `pkg`)."""
    name = module_name(path)
    package = name if is_package(path) else name.rpartition(".")[0]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:  # `import td_detr.data.layout.x` style or an attribute path
                target = target.rpartition(".")[0]
            if target.split(".")[0] == PACKAGE and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = sorted((SRC / PACKAGE).rglob("*.py"))
    known = {module_name(path) for path in files}
    return {module_name(path): imported_modules(path, known) for path in files}


def layer_of(module: str) -> int:
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))]
    assert matches, f"{module} has no layer: add it to LAYERS in {Path(__file__).name}"
    return max(matches)[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read(graph):
    # Guards the parser: known edges of each import style are found.
    assert "td_detr.errors" in graph["td_detr.data.layout"]  # from ..errors import
    assert "td_detr.data.ground_truth" in graph["td_detr.commands.evaluate"]  # import inside a function
    assert "td_detr.modeling_td_detr" not in graph["td_detr"]  # under `if TYPE_CHECKING:` only
    assert "td_detr.metrics" in graph["td_detr.metrics.td_detr_moment_retrieval.td_detr_moment_retrieval"]


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_circle(graph):
    assert find_cycle(graph) is None, "import circle: " + " -> ".join(find_cycle(graph))


def test_no_import_from_a_higher_layer(graph):
    upward = [f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for source, targets in graph.items() for target in targets if layer_of(target) > layer_of(source)]
    assert not upward, "\n".join(upward)


def test_scripts_do_not_import_the_command_line():
    offenders = []
    for path in sorted((ROOT / "scripts").glob("*.py")):
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("td_detr.cli", "td_detr.commands"))
                          or n in ("td_detr_cli", "td_detr.__main__")]
    assert not offenders, offenders
