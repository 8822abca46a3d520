"""Progress events: how a pipeline tells its caller what it is doing. Torch-free.

Library code never prints; a pipeline calls `report(Event(...))` and the CLI draws it. Kinds:
- `stages`: the plan, `detail["stages"]` lists the stage names in order (sent once, first);
- `stage`: a stage starts (`name`);
- `step`: `done` of `total` sampling steps of the current stage finished;
- `load` / `free`: a component was loaded (`detail`: bytes, seconds) or freed;
- `note`: a message for the user (`detail["text"]`), e.g. the enhanced prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str
    name: str = ""
    done: int = 0
    total: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


Reporter = Callable[[Event], None]


def silent(_: Event) -> None:
    """The reporter that ignores everything."""
