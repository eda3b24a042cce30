"""The route class of every API router: before a handler runs, every id the request names — in
its path, its query string or its body — is resolved through the caller's scope.

Ids are found by their types (`cloud.access.ids`: `BoardId`, `ConsumerId`, ...), in the handler's
parameters and in the fields of its body model, single or in lists. They are checked after
authentication and the permission check (a role without the permission gets 403 first) and
before the handler reads or writes anything; the first id outside the scope answers 404 naming
it, as if it did not exist. Services still check the rows they touch; this is the gate that
makes forgetting to impossible.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from ..access import InScope, Principal, resolve_in_scope


@dataclass(frozen=True)
class IdSlot:
    """Where an id sits: a parameter, or a path of fields into a body parameter (through nested
    models and lists of them)."""

    parameter: str
    fields: tuple[str, ...]
    entity: str

    @property
    def name(self) -> str:
        return ".".join((self.parameter, *self.fields))


def _entity_of(annotation: Any) -> str | None:
    """The entity of an id type, looking through Optional and list."""
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in annotation.__metadata__:
            if isinstance(extra, InScope):
                return extra.entity
        return _entity_of(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple, set):
        for arg in typing.get_args(annotation):
            found = _entity_of(arg)
            if found is not None:
                return found
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a type holds (itself, or inside Optional, list, Annotated)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _model_slots(model: type[BaseModel], depth: int = 0) -> list[tuple[tuple[str, ...], str]]:
    found: list[tuple[tuple[str, ...], str]] = []
    if depth > 5:
        return found
    for name, field in model.model_fields.items():
        entity = next((m.entity for m in field.metadata if isinstance(m, InScope)), None)
        entity = entity or _entity_of(field.annotation)
        if entity is not None:
            found.append(((name,), entity))
            continue
        for inner in _models_in(field.annotation):
            found += [((name, *path), e) for path, e in _model_slots(inner, depth + 1)]
    return found


def id_slots(endpoint: Callable[..., Any]) -> list[IdSlot]:
    """Every scoped id a handler takes, by its type hints, however deep in its body."""
    slots = []
    hints = typing.get_type_hints(endpoint, include_extras=True)
    for name, hint in hints.items():
        if name == "return":
            continue
        entity = _entity_of(hint)
        if entity is not None:
            slots.append(IdSlot(name, (), entity))
            continue
        for model in _models_in(hint):
            slots += [IdSlot(name, path, e) for path, e in _model_slots(model)]
    return slots


def _values(value: Any, path: tuple[str, ...]) -> Iterable[int]:
    """The ids at `path` inside `value`, through lists and models."""
    if value is None:
        return
    if isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _values(item, path)
    elif path:
        yield from _values(getattr(value, path[0], None), path[1:])
    else:
        yield value


def _parameter_of_type(endpoint: Callable[..., Any], wanted: type) -> str | None:
    hints = typing.get_type_hints(endpoint, include_extras=True)
    for name, hint in hints.items():
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        if base is wanted:
            return name
    return None


def check_ids_first(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """The handler, preceded by the scope check of every id it takes (unchanged if none)."""
    slots = id_slots(endpoint)
    if not slots:
        return endpoint
    principal_name = _parameter_of_type(endpoint, Principal)
    pool_name = _parameter_of_type(endpoint, AsyncConnectionPool)
    if principal_name is None or pool_name is None or not inspect.iscoroutinefunction(endpoint):
        raise TypeError(
            f"{endpoint.__qualname__} takes scoped ids, so it must be async and take the caller"
            " (a Principal) and the pool (PoolDep)"
        )

    @functools.wraps(endpoint)
    async def checked(**kwargs: Any) -> Any:
        wanted: dict[str, set[int]] = defaultdict(set)
        for slot in slots:
            wanted[slot.entity].update(_values(kwargs.get(slot.parameter), slot.fields))
        if any(wanted.values()):
            async with kwargs[pool_name].connection() as conn:
                await resolve_in_scope(conn, kwargs[principal_name], wanted)
        return await endpoint(**kwargs)

    checked.id_slots = slots  # type: ignore[attr-defined]  (for the authorization tests)
    return checked


class ScopedRoute(APIRoute):
    """An API route whose ids are resolved in the caller's scope before its handler runs."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, check_ids_first(endpoint), **kwargs)
