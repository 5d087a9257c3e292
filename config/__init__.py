"""Settings: the one place that reads files and the environment for configuration."""

from config.loader import ConfigError, load_settings
from config.settings import Occasion, Role, Settings

__all__ = ["ConfigError", "Occasion", "Role", "Settings", "load_settings"]
