#!/usr/bin/env python3
"""CI step: fail when the code imports or touches a private name of a third-party package.

    python .ci/private_names.py [ROOT]

A private name starts with an underscore and is not a dunder (`_x` and `__x` are private, `__x__` is
not). A third-party package is a top-level module that is neither in the standard library
(`sys.stdlib_module_names`) nor one of the project's own: the top-level directories of ROOT holding
scanned .py files and ROOT's top-level .py modules. Packages are classified by name only; nothing is
imported. The files scanned are those `git ls-files '*.py'` lists when ROOT is in a git checkout
(and has tracked .py files), else every .py file under ROOT outside .venv, venv, node_modules,
build, dist, __pycache__ and hidden directories.

Findings, one per line as `path:line: what`, exit status 1:

1. Imports: `from pkg import _x`, `from pkg._mod import y`, `import pkg._mod` (any private part)
   where `pkg` is third-party. Relative imports are the project's own.
2. Attribute access `expr._x` (also `getattr`/`hasattr`/`setattr`/`delattr(expr, "_x")`), unless
   `_x` is a name the project defines itself (below), or `expr` is a dotted name rooted at a name
   imported from the standard library (`os._exit`, `sys._getframe`, `asyncio.events._x`), or `_x`
   is namedtuple API (`_replace`, `_asdict`, `_fields`, `_make`, `_field_defaults`). A dotted name
   rooted at a name imported from a third-party package (`quart.helpers._x`) is always a finding.
   Note that a stdlib *object* is not a module: `asyncio.Semaphore(1)._value` is a finding.
3. Keyword arguments `f(_x=...)` when `_x` is not a parameter (or a class-body field, as dataclass
   and NamedTuple fields are) defined in the project: `openai.AsyncOpenAI(_enforce_credentials=...)`.
4. A class with a third-party base (directly, or through project classes, followed by class name)
   shares its instances' namespace with that package's private names, which cannot be told apart
   from new ones without reading the package. So every private name it defines there is a finding:
   `self._x = ...` / `anything._x = ...` anywhere inside the class, `def _x`, `_x = ...` in the class
   body, `__slots__` entries. Such names do not count as the project's own (rule 2) either.
   Except a method with a called decorator (`@field_validator("x")`, `@model_validator(mode=...)`):
   the decorator registers it, the base class does not look it up by name; it counts as ours.

The project's own private names, collected over all scanned files outside classes of rule 4:
function, method and class names, parameters, names assigned at module level or in a class body
(dataclass fields, class attributes; `global` names), attribute assignment targets (`self._x = ...`,
`obj._x = ...`, except on a dotted name rooted at a third-party import), and `__slots__` strings.
Import bindings are tracked per file without regard to scope (a name rebound later is not noticed).

There is no escape hatch: a finding is fixed by not touching the private name (use the package's
public API, keep the state in our own object, or pin the behaviour down another way).
Exit 0 with a one-line summary (files scanned) when there are no findings.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SKIP_DIRS = {".venv", ".venv-litellm", "venv", "node_modules", "build", "dist", "__pycache__"}
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}
ATTR_BUILTINS = {"getattr", "hasattr", "setattr", "delattr"}
STDLIB, THIRD, OWN = "stdlib", "third-party", "own"


def is_private(name: str) -> bool:
    if not name.startswith("_") or not name.strip("_"):
        return False
    return not (name.startswith("__") and name.endswith("__"))


def python_files(root: Path) -> list[Path]:
    """Paths relative to root: git's tracked .py files in a checkout, else a walk."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "*.py"],
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = None
    names = [n for n in (out or b"").decode("utf-8", "surrogateescape").split("\0") if n]
    if names:  # none: not a checkout, or ROOT holds no tracked file (then look at what is there)
        return sorted(Path(n) for n in names if (root / n).is_file())
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if not any(p in SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]) and path.is_file():
            found.append(rel)
    return sorted(found)


def own_top_levels(files: list[Path]) -> set[str]:
    return {f.parts[0] if len(f.parts) > 1 else f.stem for f in files}


@dataclass
class Use:
    """A private name touched in a way that is fine only when the project defines the name."""
    path: Path
    line: int
    name: str
    what: str
    keyword: bool = False


