"""Settings: the one place that reads files and the environment for configuration."""

from config.loader import ConfigError, load_settings
from config.settings import Role, Settings

__all__ = ["ConfigError", "Role", "Settings", "load_settings"]
