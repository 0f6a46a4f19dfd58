"""config.json: its model, its loading (file + environment) and its rules."""

from loon_supervisor.config.load import load_config
from loon_supervisor.config.model import LoonConfig

__all__ = ["LoonConfig", "load_config"]
