"""Critical rules as portable SQL for the reconciliation mart (dbt, outcomes/).

The mart recomputes, for every landed day, which (account, critical rule) pairs held, from the
marts themselves and not from anything the alert engine wrote, so a condition that never became
an alert shows up as missed. It receives the rules as the dbt var `critical_rules`, made here
from config/rules.yml: each condition with its literals inlined (validated by the rules parser:
numbers, quoted text, booleans) and plain identifiers (double quotes mean text on Spark).
"""

from __future__ import annotations

import math
import re

from alerts.expr import Compiled
from alerts.rules import RuleSet

_QUOTED_IDENT = re.compile(r'"([a-z_][a-z0-9_]*)"')


def sql_literal(value: object) -> str:
    """A literal both DuckDB and Spark read the same way."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"no portable literal for {value!r}")
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"no portable literal for {type(value).__name__} {value!r}")


def portable_condition(compiled: Compiled) -> str:
    """The compiled condition with its `?` parameters inlined and identifiers unquoted."""
    pieces = compiled.sql.split("?")
    if len(pieces) != len(compiled.params) + 1:
        raise ValueError("condition SQL and its parameters do not match")
    out = [_QUOTED_IDENT.sub(r"\1", pieces[0])]
    for value, piece in zip(compiled.params, pieces[1:], strict=True):
        out.append(sql_literal(value))
        out.append(_QUOTED_IDENT.sub(r"\1", piece))
    return "".join(out)


def critical_rule_vars(ruleset: RuleSet) -> list[dict[str, object]]:
    """The dbt var `critical_rules`: enabled critical rules with condition and cooldown."""
    return [
        {
            "rule_id": r.id,
            "condition": portable_condition(r.condition),
            "cooldown_days": r.cooldown_days,
        }
        for r in ruleset.enabled
        if r.severity == "critical"
    ]
