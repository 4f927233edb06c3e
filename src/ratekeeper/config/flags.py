"""Flags and ``RATEKEEPER_*`` variables over a tree of typed settings: one table per process.

Users see one flat list of options; a process reads typed, frozen sections. An
:class:`OptionTable` is the one table between the two for one settings type (``ratekeeper
serve``'s :class:`~ratekeeper.server.settings.ServerSettings`, the assigner's
:class:`~ratekeeper.assigner.settings.AssignerSettings`): each :class:`Option` row gives the
option's name (flag ``--<name>``, with dashes), its variable, the settings field it sets and how
its text is parsed. Defaults are the settings' own, so they are written once.

Precedence, lowest first: the field's default, the variable, the flag. A bad value raises
:class:`~ratekeeper.errors.ConfigError` naming the flag or variable it came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ratekeeper.errors import ConfigError

__all__ = ["ENV_PREFIX", "Option", "OptionTable", "parse_bool"]

ENV_PREFIX = "RATEKEEPER_"

#: A settings type: a frozen dataclass whose sections are frozen dataclasses.
Settings = TypeVar("Settings")


def parse_bool(text: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``, in any case."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True, slots=True)
class Option:
    """One flag and its environment variable, and the settings field they set."""

    #: Flag name with underscores (``grpc_port`` is ``--grpc-port``): the name users know.
    name: str
    #: Environment variable without :data:`ENV_PREFIX`.
    env: str
    #: Dotted path of the field it sets in the table's settings (``listeners.grpc_port``).
    path: str
    #: Turns the flag's or variable's text into the field's value; raises ValueError.
    parse: Callable[[str], Any]
    #: One line for ``--help``.
    help: str
    #: The texts allowed, if the set is closed (checked before parsing).
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.env


def _read(settings: object, path: str) -> Any:
    value = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _shown(value: Any) -> str:
    """A default as ``--help`` shows it (``None``: ``none``, the field unset)."""
    if isinstance(value, enum.Enum):
        return repr(value.value)
    return "none" if value is None else repr(value)


class OptionTable(Generic[Settings]):
    """The options of one settings type; see the module docstring."""

    def __init__(self, defaults: Callable[[], Settings], options: Iterable[Option]) -> None:
        """``defaults()`` makes the settings every option is applied to."""
        self._defaults = defaults
        #: Every option, in ``--help`` order.
        self.options = tuple(options)
        self._by_name = {option.name: option for option in self.options}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """One flag per option; an absent flag leaves the variable or the default in force."""
        defaults = self._defaults()
        for option in self.options:
            boolean = option.parse is parse_bool
            extra: dict[str, Any] = {"nargs": "?", "const": "true"} if boolean else {}
            parser.add_argument(
                option.flag,
                dest=option.name,
                default=None,
                metavar="BOOL" if boolean else option.name.upper(),
                help=f"{option.help} [env {option.variable}, "
                f"default {_shown(_read(defaults, option.path))}]",
                **extra,
            )

    def flat_values(self, settings: Settings) -> dict[str, Any]:
        """Each option's current value in ``settings``, by option name."""
        return {option.name: _read(settings, option.path) for option in self.options}

    def with_options(self, settings: Settings, **values: Any) -> Settings:
        """``settings`` with options set by name to typed values (``grpc_port=0``).

        Raises :class:`ConfigError` for an unknown name or a value its section refuses (a
        section that raises ``ValueError``, one checked by another package, is named).
        """
        changes: dict[str, Any] = {}
        for name, value in values.items():
            option = self._by_name.get(name)
            if option is None:
                raise ConfigError(f"no such option; known: {', '.join(self._by_name)}", key=name)
            changes[option.path] = value
        replaced: Settings = _replace(settings, changes, "")
        return replaced

    def from_sources(self, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Settings from defaults, overridden by ``environ``, overridden by ``flags`` (text
        values or ``None``).

        Raises :class:`~ratekeeper.errors.ConfigError` naming the variable or flag at fault.
        """
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for option in self.options:
            text, source = flags.get(option.name), option.flag
            if text is None:
                text, source = environ.get(option.variable), option.variable
            if text is None:
                continue
            if option.choices:
                # Spelled as the user likes (``debug``, ``Debug``): the choices are names.
                chosen = {c.casefold(): c for c in option.choices}.get(text.casefold())
                if chosen is None:
                    choices = ", ".join(option.choices)
                    raise ConfigError(f"must be one of {choices}; got {text!r}", key=source)
                text = chosen
            try:
                values[option.name] = option.parse(text)
            except ValueError as exc:
                raise ConfigError(f"cannot parse {text!r}: {exc}", key=source) from None
            sources[option.path] = source
        try:
            return self.with_options(self._defaults(), **values)
        except ConfigError as exc:
            raise _renamed(exc, sources) from None


def _replace(owner: Any, changes: Mapping[str, Any], path: str) -> Any:
    """``owner`` (the section at ``path``) with dotted ``changes`` applied, building each section
    once (so checks that span two fields see both new values)."""
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in changes.items():
        head, _, rest = dotted.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        direct[head] = _replace(getattr(owner, head), inner, f"{path}.{head}" if path else head)
    try:
        return dataclasses.replace(owner, **direct)
    except ValueError as exc:  # a section checked by another package (the assigner's)
        raise ConfigError(str(exc), key=path or None) from None


def _renamed(exc: ConfigError, sources: Mapping[str, str]) -> ConfigError:
    """``exc`` naming the flag or variable that set the field it is about, if one did; a refusal
    of the whole settings (a check across fields) names the last one set."""
    key = exc.key or ""
    for path, source in sources.items():
        if key and (path == key or path.endswith("." + key)):
            return ConfigError(exc.reason, key=source)
    if not key and sources:
        return ConfigError(exc.reason, key=list(sources.values())[-1])
    return exc
