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
        super().__init__(f"{key} = {value!r}: {allowed}")


def nearest(name: str, valid: Iterable[str]) -> str:
    """The text ``" (did you mean 'x'?)"`` for the valid name nearest to ``name``, or ``""``."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
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
