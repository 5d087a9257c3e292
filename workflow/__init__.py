"""The protection workflow: the rules, shared by commands, reactions and the scheduler.

It knows neither Matrix nor SQL: it is handed a storage interface and the current time.
"""

from workflow.access import AccessPolicy
from workflow.core import Policy, RuntimeInfo, Workflow
from workflow.errors import Refused

__all__ = ["AccessPolicy", "Policy", "Refused", "RuntimeInfo", "Workflow"]
