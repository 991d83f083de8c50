"""The rule condition language: tokenizer, recursive-descent parser, type checker, SQL compiler.

Conditions are small boolean expressions over named columns, for example
``active_users_28d < 0.5 * active_users_prev_28d and seats between 5 and 500``.
Nothing is ever evaluated in Python and nothing is pasted into SQL: identifiers are checked against
a fixed column catalogue and every literal becomes a `?` parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

KEYWORDS = {"and", "or", "not", "between", "in", "is", "null", "true", "false"}
FUNCTIONS = {"abs": (1, 1), "coalesce": (2, 4), "least": (2, 4), "greatest": (2, 4)}
# Words that only make sense in raw SQL; named in the error so a rule author knows why.
SQL_WORDS = {
    "select", "from", "where", "union", "drop", "delete", "insert", "update", "create", "alter",
    "attach", "copy", "pragma", "install", "load", "call", "exec", "execute", "join", "having",
    "group", "order", "limit", "case", "when", "then", "else", "end", "cast", "like", "ilike",
}  # fmt: skip
ALLOWED = (
    "column names, numbers, 'single-quoted strings', true/false, + - * /, = != < <= > >=, "
    "and/or/not, x between a and b, x in (a, b), x is [not] null, abs/coalesce/least/greatest(...)"
)
TYPES = ("number", "string", "boolean", "date")
MAX_DEPTH = 30


class ConditionError(ValueError):
    """A condition that cannot be accepted; the message names the rule, the position and the fix."""

    def __init__(self, message: str, position: int, text: str, rule_id: str | None = None):
        self.rule_id = rule_id
        self.position = position  # 1-based character position in the condition
        self.text = text
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"rule {self.rule_id!r}: " if self.rule_id else ""
        caret = " " * (self.position - 1) + "^"
        return (
            f"{where}condition error at position {self.position}: {self.reason}\n"
            f"    {self.text}\n    {caret}\n"
            f"  allowed: {ALLOWED}"
        )

    def for_rule(self, rule_id: str) -> ConditionError:
        return ConditionError(self.reason, self.position, self.text, rule_id)


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | ident | keyword | op | lparen | rparen | comma | end
    value: object
    pos: int  # 1-based


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|==|=|<|>|\+|-|\*|/)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    """Split a condition into tokens; any character outside the language is refused."""
    if len(text) > 2000:
        raise ConditionError("condition is longer than 2000 characters", 1, text[:60])
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN_RE.match(text, i)
        if m is None:
            ch = text[i]
            if ch == '"':
                hint = "double quotes are not allowed; write strings in 'single quotes'"
            elif ch == "'":
                hint = "unterminated string: close it with a single quote (write '' for a quote)"
            elif text.startswith("--", i) or text.startswith("/*", i):
                hint = "comments are not allowed"
            elif ch == ";":
                hint = "';' is not allowed: a condition is one expression, not SQL statements"
            else:
                hint = f"unexpected character {ch!r}"
            raise ConditionError(hint, i + 1, text)
        kind = m.lastgroup
        raw = m.group()
        if kind == "op" and raw == "-" and text.startswith("--", i):
            raise ConditionError("comments are not allowed", i + 1, text)
        if kind == "op" and raw == "/" and text.startswith("/*", i):
            raise ConditionError("comments are not allowed", i + 1, text)
        if kind == "ws":
            pass
        elif kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", value, i + 1))
        elif kind == "string":
            tokens.append(Token("string", raw[1:-1].replace("''", "'"), i + 1))
        elif kind == "ident":
            low = raw.lower()
            if low in KEYWORDS:
                tokens.append(Token("keyword", low, i + 1))
            else:
                tokens.append(Token("ident", raw, i + 1))
        elif kind == "op":
            tokens.append(Token("op", {"==": "=", "<>": "!="}.get(raw, raw), i + 1))
        else:
            tokens.append(Token(kind, raw, i + 1))
        i = m.end()
    tokens.append(Token("end", None, len(text) + 1))
    depth = 0
    for t in tokens:  # bounded nesting keeps the recursive-descent parser far from its limits
        depth += {"lparen": 1, "rparen": -1}.get(t.kind, 0)
        if depth > MAX_DEPTH:
            raise ConditionError(f"parentheses nested deeper than {MAX_DEPTH}", t.pos, text)
    return tokens


# --- syntax tree -------------------------------------------------------------------------------


@dataclass
class Node:
    pos: int
    type: str = field(default="", init=False)


@dataclass
class Literal(Node):
    value: object


@dataclass
class Column(Node):
    name: str


@dataclass
class Unary(Node):
    op: str  # 'not' | '-'
    operand: Node


@dataclass
class Binary(Node):
    op: str  # and or + - * / = != < <= > >=
    left: Node
    right: Node


@dataclass
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negated: bool


@dataclass
class InList(Node):
    operand: Node
    items: list[Node]
    negated: bool


@dataclass
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass
class Call(Node):
    name: str
    args: list[Node]


COMPARISONS = {"=", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> ConditionError:
        return ConditionError(message, (tok or self.tok).pos, self.text)

    def take(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, value: object = None) -> Token | None:
        t = self.tok
        if t.kind == kind and (value is None or t.value == value):
            self.i += 1
            return t
        return None

    def expect(self, kind: str, value: object, what: str) -> Token:
        t = self.accept(kind, value)
        if t is None:
            raise self.error(f"expected {what}, found {_describe(self.tok)}")
        return t

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("the condition is empty")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {_describe(self.tok)} after a complete expression")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while (t := self.accept("keyword", "or")) is not None:
            node = Binary(t.pos, "or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while (t := self.accept("keyword", "and")) is not None:
            node = Binary(t.pos, "and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if (t := self.accept("keyword", "not")) is not None:
            return Unary(t.pos, "not", self.not_expr())
        return self.predicate()

    def predicate(self) -> Node:
        left = self.additive()
        t = self.tok
        if t.kind == "op" and t.value in COMPARISONS:
            self.take()
            return Binary(t.pos, t.value, left, self.additive())
        negated = False
        if t.kind == "keyword" and t.value == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "keyword" and nxt.value in ("between", "in"):
                self.take()
                negated = True
                t = self.tok
        if self.accept("keyword", "between"):
            low = self.additive()
            self.expect("keyword", "and", "'and' in 'x between low and high'")
            high = self.additive()
            return Between(t.pos, left, low, high, negated)
        if self.accept("keyword", "in"):
            self.expect("lparen", "(", "'(' after 'in'")
            items = [self.additive()]
            while self.accept("comma"):
                items.append(self.additive())
            self.expect("rparen", ")", "')' closing the 'in' list")
            return InList(t.pos, left, items, negated)
        if self.accept("keyword", "is"):
            neg = self.accept("keyword", "not") is not None
            self.expect("keyword", "null", "'null' after 'is' / 'is not'")
            return IsNull(t.pos, left, neg)
        return left

    def additive(self) -> Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            t = self.take()
            node = Binary(t.pos, t.value, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/"):
            t = self.take()
            node = Binary(t.pos, t.value, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.value == "-":
            t = self.take()
            if self.tok.kind == "number":  # a negative literal stays a literal (usable in `in`)
                return Literal(t.pos, -self.take().value)
            return Unary(t.pos, "-", self.unary())
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return Literal(t.pos, t.value)
        if t.kind == "keyword" and t.value in ("true", "false"):
            self.take()
            return Literal(t.pos, t.value == "true")
        if t.kind == "keyword" and t.value == "null":
            raise self.error("a bare null cannot be compared; write 'x is null' / 'x is not null'")
        if t.kind == "lparen":
            self.take()
            node = self.or_expr()
            self.expect("rparen", ")", "')'")
            return node
        if t.kind == "ident":
            self.take()
            name = t.value
            if self.tok.kind == "lparen":
                return self.call(t)
            if name.lower() in SQL_WORDS:
                raise self.error(f"{name!r} is SQL, and raw SQL is not allowed in a condition", t)
            return Column(t.pos, name)
        raise self.error(f"expected a column, number or string, found {_describe(t)}")

    def call(self, name_tok: Token) -> Node:
        name = name_tok.value.lower()
        if name not in FUNCTIONS:
            raise self.error(
                f"unknown function {name_tok.value!r}; functions allowed: "
                f"{', '.join(sorted(FUNCTIONS))}",
                name_tok,
            )
        self.expect("lparen", "(", "'('")
        args = [self.additive()]
        while self.accept("comma"):
            args.append(self.additive())
        self.expect("rparen", ")", f"')' closing {name}(...)")
        lo, hi = FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            raise self.error(f"{name}() takes {lo} to {hi} arguments, got {len(args)}", name_tok)
        return Call(name_tok.pos, name, args)


def _describe(t: Token) -> str:
    if t.kind == "end":
        return "the end of the condition"
    if t.kind == "string":
        return f"string '{t.value}'"
    return f"{t.value!r}"


def parse(text: str) -> Node:
    """Parse a condition into a syntax tree (no type checking yet)."""
    if not isinstance(text, str):
        raise ConditionError("the condition must be a text expression", 1, str(text))
    try:
        return _Parser(text).parse()
    except RecursionError:  # e.g. hundreds of chained `not`/`-`: refuse, do not crash
        raise ConditionError("expression nested too deeply", 1, text[:60]) from None


# --- type checking -----------------------------------------------------------------------------


def check(node: Node, columns: dict[str, str], text: str) -> str:
    """Annotate every node with its type; refuse unknown columns and type mismatches."""

    def err(message: str, n: Node) -> ConditionError:
        return ConditionError(message, n.pos, text)

    def visit(n: Node) -> str:
        if isinstance(n, Literal):
            n.type = (
                "boolean"
                if isinstance(n.value, bool)
                else "number"
                if isinstance(n.value, int | float)
                else "string"
            )
        elif isinstance(n, Column):
            key = n.name.lower()
            if key not in columns:
                close = [c for c in columns if key[:5] and c.startswith(key[:5])][:6]
                hint = f"; similar: {', '.join(close)}" if close else ""
                raise err(
                    f"unknown column {n.name!r}{hint} (known columns: see docs/alert-rules.md)", n
                )
            n.name = key
            n.type = columns[key]
        elif isinstance(n, Unary):
            t = visit(n.operand)
            want = "boolean" if n.op == "not" else "number"
            if t != want:
                raise err(f"'{n.op}' needs a {want}, got a {t}", n)
            n.type = want
        elif isinstance(n, Binary):
            lt, rt = visit(n.left), visit(n.right)
            if n.op in ("and", "or"):
                for side, t in ((n.left, lt), (n.right, rt)):
                    if t != "boolean":
                        raise err(f"'{n.op}' joins true/false conditions, got a {t}", side)
                n.type = "boolean"
            elif n.op in ("+", "-", "*", "/"):
                for side, t in ((n.left, lt), (n.right, rt)):
                    if t != "number":
                        raise err(f"arithmetic '{n.op}' needs numbers, got a {t}", side)
                n.type = "number"
            else:
                if lt != rt:
                    raise err(f"cannot compare a {lt} with a {rt} using '{n.op}'", n)
                if lt == "boolean" and n.op not in ("=", "!="):
                    raise err(f"true/false values only support = and !=, not '{n.op}'", n)
                n.type = "boolean"
        elif isinstance(n, Between):
            t = visit(n.operand)
            for part in (n.low, n.high):
                if visit(part) != t:
                    raise err(f"'between' bounds must be {t}s like the tested value", part)
            if t not in ("number", "date"):
                raise err(f"'between' works on numbers and dates, got a {t}", n)
            n.type = "boolean"
        elif isinstance(n, InList):
            t = visit(n.operand)
            for item in n.items:
                if not isinstance(item, Literal):
                    raise err("'in (...)' lists literal values only", item)
                if visit(item) != t:
                    raise err(f"'in' list values must be {t}s like the tested value", item)
            n.type = "boolean"
        elif isinstance(n, IsNull):
            visit(n.operand)
            n.type = "boolean"
        elif isinstance(n, Call):
            types = [visit(a) for a in n.args]
            if n.name == "abs":
                if types[0] != "number":
                    raise err(f"abs() needs a number, got a {types[0]}", n.args[0])
                n.type = "number"
            else:
                if len(set(types)) != 1:
                    raise err(f"{n.name}() arguments must all have one type, got {types}", n)
                n.type = types[0]
        else:  # pragma: no cover - the parser builds only the nodes above
            raise err("unsupported expression", n)
        return n.type

    result = visit(node)
    if result != "boolean":
        raise ConditionError(
            f"a condition must be true/false, this expression is a {result} "
            "(did you forget a comparison such as '> 0'?)",
            node.pos,
            text,
        )
    return result


# --- SQL compilation ---------------------------------------------------------------------------

_IDENT_OK = re.compile(r"^[a-z_][a-z0-9_]*$")


def to_sql(node: Node, params: list) -> str:
    """Compile a checked tree to a SQL expression; literals are appended to `params` as `?`."""
    if isinstance(node, Literal):
        params.append(node.value)
        return "?"
    if isinstance(node, Column):
        # Belt and braces: only catalogue names reach here, and they are plain identifiers.
        if not _IDENT_OK.match(node.name):
            raise ValueError(f"refusing identifier {node.name!r}")
        return f'"{node.name}"'
    if isinstance(node, Unary):
        inner = to_sql(node.operand, params)
        return f"(not {inner})" if node.op == "not" else f"(- {inner})"
    if isinstance(node, Binary):
        left = to_sql(node.left, params)
        right = to_sql(node.right, params)
        if node.op == "/":
            # Division by zero gives NULL (condition not met) rather than inf or an error.
            return f"(cast({left} as double) / nullif({right}, 0))"
        return f"({left} {node.op} {right})"
    if isinstance(node, Between):
        operand = to_sql(node.operand, params)
        low = to_sql(node.low, params)
        high = to_sql(node.high, params)
        neg = "not " if node.negated else ""
        return f"({operand} {neg}between {low} and {high})"
    if isinstance(node, InList):
        operand = to_sql(node.operand, params)
        items = ", ".join(to_sql(i, params) for i in node.items)
        neg = "not " if node.negated else ""
        return f"({operand} {neg}in ({items}))"
    if isinstance(node, IsNull):
        return f"({to_sql(node.operand, params)} is {'not ' if node.negated else ''}null)"
    if isinstance(node, Call):
        args = ", ".join(to_sql(a, params) for a in node.args)
        return f"{node.name}({args})"
    raise ValueError(f"cannot compile {type(node).__name__}")


def columns_of(node: Node) -> list[str]:
    """Column names used by an expression, in first-use order."""
    out: list[str] = []

    def walk(n: Node) -> None:
        if isinstance(n, Column):
            if n.name not in out:
                out.append(n.name)
            return
        for child in _children(n):
            walk(child)

    walk(node)
    return out


def _children(n: Node) -> list[Node]:
    if isinstance(n, Unary):
        return [n.operand]
    if isinstance(n, Binary):
        return [n.left, n.right]
    if isinstance(n, Between):
        return [n.operand, n.low, n.high]
    if isinstance(n, InList):
        return [n.operand, *n.items]
    if isinstance(n, IsNull):
        return [n.operand]
    if isinstance(n, Call):
        return list(n.args)
    return []


def clauses(node: Node) -> list[Node]:
    """The atomic clauses of a condition (the leaves under and/or/not), for explanations."""
    if isinstance(node, Binary) and node.op in ("and", "or"):
        return clauses(node.left) + clauses(node.right)
    if isinstance(node, Unary) and node.op == "not":
        return clauses(node.operand)
    return [node]


# Binding strength, as the parser reads it: or < and < not < comparisons < + - < * / < unary minus.
_OR, _AND, _NOT, _COMPARE, _ADD, _MUL, _NEG, _ATOM = range(1, 9)


def _strength(n: Node) -> int:
    if isinstance(n, Binary):
        return {"or": _OR, "and": _AND, "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL}.get(
            n.op, _COMPARE
        )
    if isinstance(n, Unary):
        return _NOT if n.op == "not" else _NEG
    if isinstance(n, Between | InList | IsNull):
        return _COMPARE
    if (
        isinstance(n, Literal)
        and not isinstance(n.value, bool | str)
        and math.copysign(1.0, n.value) < 0
    ):
        return _NEG  # written with its minus sign (-0.0 too)
    return _ATOM


def source_of(node: Node, text: str = "") -> str:
    """The condition text of a (sub)tree, parenthesised exactly where the parser needs it, so
    that an explanation quoting a clause means what the clause means.
    """

    def at(n: Node, strength: int) -> str:
        s = source_of(n, text)
        return f"({s})" if _strength(n) < strength else s

    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        if isinstance(node.value, str):
            return "'" + node.value.replace("'", "''") + "'"
        return repr(node.value) if isinstance(node.value, float) else str(node.value)
    if isinstance(node, Column):
        return node.name
    if isinstance(node, Unary):
        return (
            f"not {at(node.operand, _NOT)}" if node.op == "not" else f"-{at(node.operand, _ATOM)}"
        )
    if isinstance(node, Binary):
        own = _strength(node)
        if own == _COMPARE:
            return f"{at(node.left, _ADD)} {node.op} {at(node.right, _ADD)}"
        # Left-associative: the right operand binds tighter, or it needs parentheses.
        return f"{at(node.left, own)} {node.op} {at(node.right, own + 1)}"
    if isinstance(node, Between):
        neg = "not " if node.negated else ""
        return (
            f"{at(node.operand, _ADD)} {neg}between {at(node.low, _ADD)} and {at(node.high, _ADD)}"
        )
    if isinstance(node, InList):
        neg = "not " if node.negated else ""
        items = ", ".join(source_of(i, text) for i in node.items)
        return f"{at(node.operand, _ADD)} {neg}in ({items})"
    if isinstance(node, IsNull):
        return f"{at(node.operand, _ADD)} is {'not ' if node.negated else ''}null"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(at(a, _ADD) for a in node.args)})"
    return "?"


@dataclass
class Compiled:
    """A checked condition ready to run: SQL text with `?` markers, its parameters, and parts."""

    text: str
    tree: Node
    sql: str
    params: list
    columns: list[str]
    # (clause text, sql, params, columns) per atomic clause, for explanations
    clause_sql: list[tuple[str, str, list, list[str]]]


def compile_condition(text: str, columns: dict[str, str]) -> Compiled:
    """Parse, type-check and compile one condition against a column catalogue (name -> type)."""
    tree = parse(text)
    check(tree, columns, text)
    params: list = []
    sql = to_sql(tree, params)
    parts = []
    for clause in clauses(tree):
        p: list = []
        parts.append((source_of(clause, text), to_sql(clause, p), p, columns_of(clause)))
    return Compiled(text, tree, sql, params, columns_of(tree), parts)
