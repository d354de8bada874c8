"""The search language of SearchRuns, SearchExperiments and the registry searches.

MLflow's filter syntax, extended with OR, parentheses, NOT LIKE, NOT IN and IS [NOT] NULL::

    expr       := and_expr (OR and_expr)*
    and_expr   := primary (AND primary)*
    primary    := '(' expr ')' | comparison
    comparison := identifier ('=' | '!=' | '<>' | '<' | '<=' | '>' | '>=') value
                | identifier [NOT] (LIKE | ILIKE) string
                | identifier [NOT] IN '(' value (',' value)* ')'
                | identifier IS [NOT] NULL

An identifier is ``metrics.<key>``, ``params.<key>``, ``tags.<key>``, ``attributes.<name>`` or a
bare attribute name; a key containing other characters than letters, digits and ``_-./:`` is
quoted with backticks or double quotes. Values are quoted strings or numbers, never bare words.
In LIKE patterns ``%`` and ``_`` are wildcards and a backslash makes the next character literal.

Parsing only checks the text against an :class:`EntitySchema`; storage turns the tree into SQL.
Every error is an :class:`InvalidArgument` giving the 1-based position and the text of the
offending token, because a filter is typed by a person who needs to see where it went wrong.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tuning_common.errors import InvalidArgument

# Bounds that keep hostile input from exhausting the parser's recursion or producing huge SQL.
MAX_FILTER_CHARS = 10_000
MAX_COMPARISONS = 100
MAX_NESTING = 32
MAX_ORDER_KEYS = 20

# Integers beyond int64 become floats, as SQLite cannot bind them and no stored integer is that large.
_INT64_MAX = 2**63 - 1


class ValueType(enum.Enum):
    NUMBER = "number"
    STRING = "string"


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    ILIKE = "ILIKE"
    NOT_LIKE = "NOT LIKE"
    NOT_ILIKE = "NOT ILIKE"
    IN = "IN"
    NOT_IN = "NOT IN"
    IS_NULL = "IS NULL"
    IS_NOT_NULL = "IS NOT NULL"


_ORDERING_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
_PATTERN_OPS = frozenset({Op.LIKE, Op.ILIKE, Op.NOT_LIKE, Op.NOT_ILIKE})

Scalar = str | int | float
# A scalar for comparisons and LIKE, a tuple for IN and NOT IN, None for IS [NOT] NULL.
Value = Scalar | tuple[Scalar, ...] | None

ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class Comparison:
    """``namespace`` is metrics, params, tags or attributes; an attribute's key is its canonical name."""

    namespace: str
    key: str
    op: Op
    value: Value


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


Node = Comparison | And | Or


@dataclass(frozen=True)
class OrderKey:
    namespace: str
    key: str
    descending: bool = False


@dataclass(frozen=True)
class Attribute:
    name: str
    type: ValueType


@dataclass(frozen=True)
class EntitySchema:
    """What one kind of entity can be searched and ordered by.

    ``namespaces`` maps each keyed namespace (``metrics``, ``params``, ``tags``) the entity has to
    the type of its values; ``attributes`` maps every accepted spelling of an attribute to it.
    """

    entity: str
    namespaces: Mapping[str, ValueType]
    attributes: Mapping[str, Attribute]


# MLflow accepts the singular and the plural of each prefix.
_NAMESPACE_ALIASES = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": ATTRIBUTES,
    "attributes": ATTRIBUTES,
    "attr": ATTRIBUTES,
}


def _schema(entity: str, namespaces: dict[str, ValueType], *attributes: tuple[str, ValueType, tuple[str, ...]]) \
        -> EntitySchema:
    """Builds a schema from (canonical name, type, other spellings) triples."""
    spellings = {}
    for name, value_type, aliases in attributes:
        for spelling in (name, *aliases):
            spellings[spelling] = Attribute(name, value_type)
    return EntitySchema(entity, namespaces, spellings)


_N, _S = ValueType.NUMBER, ValueType.STRING
_TIMES = (("creation_time", _N, ("create_time",)), ("last_update_time", _N, ("update_time",)))

