"""Name -> explanation method registry (timm's register_model habit)."""

from __future__ import annotations

import difflib
from collections.abc import Callable

from .base import Explainer

_METHODS: dict[str, type[Explainer]] = {}


def register_method(name: str) -> Callable[[type[Explainer]], type[Explainer]]:
    """Class decorator registering an :class:`Explainer` subclass under ``name``.

    Registering a name twice raises ``ValueError``.
    """

    def decorator(cls: type[Explainer]) -> type[Explainer]:
        if name in _METHODS:
            raise ValueError(
                f"method name {name!r} is already registered by {_METHODS[name].__qualname__}"
            )
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return list(_METHODS)


def create_method(name: str, **kwargs) -> Explainer:
    """Build a registered method; ``kwargs`` whose value is ``None`` are dropped.

    A dropped argument takes the component's default.
    """
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown method {name!r}{hint}; valid: {', '.join(_METHODS)}")
    return _METHODS[name](**{k: v for k, v in kwargs.items() if v is not None})
