"""No circles between iobench's packages (module-level imports, package granularity)."""

import ast
from pathlib import Path

import iobench

ROOT = Path(iobench.__file__).parent


def unit(module: str) -> str:
    """The package a module belongs to: iobench.kinds.<kind>, iobench.<pkg>, or the
    top-level module itself."""
    parts = module.split(".")
    if parts[:2] == ["iobench", "kinds"] and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def module_level_imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions are lazy
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks are not run
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("iobench")}
        elif isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if node.level:
                base = name.split(".")[:-node.level]
                mod = ".".join([*base, mod])
            if mod.startswith("iobench"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = unit(name)
        for imp in module_level_imports(path, name):
            dst = unit(imp)
            if dst != src and dst != "iobench.__init__" and dst != "iobench":
                g.setdefault(src, set()).add(dst)
    return g


def test_no_cycles_between_packages():
    g = graph()
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(n: str) -> None:
        seen[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if seen.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in seen:
                visit(m)
        stack.pop()
        seen[n] = 2

    for n in sorted(g):
        if n not in seen:
            visit(n)
    assert cycles == []
