"""The engine's layers import one way: no module imports a module of a higher layer.

Every import counts, at the top of a module or inside a function (a lazy import is still a
dependency); only imports under ``if TYPE_CHECKING:`` (annotations, never executed) may name a
higher layer. The layers are those of ``docs/design.md``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "agentjournal"

# Bottom to top. A module is placed by its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_ids", "_codec", "_fs", "_version", "_time"),
    ("events", "delta", "_jsondoc", "_exact"),
    ("backends",),
    ("journal",),
    ("snapshot",),
    ("retention",),
    ("query",),
    ("replay",),
    ("exchange", "summary", "status", "witness", "expiry"),
    ("state", "hooks", "storage", "manager", "agent", "migrate", "_saves", "_fullstate",
     "_workers", "_writers"),
    ("cli", "serve", "integrations", "demo", "testing", "__init__", "__main__"),
]


def _layer(module: str) -> int:
    """Layer of ``agentjournal.<module>`` (dotted, without the package name)."""
    head = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if head in names:
            return i
    raise AssertionError(f"module agentjournal.{module} is in no layer: add it to LAYERS "
                         "(and to the table in docs/design.md)")


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, imported agentjournal module)`` of every import outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for n in ast.walk(sub):
                    type_only.add(id(n))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("agentjournal."):
                    out.append((node.lineno, a.name.removeprefix("agentjournal.")))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("agentjournal"):
                mod = node.module.removeprefix("agentjournal").lstrip(".")
            else:
                continue
            if not mod:  # "from . import x" at the top: a module, or a name of __init__
                out.extend((node.lineno, a.name if (SRC / a.name).exists()
                            or (SRC / f"{a.name}.py").exists() else "__init__")
                           for a in node.names)
            elif node.module is None:  # "from .. import delta"
                out.extend((node.lineno, f"{mod}.{a.name}".lstrip(".")) for a in node.names)
            else:
                out.append((node.lineno, mod))
    return out


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    me = _module_name(path)
    mine = _layer(me)
    bad = [(line, mod) for line, mod in _imports(path) if _layer(mod) > mine]
    assert not bad, (f"agentjournal.{me} (layer {mine}) imports a higher layer: "
                     + ", ".join(f"agentjournal.{m} (layer {_layer(m)}, line {ln})"
                                 for ln, m in bad))


def test_the_check_can_fail(tmp_path: Path) -> None:
    # The walker really sees a lazy upward import inside a function.
    f = SRC / "journal" / "_probe_layers.py"
    f.write_text("def f():\n    from ..replay import journal\n    return journal\n")
    try:
        found = _imports(f)
    finally:
        f.unlink()
    assert found == [(2, "replay")]
    assert _layer("replay") > _layer("journal.writer")
