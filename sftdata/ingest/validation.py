"""Turn pydantic validation errors into Rejects that name the field, the source path and the reason."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..items import Locator, Reject, Stage
from .paths import format_path


def _field_of(error: dict[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    ctx = error.get("ctx") or {}
    if error.get("type") == "chat_rule" and ctx.get("index") is not None:
        return f"messages[{ctx['index']}].{ctx.get('field', 'role')}"
    if not loc and ctx.get("field"):
        return str(ctx["field"])
    return format_path(loc) if loc else "record"


def describe(error: dict[str, Any]) -> str:
    return f"{_field_of(error)}: {error['msg']}"


def reject_from_validation(error: ValidationError, locator: Locator, raw: Any,
                           source_paths: dict[str, str] | None = None, stage: Stage = Stage.validate) -> Reject:
    """One Reject per row: the first error gives reason and field, the message lists them all."""
    errors = error.errors(include_url=False)
    first = errors[0]
    field = _field_of(first)
    top = field.split(".")[0].split("[")[0]
    return Reject(stage, first["type"], "; ".join(describe(e) for e in errors), locator, field=field,
                  source_path=(source_paths or {}).get(top), raw=raw)
