"""Redaction of secrets and personal data in coding-agent traces (see docs/redaction.md)."""

from tracedrop.pipelines.redaction.redactor import RedactionResult, Redactor
from tracedrop.pipelines.redaction.rules import Rule, RuleSet, RuleSetError, load_default_rules, load_rules
from tracedrop.pipelines.redaction.scan import scan

REDACTOR_VERSION = load_default_rules().redactor_version

__all__ = [
    "REDACTOR_VERSION",
    "RedactionResult",
    "Redactor",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "load_default_rules",
    "load_rules",
    "scan",
]