RUNS = _schema(
    "runs",
    {"metrics": _N, "params": _S, "tags": _S},
    ("run_id", _S, ("id",)),
    ("run_name", _S, ()),
    ("status", _S, ()),
    ("user", _S, ()),
    ("start_time", _N, ()),
    ("end_time", _N, ()),
    ("experiment_id", _N, ()),
    ("parent_run_id", _S, ()),
    ("run_group", _S, ()),
    ("lifecycle_stage", _S, ()),
    ("trial_study", _S, ()),
    ("trial_id", _N, ()),
    ("trial_number", _N, ()),
)
EXPERIMENTS = _schema("experiments", {"tags": _S}, ("name", _S, ()), ("experiment_id", _N, ("id",)), *_TIMES)
REGISTERED_MODELS = _schema("registered models", {"tags": _S}, ("name", _S, ()), *_TIMES)
MODEL_VERSIONS = _schema(
    "model versions",
    {"tags": _S},
    ("name", _S, ()),
    ("version", _N, ()),
    ("run_id", _S, ()),
    ("source_path", _S, ()),
    ("current_stage", _S, ("stage",)),
    *_TIMES,
)
LOGGED_MODELS = _schema(
    "logged models",
    {"metrics": _N, "params": _S, "tags": _S},
    ("model_id", _S, ("id",)),
    ("name", _S, ()),
    ("status", _S, ()),
    ("model_type", _S, ()),
    ("source_run_id", _S, ()),
    ("experiment_id", _N, ()),
    *_TIMES,
)


# --- tokens ----------------------------------------------------------------------------


class Kind(enum.Enum):
    IDENTIFIER = "identifier"
    STRING = "string"
    NUMBER = "number"
    OPERATOR = "operator"
    KEYWORD = "keyword"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end"


@dataclass(frozen=True)
class Token:
    """``text`` is as written; ``value`` is decoded: a (prefix or None, key) pair for identifiers,
    the upper-cased word for keywords, the operator (``<>`` as ``!=``), the string or the number."""

    kind: Kind
    text: str
    position: int
    value: object = None


KEYWORDS = frozenset({"AND", "OR", "LIKE", "ILIKE", "IN", "NOT", "IS", "NULL", "ASC", "DESC"})

_WHITESPACE = re.compile(r"\s+")
_OPERATOR = re.compile(r"<=|>=|!=|<>|=|<|>")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./:]*")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+")
_PUNCTUATION = {"(": Kind.LPAREN, ")": Kind.RPAREN, ",": Kind.COMMA}


def _at(field: str, position: int, text: str | None, message: str) -> InvalidArgument:
    """The error for the text at a 1-based position; None stands for the end of the input."""
    shown = "end of input" if text is None else repr(text if len(text) <= 40 else text[:37] + "...")
    return InvalidArgument(field, f"at position {position} ({shown}): {message}")


def _error(field: str, token: Token, message: str) -> InvalidArgument:
    return _at(field, token.position, None if token.kind is Kind.END else token.text, message)


class _Tokenizer:
    def __init__(self, text: str, field: str):
        self.text = text
        self.field = field
        self.at = 0

    def tokens(self) -> Iterator[Token]:
        while True:
            whitespace = _WHITESPACE.match(self.text, self.at)
            if whitespace:
                self.at = whitespace.end()
            if self.at == len(self.text):
                yield Token(Kind.END, "", self.at + 1)
                return
            yield self._next()

    def _next(self) -> Token:
        char = self.text[self.at]
        if char in _PUNCTUATION:
            return self._take(_PUNCTUATION[char], self.at + 1)
        if char in "'\"":
            start = self.at
            value = self._quoted(char)
            return Token(Kind.STRING, self.text[start:self.at], start + 1, value)
        if char == "`":
            start = self.at
            key = self._quoted("`")
            return self._identifier(start, None, key)
        for pattern, read in ((_OPERATOR, self._operator), (_NUMBER, self._number), (_WORD, self._word)):
            match = pattern.match(self.text, self.at)
            if match:
                return read(match)
        raise _at(self.field, self.at + 1, char, "unexpected character")

    def _take(self, kind: Kind, end: int, value: object = None) -> Token:
        token = Token(kind, self.text[self.at:end], self.at + 1, value)
        self.at = end
        return token

    def _operator(self, match: re.Match[str]) -> Token:
        op = "!=" if match.group() == "<>" else match.group()
        return self._take(Kind.OPERATOR, match.end(), Op(op))

    def _number(self, match: re.Match[str]) -> Token:
        text = match.group()
        tail = _NUMBER_TAIL.match(self.text, match.end())
        if tail:
            raise _at(self.field, self.at + 1, self.text[self.at:tail.end()], "malformed number")
        number: int | float = float(text)
        if re.fullmatch(r"-?\d+", text) and abs(int(text)) <= _INT64_MAX:
            number = int(text)
        return self._take(Kind.NUMBER, match.end(), number)

    def _word(self, match: re.Match[str]) -> Token:
        word = match.group()
        start = self.at
        self.at = match.end()
        if "." not in word:
            if word.upper() in KEYWORDS:
                return Token(Kind.KEYWORD, word, start + 1, word.upper())
            return Token(Kind.IDENTIFIER, word, start + 1, (None, word))
        prefix, key = word.split(".", 1)
        if not key and self.at < len(self.text) and self.text[self.at] in "`\"":
            key = self._quoted(self.text[self.at])
        return self._identifier(start, prefix, key)

    def _identifier(self, start: int, prefix: str | None, key: str) -> Token:
        token = Token(Kind.IDENTIFIER, self.text[start:self.at], start + 1, (prefix, key))
        if not key:
            raise _error(self.field, token, "empty key")
        return token

    def _quoted(self, quote: str) -> str:
        """Reads quoted text. A doubled quote stands for the quote; within '...' and "...", so does a backslash
        before the quote, and two backslashes stand for one so that text can end with a backslash."""
        start = self.at
        escapes = () if quote == "`" else (quote, "\\")
        chars = []
        at = start + 1
        while at < len(self.text):
            char = self.text[at]
            following = self.text[at + 1:at + 2]
            if (char == quote and following == quote) or (char == "\\" and following in escapes):
                chars.append(following)
                at += 2
            elif char == quote:
                self.at = at + 1
                return "".join(chars)
            else:
                chars.append(char)
                at += 1
        raise _at(self.field, start + 1, quote, f"unterminated quoted text; close it with {quote}")