@dataclass
class Project:
    own_packages: set[str]
    defined: set[str] = field(default_factory=set)     # the project's own private names
    parameters: set[str] = field(default_factory=set)  # accepted as keyword arguments
    findings: list[tuple[Path, int, str]] = field(default_factory=list)
    uses: list[Use] = field(default_factory=list)

    def kind(self, module: str) -> str:
        top = module.partition(".")[0]
        if top in sys.stdlib_module_names:
            return STDLIB
        return OWN if top in self.own_packages else THIRD


def chain_root(node: ast.expr) -> ast.Name | None:
    """`a` for the dotted name `a.b.c`; None when the expression is anything else."""
    while isinstance(node, ast.Attribute):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def short(node: ast.expr) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else "..." + text[-37:]


def import_bindings(tree: ast.Module, project: Project) -> dict[str, tuple[str, str]]:
    """Name -> (kind, dotted origin) for every import in the file, whatever its scope."""
    bound: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                origin = alias.name if alias.asname else alias.name.partition(".")[0]
                bound[alias.asname or origin] = (project.kind(alias.name), origin)
        elif isinstance(node, ast.ImportFrom):
            kind = OWN if node.level else project.kind(node.module or "")
            for alias in node.names:
                bound[alias.asname or alias.name] = (kind, f"{node.module or '.'}.{alias.name}")
    return bound


class ClassInfo:
    def __init__(self, node: ast.ClassDef, bound: dict[str, tuple[str, str]]) -> None:
        self.node = node
        self.third_base: str | None = None  # the third-party base it derives from, once known
        self.own_bases: list[str] = []
        for base in node.bases:
            while isinstance(base, ast.Subscript):  # Generic[T], Base[int]
                base = base.value
            root = chain_root(base)
            if root is None:
                continue
            kind, origin = bound.get(root.id, (OWN, ""))
            if kind == THIRD and self.third_base is None:
                self.third_base = origin + ast.unparse(base)[len(root.id):]
            elif kind == OWN:
                self.own_bases.append(ast.unparse(base).rpartition(".")[2])


def mark_third_party_classes(classes: list[ClassInfo]) -> None:
    """A class deriving from a project class (by name) that derives from a third-party one."""
    by_name: dict[str, list[ClassInfo]] = {}
    for c in classes:
        by_name.setdefault(c.node.name, []).append(c)
    changed = True
    while changed:
        changed = False
        for c in classes:
            if c.third_base is None:
                for base in c.own_bases:
                    via = next((b for b in by_name.get(base, ()) if b.third_base), None)
                    if via is not None:
                        c.third_base, changed = f"{via.third_base} (through {base})", True
                        break


