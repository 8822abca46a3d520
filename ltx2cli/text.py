"""Small text rules every layer shares. Torch-free."""

from __future__ import annotations

import os
from collections.abc import Iterable

#: Words that switch an environment flag or a YAML string on.
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or "" when none is close."""
    import difflib  # only when an error is being worded

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def env_flag(name: str) -> bool:
    """Whether the environment variable `name` holds one of the true words."""
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS
