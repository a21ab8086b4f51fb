"""Run configs derived from the dataclasses that own the settings: a field's name, type and default live once,
in the pure module, and the launchpad shows them as they are there. Tuples become lists (what Dagster's
config takes); `settings_from` builds the dataclass back from a run config by field name."""

from __future__ import annotations

import dataclasses
import typing

import dagster as dg
from pydantic import create_model


def _config_type(annotation):
    if typing.get_origin(annotation) is tuple:
        return list[typing.get_args(annotation)[0]]
    return annotation


def derived_config(name: str, *sources: type, base: type[dg.Config] = dg.Config, only: tuple[str, ...] = (),
                   exclude: tuple[str, ...] = ()) -> type[dg.Config]:
    """A dg.Config subclass of `base` (its own fields, methods and docstring kept) with every field of the
    `sources` dataclasses (or only those named in `only`), defaults taken from them."""
    fields = {}
    for source in sources:
        hints = typing.get_type_hints(source)
        for field in dataclasses.fields(source):
            if field.name in exclude or (only and field.name not in only):
                continue
            default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            default = list(default) if isinstance(default, tuple) else default
            fields[field.name] = (_config_type(hints[field.name]), default)
    config = create_model(name, __base__=base, __module__=base.__module__, **fields)
    config.__doc__ = base.__doc__
    config.__qualname__ = name
    return config


def settings_from(source: type, config: dg.Config, **overrides):
    """The `source` dataclass with every field the run config has (lists back to tuples), plus `overrides`."""
    values = config.model_dump()
    hints = typing.get_type_hints(source)
    kwargs = {}
    for field in dataclasses.fields(source):
        if field.name in values:
            value = values[field.name]
            kwargs[field.name] = tuple(value) if typing.get_origin(hints[field.name]) is tuple else value
    return source(**{**kwargs, **overrides})