def quote_string(value: str) -> str:
    """``value`` as a quoted string of the language, read back exactly by the tokenizer
    (a backslash doubled, a quote doubled): how clients put arbitrary text into a filter."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def tokenize(text: str, field: str = "filter") -> list[Token]:
    """The tokens of ``text``, ending with an END token one position past its last character."""
    return list(_Tokenizer(text, field).tokens())


# --- parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, schema: EntitySchema, field: str):
        self.schema = schema
        self.field = field
        self.tokens = tokenize(text, field)
        self.index = 0
        self.comparisons = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind is Kind.KEYWORD and token.value in words

    def error(self, token: Token, message: str) -> InvalidArgument:
        return _error(self.field, token, message)

    def missing(self, expected: str) -> InvalidArgument:
        """The next token is not what the grammar needs; at the end, point at what it should have followed."""
        token = self.peek()
        if token.kind is Kind.END and self.index > 0:
            return self.error(self.tokens[self.index - 1], f"expected {expected} after this, but the text ends")
        return self.error(token, f"expected {expected}")

    def finish(self, expected: str) -> None:
        token = self.peek()
        if token.kind is not Kind.END:
            raise self.error(token, f"unexpected text; expected {expected}")

    # expr := and_expr (OR and_expr)*
    def expr(self) -> Node:
        items = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    # and_expr := primary (AND primary)*
    def and_expr(self) -> Node:
        items = [self.primary()]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    # primary := '(' expr ')' | comparison
    def primary(self) -> Node:
        if self.peek().kind is not Kind.LPAREN:
            return self.comparison()
        opening = self.advance()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(opening, f"parentheses nest deeper than {MAX_NESTING} levels")
        node = self.expr()
        if self.peek().kind is Kind.END:
            raise self.error(opening, "this '(' is never closed")
        if self.peek().kind is not Kind.RPAREN:
            raise self.missing(f"AND, OR or ')' to close the '(' at position {opening.position}")
        self.advance()
        self.depth -= 1
        return node

    def comparison(self) -> Comparison:
        if self.peek().kind is not Kind.IDENTIFIER:
            raise self.missing("a comparison such as metrics.loss < 0.5, or '('")
        identifier = self.advance()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(identifier, f"more than {MAX_COMPARISONS} comparisons")
        namespace, key, value_type = self.resolve(identifier)
        op_token = self.peek()
        op = self.operator()
        self.check_operator(op, op_token, identifier, value_type)
        value = self.operand(op, identifier, value_type)
        return Comparison(namespace, key, op, value)

    def resolve(self, identifier: Token) -> tuple[str, str, ValueType]:
        prefix, key = identifier.value
        namespace = ATTRIBUTES if prefix is None else _NAMESPACE_ALIASES.get(prefix)
        if namespace == ATTRIBUTES:
            attribute = self.schema.attributes.get(key)
            if attribute is None:
                names = ", ".join(sorted({a.name for a in self.schema.attributes.values()}))
                raise self.error(identifier, f"{self.schema.entity} have no attribute {key!r}; they have {names}")
            return ATTRIBUTES, attribute.name, attribute.type
        if namespace not in self.schema.namespaces:
            prefixes = ", ".join(f"{name}." for name in (*self.schema.namespaces, ATTRIBUTES))
            raise self.error(identifier, f"unknown namespace {prefix!r}; {self.schema.entity} take {prefixes}")
        return namespace, key, self.schema.namespaces[namespace]

    def operator(self) -> Op:
        token = self.peek()
        if token.kind is Kind.OPERATOR:
            self.advance()
            return token.value
        if self.at_keyword("LIKE", "ILIKE", "IN"):
            return Op(self.advance().value)
        if self.at_keyword("NOT"):
            self.advance()
            if not self.at_keyword("LIKE", "ILIKE", "IN"):
                raise self.missing("LIKE, ILIKE or IN after NOT")
            return Op("NOT " + self.advance().value)
        if self.at_keyword("IS"):
            self.advance()
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if not self.at_keyword("NULL"):
                raise self.missing("NULL")
            self.advance()
            return Op.IS_NOT_NULL if negated else Op.IS_NULL
        raise self.missing("a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT or IS)")

    def check_operator(self, op: Op, token: Token, identifier: Token, value_type: ValueType) -> None:
        if value_type is ValueType.STRING and op in _ORDERING_OPS:
            raise self.error(token, f"{identifier.text} is a string: it takes =, !=, [NOT] LIKE, [NOT] ILIKE, "
                                    "[NOT] IN and IS [NOT] NULL, not " + op.value)
        if value_type is ValueType.NUMBER and op in _PATTERN_OPS:
            raise self.error(token, f"{identifier.text} is a number: it takes =, !=, <, <=, >, >=, [NOT] IN and "
                                    "IS [NOT] NULL, not " + op.value)

    def operand(self, op: Op, identifier: Token, value_type: ValueType) -> Value:
        if op in (Op.IS_NULL, Op.IS_NOT_NULL):
            return None
        if op in (Op.IN, Op.NOT_IN):
            return self.value_list(identifier, value_type)
        if op in _PATTERN_OPS:
            return self.pattern()
        return self.value(identifier, value_type)

    def value(self, identifier: Token, value_type: ValueType) -> Scalar:
        token = self.peek()
        if token.kind not in (Kind.STRING, Kind.NUMBER):
            if token.kind is Kind.END:
                raise self.missing("a value")
            hint = ""
            if token.kind is Kind.IDENTIFIER:
                hint = "; quote strings"
            elif token.value == "NULL":
                hint = "; test for a missing value with IS NULL"
            raise self.error(token, f"expected a value (a quoted string or a number){hint}")
        if token.kind is Kind.STRING and value_type is ValueType.NUMBER:
            raise self.error(token, f"{identifier.text} is a number; compare it with a number, not a string")
        if token.kind is Kind.NUMBER and value_type is ValueType.STRING:
            raise self.error(token, f"{identifier.text} is a string; quote the value")
        return self.advance().value

    def pattern(self) -> str:
        token = self.peek()
        if token.kind is not Kind.STRING:
            raise self.missing("a quoted pattern")
        if re.search(r"(?<!\\)(?:\\\\)*\\$", token.value):
            raise self.error(token, "a pattern cannot end with a lone '\\'; write '\\\\' for a backslash")
        return self.advance().value

    def value_list(self, identifier: Token, value_type: ValueType) -> tuple[Scalar, ...]:
        if self.peek().kind is not Kind.LPAREN:
            raise self.missing("'(' starting the list of values")
        self.advance()
        if self.peek().kind is Kind.RPAREN:
            raise self.error(self.peek(), "an IN list needs at least one value")
        values = [self.value(identifier, value_type)]
        while self.peek().kind is Kind.COMMA:
            self.advance()
            values.append(self.value(identifier, value_type))
        if self.peek().kind is not Kind.RPAREN:
            raise self.missing("',' or ')' in the list of values")
        self.advance()
        return tuple(values)

    def order_key(self) -> OrderKey:
        if self.peek().kind is not Kind.IDENTIFIER:
            raise self.missing("a key to order by, such as metrics.loss or start_time")
        identifier = self.advance()
        namespace, key, _ = self.resolve(identifier)
        descending = False
        if self.at_keyword("ASC", "DESC"):
            descending = self.advance().value == "DESC"
        self.finish("only ASC or DESC after the key")
        return OrderKey(namespace, key, descending)


def parse_filter(text: str, schema: EntitySchema, field: str = "filter") -> Node | None:
    """The tree of ``text``, or None when it is empty (which matches everything)."""
    if len(text) > MAX_FILTER_CHARS:
        raise InvalidArgument(field, f"at most {MAX_FILTER_CHARS} characters, got {len(text)}")
    parser = _Parser(text, schema, field)
    if parser.peek().kind is Kind.END:
        return None
    node = parser.expr()
    parser.finish("AND or OR")
    return node


def parse_order_by(items: list[str], schema: EntitySchema, field: str = "order_by") -> list[OrderKey]:
    """One key per item (``identifier [ASC|DESC]``, ascending by default); errors name ``order_by[i]``."""
    if len(items) > MAX_ORDER_KEYS:
        raise InvalidArgument(field, f"at most {MAX_ORDER_KEYS} keys, got {len(items)}")
    keys = []
    for i, item in enumerate(items):
        item_field = f"{field}[{i}]"
        if len(item) > MAX_FILTER_CHARS:
            raise InvalidArgument(item_field, f"at most {MAX_FILTER_CHARS} characters, got {len(item)}")
        keys.append(_Parser(item, schema, item_field).order_key())
    return keys
