"""Settings: the one place that reads files and the environment for configuration."""

from config.audit_key import audit_key
from config.loader import ConfigError, add_config_option, load_settings
from config.settings import Occasion, Role, Settings

__all__ = [
    "ConfigError",
    "Occasion",
    "Role",
    "Settings",
    "add_config_option",
    "audit_key",
    "load_settings",
]
