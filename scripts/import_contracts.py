"""An import-linter contract the built-in ones leave out: no module imports itself back through any chain.

`acyclic_siblings` forbids circles between the children of each package; a circle through a package's
`__init__` and one of its own modules (the package imports the module, the module imports the package)
is a circle too. `make lint` runs this contract with the others (pyproject.toml, [tool.importlinter]).
"""

from __future__ import annotations

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class NoCirclesContract(Contract):
    """No chain of imports leads from a module of `package` back to itself."""

    type_name = "no_circles"
    package = fields.StringField()

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        modules = sorted(graph.find_descendants(str(self.package)) | {str(self.package)})
        circles = [sorted(group) for group in _strongly_connected(graph, modules) if len(group) > 1]
        return ContractCheck(kept=not circles, warnings=[], metadata={"circles": circles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for circle in check.metadata["circles"]:
            output.print_error(f"These modules import each other in a circle: {', '.join(circle)}")
            output.new_line()


def _strongly_connected(graph: ImportGraph, modules: list[str]) -> list[list[str]]:
    """Tarjan's strongly connected components of the import graph restricted to `modules`, iteratively."""
    inside = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if position < len(edges[node]):
                work.append((node, position + 1))
                child = edges[node][position]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            for child in edges[node]:
                if child in on_stack:
                    low[node] = min(low[node], low[child])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return groups
