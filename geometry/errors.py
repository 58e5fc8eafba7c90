"""The one error type for a wrong device description or run configuration."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value is wrong: names the key, the value and what is allowed.

    The command line prints ``str(error)`` on one line and exits with code 2.
    """

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{_one_line(str(key))} = {_shown(value)}: {_one_line(allowed)}")


def _one_line(text: str) -> str:
    """The text with line breaks and other control characters escaped, so it stays one line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


SHOWN_CHARS = 80
"""Longest value text a message prints (a longer one is cut, ending in ``...``)."""


def _shown(value: object) -> str:
    """A value as the message prints it: its repr, with tuples as the lists the user wrote."""
    if isinstance(value, tuple):
        text = "[" + ", ".join(_shown(v) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def nearest(name: object, valid: Iterable[str]) -> str:
    """The text ``" (did you mean 'x'?)"`` for the valid name nearest to ``name``, or ``""``."""
    match = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_name(key: str, name: str, valid: Iterable[str], *, what: str = "") -> ConfigError:
    """The error for a name (a material, a study) that is not among ``valid``."""
    valid = sorted(valid)
    return ConfigError(key, name, f"unknown{what}{nearest(name, valid)}; valid: {', '.join(valid)}")


def unknown_key(key: str, value: object, valid: Iterable[str]) -> ConfigError:
    """The error for a config key (``section.key``) that the section does not have."""
    name = key.rsplit(".", 1)[-1]
    valid = sorted(valid)
    return ConfigError(
        key, value, f"unknown key{nearest(name, valid)}; valid keys: {', '.join(valid)}"
    )
