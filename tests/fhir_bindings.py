"""Required code bindings of FHIR resources, checked from `fhir.resources`' own metadata: its
models list each required value set's codes (`enum_values`) but do not enforce them on
validation, so a mistyped status would pass `model_validate` unseen."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def unbound_codes(model: Any, path: str = "") -> list[str]:
    """Every coded element of `model` (a validated fhir.resources model, nested models and
    lists included) whose value is not one of its required value set's codes, as
    "path: value"."""
    found: list[str] = []
    if isinstance(model, list):
        for index, item in enumerate(model):
            found += unbound_codes(item, f"{path}.{index}")
        return found
    if not isinstance(model, BaseModel):
        return found
    for name, field in type(model).model_fields.items():
        value = getattr(model, name, None)
        if value is None:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        allowed = extra.get("enum_values")
        if allowed and isinstance(value, str) and value not in allowed:
            found.append(f"{path}.{name}: {value}")
        found += unbound_codes(value, f"{path}.{name}")
    return found
