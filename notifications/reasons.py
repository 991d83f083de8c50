"""Why an alert fired, in sentences a person reads: values, directions, the model's signals.

`reason_sentences(alert)` is the one place that turns an alert's stored explanation (the clause
values of `explanation_json`, the model drivers of `drivers_json`) into plain language, with
words from config/glossary.yml. Emails, the alert inbox, CRM tasks and chat messages all use it;
the rule expression itself stays in the warehouse and the inbox's detail for the data team.

A value the data does not have (NULL) is never shown as 0 or guessed: the sentence says it is
not known, and such reasons come last.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_GLOSSARY = Path(__file__).resolve().parents[1] / "config" / "glossary.yml"
UP, DOWN = "▲", "▼"
# Words that keep their capitals when a column name is turned into a label.
_ACRONYMS = {"arr": "ARR", "csm": "CSM", "api": "API", "sla": "SLA", "crm": "CRM", "id": "ID"}


@dataclass(frozen=True)
class Reason:
    """One reason as a person reads it.

    `arrow` is ▲/▼ for a direction (else ""), `tone` is critical / positive / muted (colour of
    the arrow), `known` is False when the data has no value, `source` is "rule" or "model".
    """

    text: str
    arrow: str = ""
    tone: str = "muted"
    known: bool = True
    source: str = "rule"
    column: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "arrow": self.arrow,
            "tone": self.tone,
            "known": self.known,
            "source": self.source,
            "column": self.column,
        }


@dataclass(frozen=True)
class Glossary:
    """The parsed config/glossary.yml (see the file's header for its fields)."""

    columns: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    models: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ranks: tuple[str, ...] = ()
    alert_types: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    feedback: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    unknown: str = "{label}: not known (no data for this day)"

    def label(self, column: str) -> str:
        """The column's label (glossary, else the name in words: `arr` -> ARR)."""
        spec = self.columns.get(column) or {}
        if spec.get("label"):
            return str(spec["label"])
        return humanise(column)

    def term(self, group: str, code: str | None) -> str:
        """The words for a stored code (`alert_types`, `actions`, `feedback`, `statuses`)."""
        if not code:
            return ""
        words = getattr(self, group, {}) or {}
        return str(words.get(code) or humanise(code))


def humanise(name: str) -> str:
    """`days_to_renewal` -> "Days to renewal", `arr` -> "ARR" (a fallback for unlisted names)."""
    words = [w for w in str(name).replace("-", "_").split("_") if w]
    if not words:
        return ""
    out = [_ACRONYMS.get(w.lower(), w.lower()) for w in words]
    first = out[0]
    out[0] = first if first.isupper() else first.capitalize()
    return " ".join(out)


class GlossaryError(ValueError):
    """config/glossary.yml cannot be used; the message names the file and what to fix."""


def _norm_values(values: Any) -> dict[str, str]:
    # YAML reads `true:`/`false:` keys as booleans; look values up by their lower-case text.
    return {str(k).lower(): str(v) for k, v in (values or {}).items()}


def load_glossary(path: str | Path | None = None) -> Glossary:
    """Read a glossary file (default: the repository's config/glossary.yml).

    A missing default file gives an empty glossary (labels are then column names in words); a
    named file that is missing or malformed raises GlossaryError saying what to fix.
    """
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_GLOSSARY
    if not path.exists():
        if explicit:
            raise GlossaryError(f"no glossary at {path}: copy config/glossary.yml there")
        return Glossary()
    try:
        doc = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise GlossaryError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("columns", {}), dict):
        raise GlossaryError(f"{path}: expected a mapping with a 'columns:' mapping")
    columns = {}
    for name, spec in (doc.get("columns") or {}).items():
        if not isinstance(spec, dict):
            raise GlossaryError(f"{path}: column {name!r} must be a mapping (label, kind, ...)")
        spec = dict(spec)
        if "values" in spec:
            spec["values"] = _norm_values(spec["values"])
        columns[str(name)] = spec
    return Glossary(
        columns=columns,
        models={str(k): dict(v or {}) for k, v in (doc.get("models") or {}).items()},
        ranks=tuple(str(r) for r in doc.get("ranks") or ()),
        alert_types={str(k): str(v) for k, v in (doc.get("alert_types") or {}).items()},
        actions={str(k): str(v) for k, v in (doc.get("actions") or {}).items()},
        feedback={str(k): str(v) for k, v in (doc.get("feedback") or {}).items()},
        statuses={str(k): str(v) for k, v in (doc.get("statuses") or {}).items()},
        unknown=str(doc.get("unknown") or Glossary.unknown),
    )


_CACHE: dict[Path, tuple[float, Glossary]] = {}


def glossary_at(path: str | Path | None = None) -> Glossary:
    """load_glossary, cached per file until the file changes (renderers call it per message)."""
    path = Path(path) if path is not None else DEFAULT_GLOSSARY
    mtime = path.stat().st_mtime if path.exists() else -1.0
    hit = _CACHE.get(path)
    if hit and hit[0] == mtime:
        return hit[1]
    g = load_glossary(path if path != DEFAULT_GLOSSARY else None)
    _CACHE[path] = (mtime, g)
    return g


