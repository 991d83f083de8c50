"""A lint for DuckDB-only SQL in the dbt project (the constructs listed in PORTABLE_SQL.md)."""

import dataclasses
import re
from pathlib import Path

# (name, pattern, what to write instead). Patterns run on SQL with comments, string literals
# and Jinja expressions removed, lower-cased.
RULES: list[tuple[str, str, str]] = [
    ("varchar/text type", r"\b(as|::)\s*(varchar|text)\b", "use string"),
    ("bare decimal", r"\b(decimal|numeric)\b(?!\s*\()", "use decimal(p, s)"),
    ("date_diff", r"\bdate_?diff\s*\(", "use days_between() / dbt.datediff"),
    ("epoch", r"\b(epoch|epoch_ms|unix_timestamp)\b", "use dbt.datediff"),
    ("date formatting", r"\b(strftime|strptime|date_format)\s*\(", "cast to string or date"),
    ("to_date with a format", r"\bto_date\s*\([^()]*,", "cast(x as date)"),
    ("day of week", r"\b(isodow|dayofweek|dow|weekday)\b", "dbt.date_trunc('week', …)"),
    ("date minus date", r"\b\w+_date\s*-\s*\w+_date\b", "use days_between()"),
    ("count distinct over", r"count\s*\(\s*distinct[^()]*\)\s*over\b", "aggregate, then join"),
    ("double-quoted string", r'"', "single quotes only"),
    ("concat", r"\bconcat\s*\(", "concat_ws or coalesce each part (NULL differs)"),
    ("regexp_replace", r"\bregexp_replace\s*\(", "first vs all matches differ"),
    ("split", r"\bsplit\s*\(", "split_part (split is a regex on Spark)"),
    ("nested data", r"\b(unnest|explode|len|size|list_value|list)\s*\(", "no list functions"),
    ("array index", r"\w\s*\[\s*\d+\s*\]", "indexes are 1-based vs 0-based"),
    ("list literal", r"(^|[\s,(=])\[", "no list literals"),
    ("exclude", r"\*\s*exclude\b", "* except (…)"),
    ("union by name", r"\bunion\s+(all\s+)?by\s+name\b", "list the columns"),
    ("integer division //", r"//", "cast(a / b as bigint)"),
    ("generate_series/range", r"\b(generate_series|range)\s*\(", "int_days_enumerated"),
    ("arg_max/arg_min", r"\barg_(max|min)\s*\(", "max_by / min_by"),
    ("json arrow", r"->>?", "no JSON operators"),
]
DUCKDB_CONDITION = re.compile(r"target\.type\s*(==\s*['\"]duckdb['\"]|in\s*[\[(][^\])]*duckdb)")
TAG = re.compile(r"{%-?\s*(if|elif|else|endif)\b(.*?)-?%}", re.S)


@dataclasses.dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    hint: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule} ({self.hint}): {self.text.strip()}"


def _blank(match: re.Match) -> str:
    # keep newlines so line numbers stay right
    return re.sub(r"[^\n]", " ", match.group(0))


def drop_duckdb_branches(text: str) -> str:
    """Blank out the bodies of `{% if target.type == 'duckdb' %}` branches (their twins stay)."""
    out, pos = [], 0
    stack: list[bool] = []  # per open if: is the current branch DuckDB-only
    for tag in TAG.finditer(text):
        body = text[pos : tag.start()]
        out.append(re.sub(r"[^\n]", " ", body) if any(stack) else body)
        kind, cond = tag.group(1), tag.group(2)
        if kind == "if":
            stack.append(bool(DUCKDB_CONDITION.search(cond)))
        elif kind == "elif" and stack:
            stack[-1] = bool(DUCKDB_CONDITION.search(cond))
        elif kind == "else" and stack:
            stack[-1] = False
        elif kind == "endif" and stack:
            stack.pop()
        out.append(_blank(tag))
        pos = tag.end()
    rest = text[pos:]
    out.append(re.sub(r"[^\n]", " ", rest) if any(stack) else rest)
    return "".join(out)


def clean(text: str) -> str:
    """SQL that the rules look at: no branches for DuckDB only, comments, literals or Jinja."""
    text = re.sub(r"{#.*?#}", _blank, text, flags=re.S)
    text = drop_duckdb_branches(text)
    text = re.sub(r"{{.*?}}", _blank, text, flags=re.S)
    text = re.sub(r"{%.*?%}", _blank, text, flags=re.S)
    text = re.sub(r"--[^\n]*", _blank, text)
    text = re.sub(r"/\*.*?\*/", _blank, text, flags=re.S)
    text = re.sub(r"'(?:[^']|'')*'", lambda m: "''" + " " * (len(m.group(0)) - 2), text)
    return text.lower()


def _window_findings(sql: str) -> list[tuple[int, str]]:
    """Window `order by` items without an explicit `nulls first|last` (defaults differ)."""
    found = []
    for match in re.finditer(r"\bover\s*\(", sql):
        depth, i = 1, match.end()
        while i < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[i], 0)
            i += 1
        spec = sql[match.end() : i - 1]
        order = re.search(r"\border\s+by\b(.*?)(\b(rows|range|groups)\b|$)", spec, re.S)
        if not order:
            continue
        depth, items, current = 0, [], ""
        for ch in order.group(1):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if ch == "," and depth == 0:
                items.append(current)
                current = ""
            else:
                current += ch
        items.append(current)
        if any(not re.search(r"\bnulls\s+(first|last)\b", item) for item in items):
            found.append((match.start(), "over (… order by …)"))
    return found


def lint_text(text: str, path: str = "<sql>") -> list[Finding]:
    sql = clean(text)
    raw_lines = text.splitlines()
    hits: list[tuple[int, str, str]] = []
    for name, pattern, hint in RULES:
        for match in re.finditer(pattern, sql):
            hits.append((match.start(), name, hint))
    for start, _ in _window_findings(sql):
        hits.append((start, "window order without nulls first/last", "write nulls first|last"))
    findings = []
    for start, name, hint in sorted(hits):
        line = sql.count("\n", 0, start) + 1
        findings.append(Finding(path, line, name, hint, raw_lines[line - 1]))
    return findings


def lint_paths(root: Path, folders: list[str]) -> list[Finding]:
    findings = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.sql")):
            text = path.read_text()
            if path.parts[-2] == "macros" or folder == "macros":
                # adapter implementations of dispatched macros are engine-specific by design
                text = re.sub(
                    r"{%-?\s*macro\s+duckdb__.*?{%-?\s*endmacro\s*-?%}", _blank, text, flags=re.S
                )
            findings += lint_text(text, str(path.relative_to(root)))
    return findings
