"""Method names shared by the report, the plots and the which-method map."""

from __future__ import annotations

__all__ = ["SURCO_PREFIXES", "is_surco"]

#: method names of the SurCo family start with one of these (SurCo-zero, -prior, -hybrid,
#: surco-plateau, LANCER)
SURCO_PREFIXES = ("surco", "lancer")


def is_surco(name: str) -> bool:
    """True for SurCo-family method names (starting with "surco" or "lancer")."""
    return name.startswith(SURCO_PREFIXES)
