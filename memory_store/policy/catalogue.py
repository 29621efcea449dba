"""The catalogue of purposes and categories, read from policies/catalogue.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from memory_store.errors import UnknownCategory, UnknownPurpose


@dataclass(frozen=True)
class Purpose:
    name: str
    description: str


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    sensitive: bool
    retention: timedelta


@dataclass(frozen=True)
class Catalogue:
    purposes: dict[str, Purpose]
    categories: dict[str, Category]

    @classmethod
    def load(cls, path: Path) -> Catalogue:
        document = tomllib.loads(path.read_text())
        purposes = {
            name: Purpose(name, str(spec.get("description", "")))
            for name, spec in document.get("purposes", {}).items()
        }
        categories = {
            name: Category(
                name,
                str(spec.get("description", "")),
                bool(spec["sensitive"]),
                timedelta(days=int(spec["retention_days"])),
            )
            for name, spec in document.get("categories", {}).items()
        }
        if not purposes or not categories:
            raise ValueError(f"{path}: the catalogue needs at least one purpose and one category")
        return cls(purposes, categories)

    def purpose(self, name: str) -> Purpose:
        found = self.purposes.get(name)
        if found is None:
            raise UnknownPurpose(
                "Unknown purpose; known purposes: " + ", ".join(sorted(self.purposes)),
                known=sorted(self.purposes),
            )
        return found

    def sensitivity(self, category: str) -> str:
        """How the policy classes a category: "sensitive" or "ordinary"."""
        return "sensitive" if self.category(category).sensitive else "ordinary"

    def category(self, name: str) -> Category:
        found = self.categories.get(name)
        if found is None:
            raise UnknownCategory(
                "Unknown category; known categories: " + ", ".join(sorted(self.categories)),
                known=sorted(self.categories),
            )
        return found