def _loads(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, (list, dict)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: Any) -> float | None:
    if _missing(value) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _fmt_num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _plural(text: str) -> str:
    return re.sub(r"(?<![\d.,])1 days\b", "1 day", text)


def _tone(direction: int, higher_is: str | None) -> str:
    if not direction or higher_is not in ("better", "worse"):
        return "muted"
    good = (direction > 0) == (higher_is == "better")
    return "positive" if good else "critical"


def _arrow(direction: int) -> str:
    return UP if direction > 0 else DOWN if direction < 0 else ""


def _change_sentence(label: str, ratio: float, window: int | None) -> tuple[str, int]:
    span = f" over {window} days, vs the previous {window}" if window else ""
    pct = round(abs(ratio) * 100)
    if pct == 0:
        return f"{label} unchanged{span}", 0
    word = "up" if ratio > 0 else "down"
    return f"{label} {word} {pct}%{span}", (1 if ratio > 0 else -1)


def unknown_reason(glossary: Glossary, column: str, source: str = "rule") -> Reason:
    """What a person reads for a value the data does not have."""
    text = glossary.unknown.format(label=glossary.label(column))
    return Reason(text=text, known=False, source=source, column=column)


def describe(
    column: str,
    value: Any,
    glossary: Glossary,
    previous: Any = None,
    source: str = "rule",
) -> Reason:
    """One column's value as a sentence with direction (`previous` = the earlier period's value
    for a count, when known). NULL -> an "unknown" reason, never a zero.
    """
    spec = glossary.columns.get(column) or {}
    kind = spec.get("kind") or ("flag" if isinstance(value, bool) else "number")
    label = glossary.label(column)
    higher_is = spec.get("higher_is")
    if _missing(value):
        return unknown_reason(glossary, column, source)
    says = spec.get("says")
    direction = 0
    if kind == "flag" or isinstance(value, bool):
        words = spec.get("values") or {}
        text = words.get(str(value).lower()) or f"{label}: {'yes' if value else 'no'}"
        return Reason(
            text=text, tone="critical" if value is False else "muted", source=source, column=column
        )
    if kind == "band":
        words = spec.get("values") or {}
        shown = words.get(str(value).lower()) or str(value).replace("_", " ")
        text = (says or "{label}: {value}").format(label=label, value=shown)
        return Reason(text=text[:1].upper() + text[1:], source=source, column=column)
    number = _number(value)
    if number is None:  # a text value where a number was expected: show it as it is
        return Reason(text=f"{label}: {value}", source=source, column=column)
    window = spec.get("window")
    if kind == "change":
        text, direction = _change_sentence(label, number, window)
    elif kind == "count":
        prev = _number(previous)
        if prev is not None and prev > 0:
            text, direction = _change_sentence(label, (number - prev) / prev, window)
            text += f" ({_fmt_num(number)} vs {_fmt_num(prev)})"
        elif prev == 0 and number > 0:
            text, direction = f"{label} up from none to {_fmt_num(number)} over {window} days", 1
        else:
            span = f" in the last {window} days" if window else ""
            text = f"{label}: {_fmt_num(number)}{span}"
    elif kind == "days_ago":
        cap = spec.get("cap")
        if number <= 0 and spec.get("today"):
            text = str(spec["today"])
        elif cap is not None and number >= float(cap):
            text = (says or "{label} {value} days ago").format(
                label=label, value=f"{_fmt_num(float(cap))} or more"
            )
        else:
            text = (says or "{label} {value} days ago").format(label=label, value=_fmt_num(number))
    elif kind == "days_until":
        if number == 0 and spec.get("today"):
            text = str(spec["today"])
        elif number < 0 and spec.get("past"):
            text = str(spec["past"]).format(label=label, value=_fmt_num(-number))
        else:
            text = (says or "{label} in {value} days").format(label=label, value=_fmt_num(number))
    elif kind in ("percent", "percentile"):
        shown = f"{number:.0%}" if kind == "percent" else f"{number:.0f}%"
        text = (says or "{label} {value}").format(label=label, value=shown)
    elif kind == "money":
        text = (says or "{label} {value}").format(label=label, value=f"${number:,.0f}")
    else:
        text = (says or "{label} {value}").format(label=label, value=_fmt_num(number))
    return Reason(
        text=_plural(text),
        arrow=_arrow(direction),
        tone=_tone(direction, higher_is),
        source=source,
        column=column,
    )


def _clause_values(explanation_json: Any) -> list[dict[str, Any]]:
    """The value dicts of the clauses that held (all of them when none is marked as held)."""
    parsed = _loads(explanation_json)
    clauses = parsed.get("clauses", []) if isinstance(parsed, dict) else parsed
    out, held = [], []
    for c in clauses or []:
        if not isinstance(c, dict):
            continue
        if isinstance(c.get("values"), dict):
            values = c["values"]
        elif c.get("column") or c.get("name"):
            values = {str(c.get("column") or c.get("name")): c.get("value")}
        else:
            continue
        out.append(values)
        if c.get("held") is not False:
            held.append(values)
    return held or out


