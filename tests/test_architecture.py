"""The layers of docs/ARCHITECTURE.md, checked on every module's imports (module-level and inside functions)."""
import ast
from collections import defaultdict

from conftest import REPO

#: layer -> the fasttcm layers it may import ("_detectron2" is the shim every detectron2 user imports first)
ALLOWED = {
    "layers": set(),
    "structures": set(),
    "formats": {"structures"},
    "checkpoint": {"_detectron2"},
    "config": {"_detectron2"},
    "data": {"structures", "formats", "_detectron2"},
    "evaluation": {"structures", "formats", "_detectron2"},
    "modeling": {"structures", "checkpoint", "_detectron2", "layers"},
    "solver": {"modeling", "_detectron2"},
    "engine": {"structures", "formats", "checkpoint", "config", "data", "evaluation", "modeling", "solver",
               "_detectron2", "layers"},
}


def _imports():
    """{(layer, module): {imported fasttcm layer, ...}} for every module of the package."""
    out = defaultdict(set)
    root = REPO / "fasttcm"
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        layer = parts[1]  # fasttcm/<layer>/... or fasttcm/<layer>.py
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + [node.module] if node.module else base) if node.level else node.module
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                if name and name.startswith("fasttcm."):
                    out[(layer, module)].add(name.split(".")[1])
    return out


def test_no_module_breaks_the_layers():
    broken = []
    for (layer, module), targets in sorted(_imports().items()):
        if layer not in ALLOWED:  # the top: predictor, utils, the package __init__
            continue
        for t in sorted(targets - ALLOWED[layer] - {layer}):
            broken.append(f"{module} imports fasttcm.{t}")
    assert broken == []


def test_the_checker_sees_imports():
    found = _imports()
    assert "formats" in found[("data", "fasttcm.data.datasets.icdar2015")]
    assert "structures" in found[("evaluation", "fasttcm.evaluation.text_eval")]