class FileScan(ast.NodeVisitor):
    def __init__(self, path: Path, project: Project, bound: dict[str, tuple[str, str]],
                 classes: dict[ast.ClassDef, ClassInfo]) -> None:
        self.path, self.project, self.bound, self.classes = path, project, bound, classes
        self.scope = "module"  # module | class | function: where a bare name assignment lands
        self.third_class: ClassInfo | None = None  # the innermost class, when it has a third-party base

    def finding(self, node: ast.AST, what: str) -> None:
        self.project.findings.append((self.path, node.lineno, what))

    def in_third_class(self, node: ast.AST, name: str, what: str) -> bool:
        """Report a private name defined inside a class of rule 4; True when it was."""
        c = self.third_class
        if c is None or not is_private(name):
            return False
        self.finding(node, f"{what} in {c.node.name}, a subclass of third-party {c.third_base}")
        return True

    def define(self, name: str) -> None:
        if is_private(name):
            self.project.defined.add(name)

    def root_kind(self, expr: ast.expr) -> tuple[str, str] | None:
        root = chain_root(expr)
        return None if root is None else self.bound.get(root.id)

    # imports

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if self.project.kind(alias.name) == THIRD and any(map(is_private, parts)):
                self.finding(node, f"imports private module {alias.name} (third-party)")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or self.project.kind(module) != THIRD:
            return
        if any(map(is_private, module.split("."))):
            self.finding(node, f"imports from private module {module} (third-party)")
        for alias in node.names:
            if is_private(alias.name):
                self.finding(node, f"imports private name {alias.name} from third-party {module}")

    # definitions and scopes

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if not (self.scope == "class" and self.in_third_class(node, node.name,
                                                              f"defines class {node.name}")):
            self.define(node.name)
        for expr in node.bases + node.keywords + node.decorator_list:
            self.visit(expr)
        outer = self.scope, self.third_class
        info = self.classes[node]
        self.scope, self.third_class = "class", info if info.third_base else None
        for stmt in node.body:
            self.visit(stmt)
        self.scope, self.third_class = outer

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        registered = any(isinstance(d, ast.Call) for d in node.decorator_list)
        if not (self.scope == "class" and not registered
                and self.in_third_class(node, node.name, f"defines method {node.name}")):
            self.define(node.name)
        for expr in node.decorator_list + ([node.returns] if node.returns else []):
            self.visit(expr)
        self.visit(node.args)
        outer = self.scope
        self.scope = "function"
        for stmt in node.body:
            self.visit(stmt)
        self.scope = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node: ast.arg) -> None:
        if is_private(node.arg):
            self.project.defined.add(node.arg)
            self.project.parameters.add(node.arg)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self.define(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store) and self.scope in ("module", "class"):
            if not (self.scope == "class" and self.in_third_class(node, node.id, f"defines {node.id}")):
                self.define(node.id)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        target = node.target
        if self.scope == "class" and self.third_class is None and isinstance(target, ast.Name):
            if is_private(target.id):
                self.project.parameters.add(target.id)  # a dataclass / NamedTuple field
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if self.scope == "class" and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                         for t in node.targets):
            value = node.value
            items = value.elts if isinstance(value, (ast.Tuple, ast.List, ast.Set)) else [value]
            for item in items:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    if not self.in_third_class(item, item.value, f"defines slot {item.value}"):
                        self.define(item.value)
        self.generic_visit(node)

    # uses

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        name = node.attr
        if not is_private(name) or name in NAMEDTUPLE_API:
            return
        where = self.root_kind(node.value)
        if where is not None and where[0] == STDLIB:
            return
        text = f"{short(node.value)}.{name}"
        if where is not None and where[0] == THIRD:
            self.finding(node, f"touches private {text} on third-party {where[1]}")
        elif isinstance(node.ctx, ast.Store):
            if not self.in_third_class(node, name, f"assigns {text}"):
                self.define(name)
        else:
            self.project.uses.append(Use(self.path, node.lineno, name, f"touches private {text}"))

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Name) and func.id in ATTR_BUILTINS and func.id not in self.bound \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and is_private(node.args[1].value) \
                and node.args[1].value not in NAMEDTUPLE_API:
            name, where = node.args[1].value, self.root_kind(node.args[0])
            text = f'{func.id}({short(node.args[0])}, "{name}")'
            if where is not None and where[0] == THIRD:
                self.finding(node, f"touches private {text} on third-party {where[1]}")
            elif where is None or where[0] != STDLIB:
                self.project.uses.append(Use(self.path, node.lineno, name, f"touches private {text}"))
        for kw in node.keywords:
            if kw.arg is not None and is_private(kw.arg):
                self.project.uses.append(Use(self.path, kw.lineno, kw.arg,
                                             f"passes private keyword argument {kw.arg}=", keyword=True))


def check(root: Path) -> tuple[list[tuple[Path, int, str]], int]:
    """(findings sorted by place, files scanned)."""
    files = python_files(root)
    project = Project(own_top_levels(files))
    parsed = []
    for rel in files:
        try:
            tree = ast.parse((root / rel).read_bytes(), filename=str(rel))
        except (SyntaxError, ValueError) as exc:
            project.findings.append((rel, getattr(exc, "lineno", None) or 1, f"cannot parse: {exc}"))
            continue
        bound = import_bindings(tree, project)
        classes = {n: ClassInfo(n, bound) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
        parsed.append((rel, tree, bound, classes))
    mark_third_party_classes([c for *_, classes in parsed for c in classes.values()])
    for rel, tree, bound, classes in parsed:
        FileScan(rel, project, bound, classes).visit(tree)
    for use in project.uses:
        if use.keyword and use.name not in project.parameters:
            project.findings.append((use.path, use.line, f"{use.what}, not a parameter this project "
                                                          f"defines"))
        elif not use.keyword and use.name not in project.defined:
            project.findings.append((use.path, use.line, f"{use.what}, not one of this project's own "
                                                          f"names"))
    return sorted(set(project.findings), key=lambda f: (str(f[0]), f[1], f[2])), len(files)


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else ".")
    findings, scanned = check(root)
    for path, line, what in findings:
        print(f"{path.as_posix()}:{line}: {what}")
    if findings:
        print(f"private_names: {len(findings)} finding(s) in {len({f[0] for f in findings})} of "
              f"{scanned} files: private names of third-party packages (see .ci/private_names.py)",
              file=sys.stderr)
        return 1
    print(f"private_names: {scanned} files scanned, no private names of third-party packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