def _pair_of(column: str, glossary: Glossary) -> str | None:
    spec = glossary.columns.get(column) or {}
    return spec.get("previous")


def _is_previous_of(column: str, names: set[str], glossary: Glossary) -> bool:
    return any(_pair_of(n, glossary) == column for n in names)


def rule_reasons(
    explanation_json: Any, glossary: Glossary, metrics: Mapping[str, Any] | None = None
) -> list[Reason]:
    """The clause values that made the rule fire, one sentence per value (a count and its
    previous period read as one comparison), in the rule's clause order.
    """
    values: dict[str, Any] = {}
    for clause in _clause_values(explanation_json):
        for k, v in clause.items():
            values.setdefault(str(k), v)
    names = set(values)
    out = []
    for column, value in values.items():
        if isinstance(value, (dict, list)):
            continue
        if _is_previous_of(column, names, glossary):
            continue  # read together with its current-period column
        prev_col = _pair_of(column, glossary)
        previous = values.get(prev_col) if prev_col in values else None
        if previous is None and prev_col and metrics:
            previous = metrics.get(prev_col)
        out.append(describe(column, value, glossary, previous))
    return out


def _model_of(alert: Mapping[str, Any]) -> str:
    return "expansion" if "expansion" in str(alert.get("alert_type") or "") else "churn"


def driver_reasons(
    drivers_json: Any,
    glossary: Glossary,
    model: str = "churn",
    metrics: Mapping[str, Any] | None = None,
    limit: int = 3,
) -> list[Reason]:
    """The model's top drivers, ranked, in words: the feature's value where the caller passes
    the account's metrics, and whether it raises or lowers the score. Raw contributions (log
    odds) are never shown.
    """
    drivers = _loads(drivers_json)
    if isinstance(drivers, dict):  # the ml scores' shape: {"base_value", "drivers": [...]}
        drivers = drivers.get("drivers", [])
    words = glossary.models.get(model) or {
        "raises": f"raises the {model} score",
        "lowers": f"lowers the {model} score",
    }
    ranks = glossary.ranks or ("the model's strongest signal",)
    out: list[Reason] = []
    for d in drivers or []:
        if len(out) >= limit or not isinstance(d, dict):
            continue
        name = str(d.get("feature") or d.get("name") or "")
        contrib = _number(d.get("contribution", d.get("shap", d.get("value"))))
        if not name or contrib is None or contrib == 0:
            continue
        effect = words["raises"] if contrib > 0 else words["lowers"]
        rank = ranks[len(out)] if len(out) < len(ranks) else "another signal"
        push = 1 if contrib > 0 else -1
        arrow, tone, what = "", "muted", glossary.label(name)
        if metrics is not None and name in metrics and not _missing(metrics[name]):
            prev_col = _pair_of(name, glossary)
            base = describe(name, metrics[name], glossary, metrics.get(prev_col), "model")
            what, arrow, tone = base.text, base.arrow, base.tone
        if not arrow:
            # No change to point at: the arrow shows which way the signal pushes the score.
            arrow, tone = _arrow(push), _tone(push, words.get("higher_is"))
        text = f"{what} — {effect} ({rank})"
        out.append(Reason(text=text, arrow=arrow, tone=tone, source="model", column=name))
    return out


def reason_sentences(
    alert: Mapping[str, Any],
    glossary: Glossary | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> list[Reason]:
    """Every reason for one alert, as sentences: the rule's values first (in clause order), then
    the model's ranked signals, then the values the data does not have.

    `alert` needs `explanation_json`, `drivers_json` and `alert_type` (a row of alerts.alerts);
    `metrics` (optional) is the account's row of marts.account_health for the alert's day, used
    to state a model signal's value and a count's previous period. A sentence said once is not
    said twice (a driver that is also a rule value).
    """
    glossary = glossary or glossary_at()
    rules = rule_reasons(alert.get("explanation_json"), glossary, metrics)
    by_column = {r.column: i for i, r in enumerate(rules)}
    model = []
    for r in driver_reasons(alert.get("drivers_json"), glossary, _model_of(alert), metrics):
        i = by_column.get(r.column)
        if i is None:
            model.append(r)
        else:  # the rule already states the value: say what the model makes of it there
            rule = rules[i]
            effect = r.text.split(" — ", 1)[1] if " — " in r.text else ""
            rules[i] = Reason(
                text=f"{rule.text} — {effect}" if effect else rule.text,
                arrow=rule.arrow or r.arrow,
                tone=rule.tone if rule.arrow else r.tone,
                known=rule.known,
                source=rule.source,
                column=rule.column,
            )
    known = [r for r in rules if r.known]
    unknown = [r for r in rules if not r.known]
    return known + model + unknown


def reason_texts(
    alert: Mapping[str, Any],
    glossary: Glossary | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> list[str]:
    """reason_sentences as plain strings (CRM task bodies, chat messages, plain-text email)."""
    return [r.text for r in reason_sentences(alert, glossary, metrics)]
