"""A custom import-linter contract (run by `make lint`): areas talk to other areas only through `service`.

The built-in contracts (pyproject.toml, [tool.importlinter]) hold the layers; this one holds the rule that
`forbidden` and `protected` cannot say without listing every module by hand: a module of one area may import
from another area only that area's `service` module (`api.<area>.service`, or a module inside a package named
`service`). Composition roots (api.app, api.routes, api.cli, api.worker) and kit are not areas."""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output


class AreaBoundaryContract(Contract):
    """Options: `container` (the package holding the areas, e.g. api) and `not_areas` (its modules and
    packages that are not areas, e.g. kit, app, routes)."""

    type_name = "area_boundary"

    container = fields.StringField()
    not_areas = fields.ListField(subfield=fields.StringField())

    def _area(self, module: str) -> str | None:
        prefix = f"{self.container}."
        if not module.startswith(prefix):
            return None
        name = module[len(prefix) :].split(".", 1)[0]
        return None if name in self.not_areas else name  # type: ignore[operator]

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        broken: list[dict[str, Any]] = []
        for importer in sorted(graph.modules):
            source = self._area(importer)
            if source is None:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                target = self._area(imported)
                if target is None or target == source:
                    continue
                inside = imported[len(f"{self.container}.{target}") :]
                if inside == ".service" or inside.startswith(".service."):
                    continue
                lines = [
                    d["line_number"] for d in graph.get_import_details(importer=importer, imported=imported)
                ]
                broken.append({"importer": importer, "imported": imported, "lines": lines})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            where = ", ".join(f"l.{n}" for n in item["lines"])
            output.print(
                f"{item['importer']} -> {item['imported']} ({where}): use that area's service module"
            )
            output.new_line()
