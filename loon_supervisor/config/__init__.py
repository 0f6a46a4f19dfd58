"""config.json: its model, its loading (file + environment) and its rules.

Names are loaded on first use so that importing ``config.rules`` alone (the fast path of
``build.py -e``) does not build the pydantic models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loon_supervisor.config.load import load_config
    from loon_supervisor.config.model import LoonConfig

__all__ = ["LoonConfig", "load_config"]


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from loon_supervisor.config.load import load_config
        return load_config
    if name == "LoonConfig":
        from loon_supervisor.config.model import LoonConfig
        return LoonConfig
    raise AttributeError(name)
