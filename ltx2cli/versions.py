"""Model generations and checkpoint versions, one vocabulary for every layer. Torch-free.

The model layer names generations "2.0" (LTX-2 19B) and "2.3" (LTX-2.3 22B); users may also
type "2", "19b" or "22b". A checkpoint's `model_version` metadata ("2.3.0", "2.3-rc2", absent on
LTX-2 files) maps onto them the way the reference compares versions.
"""

from __future__ import annotations

from ltx2cli.errors import UsageError

GEN_2_0 = "2.0"
GEN_2_3 = "2.3"
GENERATIONS = (GEN_2_0, GEN_2_3)
_ALIASES = {"2": GEN_2_0, "2.0": GEN_2_0, "19b": GEN_2_0, "2.3": GEN_2_3, "22b": GEN_2_3}


def parse_model_version(model_version: str | None) -> tuple[int, ...]:
    """`model_version` as comparable numbers: "-" counts as ".", parsing stops at the first part
    that is not a plain integer ("2.3.rc1" and "2.3-rc2" → (2, 3)); unset → (), below all."""
    numbers: list[int] = []
    for part in (model_version or "").replace("-", ".").split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def generation_of_version(model_version: str | None) -> str:
    """The generation whose defaults a checkpoint gets: 2.3 for any version ≥ 2.3, else 2.0."""
    return GEN_2_3 if parse_model_version(model_version) >= (2, 3) else GEN_2_0


def normalize_generation(value: str) -> str:
    """A user's `--generation` value as "2.0" or "2.3"."""
    try:
        return _ALIASES[value.strip().lower()]
    except KeyError:
        raise UsageError(
            f"unknown generation '{value}'", "use 2 (LTX-2 19B) or 2.3 (LTX-2.3 22B)"
        ) from None
