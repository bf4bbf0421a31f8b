"""Which params keys a stage reads, for the test that keeps dvc.yaml's params lists exact.

With the environment variable EFFICIENTNEXT_PARAMS_TRACE naming a folder, `stage_main` records every
leaf key the stage reads from params.yaml's values (an attribute of a params group, or all of a group's
keys when it is dumped whole, as the resume signature does) and writes `<folder>/<stage>.json`. Only
groups of the Params the stage was given, or derived from it by an override (less the keys the override
set), count: a ModelParams built
from a checkpoint's record is the checkpoint's, not params.yaml's. Validation's own reads do not count,
and neither does copying the whole Params (`Params.dump`, the start of every override). Off (and without
cost) unless the variable is set.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from efficientnext import config

ENV = "EFFICIENTNEXT_PARAMS_TRACE"


def group_paths(model: type[BaseModel] = config.Params, prefix: str = "") -> dict[type, str]:
    """Each params group class -> its dotted path (every group class appears once in the schema)."""
    paths = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, config.Group):
            path = f"{prefix}{field.alias or name}"
            paths[annotation] = path
            paths.update(group_paths(annotation, f"{path}."))
    return paths


def leaf_keys(group: type[BaseModel], path: str) -> set[str]:
    keys = set()
    for name, field in group.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, config.Group):
            keys |= leaf_keys(annotation, f"{path}.{name}")
        else:
            keys.add(f"{path}.{name}")
    return keys


@contextlib.contextmanager
def traced(stage: str, params: config.Params) -> Iterator[None]:
    """Record the keys `params` (and Params derived from it) are read for inside the block when ENV is set,
    and write them for `stage`."""
    folder = os.environ.get(ENV)
    if not folder:
        yield
        return
    paths, read, paused = group_paths(), set(), [False]
    original_get, original_dump = config.Group.__getattribute__, config.Group.model_dump
    original_validate, original_overrides = config.validate, config.with_overrides
    alive: list[BaseModel] = []  # every watched object stays alive while tracing, so no id is reused
    set_by_override: dict[int, frozenset[str]] = {}  # id of a watched group -> keys an override set in its Params

    def watch(root: BaseModel, overridden: frozenset[str]) -> None:
        alive.append(root)
        set_by_override[id(root)] = overridden
        for name in type(root).model_fields:
            value = object.__getattribute__(root, name)
            if isinstance(value, config.Group):
                watch(value, overridden)

    watch(params, frozenset())

    def getattribute(self: BaseModel, name: str) -> Any:
        value = original_get(self, name)
        group = type(self)
        if (not paused[0] and id(self) in set_by_override and name in group.model_fields
                and not isinstance(value, config.Group)):
            key = f"{paths[group]}.{name}"
            if key not in set_by_override[id(self)]:
                read.add(key)
        return value

    def model_dump(self: BaseModel, *args: Any, **kwargs: Any) -> Any:
        if not paused[0] and id(self) in set_by_override and type(self) in paths:
            read.update(leaf_keys(type(self), paths[type(self)]) - set_by_override[id(self)])
        return original_dump(self, *args, **kwargs)

    def validate(*args: Any, **kwargs: Any) -> config.Params:
        paused[0] = True
        try:
            return original_validate(*args, **kwargs)
        finally:
            paused[0] = False

    def with_overrides(params: config.Params, overrides: dict[str, Any], source: str = "override") -> config.Params:
        derived = original_overrides(params, overrides, source)
        watch(derived, set_by_override.get(id(params), frozenset()) | frozenset(overrides))
        return derived

    config.Group.__getattribute__, config.Group.model_dump = getattribute, model_dump
    config.validate, config.with_overrides = validate, with_overrides
    try:
        yield
    finally:
        config.Group.__getattribute__, config.Group.model_dump = original_get, original_dump
        config.validate, config.with_overrides = original_validate, original_overrides
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{stage}.json").write_text(json.dumps(sorted(read), indent=1) + "\n")
