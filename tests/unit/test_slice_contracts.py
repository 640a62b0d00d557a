"""Slice ownership is declared for every table module: a new one cannot slip past the contracts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _table_modules() -> set[str]:
    folder = ROOT / "src" / "herald" / "db"
    names = {p.stem for p in folder.glob("*_tables.py")} | {"tables"}
    return {f"herald.db.{name}" for name in names}


def test_entry_points_may_import_neither_sqlalchemy_nor_any_table_module() -> None:
    (contract,) = [
        c for c in _contracts() if set(c.get("source_modules", ())) == {"herald.api", "herald.web", "herald.cli"}
    ]
    assert contract["type"] == "forbidden"
    assert {"sqlalchemy", *_table_modules()} <= set(contract["forbidden_modules"])


def test_every_table_module_has_one_owner_contract() -> None:
    packages = {p.name for p in (ROOT / "src" / "herald").iterdir() if (p / "__init__.py").exists()}
    for module in _table_modules():
        owners = [
            c
            for c in _contracts()
            if c["type"] == "forbidden" and c["forbidden_modules"] == [module] and c.get("name", "").startswith("Table")
        ]
        assert len(owners) == 1, f"{module} has no ownership contract"
        sources = {s.removeprefix("herald.") for s in owners[0]["source_modules"]}
        # Every slice but the owner is named; herald.db (which collects the schema) is never a source.
        assert "db" not in sources
        assert len(packages - {"db"} - sources) <= 1, f"{module}: {packages - sources} may import it"
