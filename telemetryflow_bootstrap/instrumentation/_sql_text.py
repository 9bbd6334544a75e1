"""What may be exported of a SQL statement's text: ``sanitize`` (literals out) and
``names_other_tables`` (is ``db.collection.name`` really the one table?).

Why sanitize every statement, placeholders or not: the database conventions ask that query
text without parameters be collected only sanitized (every literal replaced by ``?``), and
let parameterized text go as written. But a statement with placeholders can still carry
values written inline (``WHERE id = %s AND email = 'a@example.com'``), and this launcher
promises never to export one. Placeholders (``?``, ``%s``, ``%(name)s``, ``$1``, ``:name``)
are no literals, so a fully parameterized statement comes back unchanged (the same object).

``sanitize`` replaces string literals (``''`` and, where the dialect has them, backslash
escapes; ``E''``, ``N''``, ``B''``, ``X''``; PostgreSQL dollar quoting; MySQL's double-quoted
strings), numbers (decimal, exponent, hex, binary, octal; not the digits of ``t1`` or
``$1``) and ``TRUE``/``FALSE`` by ``?``, collapses ``IN (?, ?, ?)`` to ``IN (?)`` (the
conventions allow it, and a list of a thousand ids then stays short) and removes comments
(they can hold anything, sqlcommenter tags included). Identifiers, quoted ones too, keywords
and placeholders are kept. A literal, quoted identifier or comment left open means the
dialect was guessed wrong somewhere before it, so the text could hold a value we took for
SQL: then there is no text at all (``None``). Only the first ``_WINDOW`` characters are
read; a literal open where that window ends is cut there, not a reason to drop the text.

The dialect comes from ``db.system.name``: ``mysql``/``mariadb`` (backslash escapes,
``"..."`` strings, ``#`` comments), ``postgresql`` (``E''`` strings, ``$tag$`` quoting,
nested comments), ``sqlite`` (``[name]`` identifiers, ``?1``/``:1`` placeholders, and a
``"..."`` where SQL expects a value taken for the string SQLite may read it as); any other
system gets the PostgreSQL rules.

Cost: a text with no quote, digit, ``$``, ``#``, ``[``, ``.``, ``-``, ``/`` or boolean (many
parameterized statements) is returned after two C-level scans; otherwise such a scan jumps
to each character that may start a literal and one regular-expression match reads it.
Callers cache the result per statement (``dbapi.parse``): a repeated statement is a dict
lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_WINDOW = 32768  # characters read: 4x the exported maximum (dbapi._MAX_STATEMENT)
_WALK = 8192  # characters of sanitized text searched for table names
_LITERAL = "\x00"  # stands for a replaced literal until IN lists are collapsed

_STRING = r"'[^']*(?:''[^']*)*(?P<string_end>')?"
_ESCAPED_STRING = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?P<string_end>')?"
_NUMBER = (r"(?:0[xX][0-9A-Fa-f_]+|0[bB][01_]+|0[oO][0-7_]+"  # ASCII digits: SQL's
           r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)")
_WHOLE_WORD = r"(?![\w$])"
_BOOLEAN = rf"(?i:true|false){_WHOLE_WORD}"
_DOUBLE_QUOTED_NAME = r'"[^"]*(?:""[^"]*)*(?P<name_end>")?'
_BACKTICK_NAME = r"`[^`]*(?:``[^`]*)*(?P<backtick_end>`)?"
# A word is skipped whole (so the digits of ``t1`` are no number), unless it is TRUE/FALSE
# or the N/B/X/E of a prefixed string.
_WORD = rf"(?!{_BOOLEAN}|[EeNnBbXx]')[^\W0-9][\w$]*"


def _dialect(starters: str, skipped: tuple[str, ...], *literals: str) -> re.Pattern[str]:
    """One ``match`` finds the next literal, comment or quoted name from where it starts:
    what comes before it is skipped in the same call, words and runs of characters that
    start nothing (``starters`` besides the usual) as a whole. The skip is atomic
    (lookahead and backreference), so a failed literal never makes the engine split a word
    differently; the pattern ends at the window's end (``skip`` is the last group)."""
    skip = "|".join((rf"[^-/'\"`\w.{starters}]+", _WORD, r"\.(?![0-9])", r"-(?!-)", r"/(?!\*)",
                     *skipped))
    return re.compile(
        rf"(?=(?P<skip>(?:{skip})*))(?P=skip)(?:{'|'.join(literals)}|\Z)", re.S)


# Each kind is a named group (``m.lastgroup``), an open literal is one whose ``*_end`` group
# is empty.
_POSTGRESQL = _dialect(
    r"#\[$", (r"\#", r"\[", r"\$[0-9]+", r"\$(?!(?:[^\W0-9]\w*)?\$)"),
    r"(?P<line>--[^\n]*)",
    r"(?P<block>/\*)",
    r"(?P<escaped>[Ee]'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?P<escaped_end>')?)",
    rf"(?P<string>[NnBbXx]?{_STRING})",
    r"(?P<dollar>\$(?:[^\W0-9]\w*)?\$)",
    rf"(?P<name>{_DOUBLE_QUOTED_NAME})",
    rf"(?P<backtick>{_BACKTICK_NAME})",
    rf"(?P<number>{_NUMBER})",
    rf"(?P<boolean>{_BOOLEAN})",
)
_MYSQL = _dialect(
    # MySQL names may start with digits (``1st_table``, ``t.1st``): a number is a whole word.
    r"#\[$", (r"\[", r"\$", r"\.", rf"(?!{_NUMBER}{_WHOLE_WORD})[0-9][\w$]*"),
    r"(?P<line>(?:--|\#)[^\n]*)",
    r"(?P<block>/\*)",
    rf"(?P<string>[EeNnBbXx]?{_ESCAPED_STRING})",
    r'(?P<dquoted>"[^"\\]*(?:(?:\\.|"")[^"\\]*)*(?P<dquoted_end>")?)',
    rf"(?P<backtick>{_BACKTICK_NAME})",
    rf"(?P<number>{_NUMBER}{_WHOLE_WORD})",
    rf"(?P<boolean>{_BOOLEAN})",
)
_SQLITE = _dialect(
    # ``?1``, ``:1``, ``@1``, ``$1`` are placeholders, their digits no number.
    r"#\[$?:@", (r"\#", r"[?:@$][0-9]+", r"[?:@$]"),
    r"(?P<line>--[^\n]*)",
    r"(?P<block>/\*)",
    rf"(?P<string>[EeNnBbXx]?{_STRING})",
    rf"(?P<name>{_DOUBLE_QUOTED_NAME})",
    rf"(?P<backtick>{_BACKTICK_NAME})",
    r"(?P<bracket>\[[^\]]*(?P<bracket_end>\])?)",
    rf"(?P<number>{_NUMBER})",
    rf"(?P<boolean>{_BOOLEAN})",
)
_RULES: dict[str, tuple[re.Pattern[str], bool, str, str]] = {
    # system → (pattern, nested comments, the marks of numbered placeholders but $,
    #           candidates that start nothing in the dialect)
    "postgresql": (_POSTGRESQL, True, "", "#["),
    "mysql": (_MYSQL, False, "", "[."),
    "mariadb": (_MYSQL, False, "", "[."),
    "sqlite": (_SQLITE, False, "?:@", "#"),
}
_DEFAULT_RULES = _RULES["postgresql"]

_KEPT = frozenset({"name", "backtick", "bracket"})  # quoted identifiers: verbatim
_END = {kind: f"{kind}_end" for kind in ("string", "escaped", "dquoted", *_KEPT)}
_COMMENT_MARK = re.compile(r"/\*|\*/")
# Where a literal, comment or quoted name may start, found in C: none in the text (as in
# many parameterized statements) means nothing to replace, but perhaps TRUE/FALSE; between
# two literals, the pattern then matches from the next one (it alone decides). Letters are
# not in it: a text with TRUE/FALSE is read by the pattern alone, and N'', E''... are found
# by their quote.
_CANDIDATE = re.compile(r"[-/'\"`#\[$.0-9]")
_WORD_REST = re.compile(r"[\w$]*")
_DIGITS = re.compile(r"[0-9]*")
_PREFIXES = frozenset("EeNnBbXx")
_DIGIT = frozenset("0123456789")
_IN_LIST = re.compile(r"(\bIN\s*\()\s*\x00(?:\s*,\s*\x00)+\s*\)", re.I)


def sanitize(text: str, system: str = "") -> str | None:
    """``text`` with its literals replaced by ``?`` and its comments removed, as the SQL of
    a ``system`` database (a ``db.system.name``); ``None`` when that cannot be done safely.
    ``text`` itself when there was nothing to replace."""
    pattern, nested, placeholder_marks, inert = _RULES.get(system, _DEFAULT_RULES)
    window = text[:_WINDOW]
    lowered = window.lower()
    booleans = "true" in lowered or "false" in lowered
    if not booleans and _CANDIDATE.search(window) is None:
        return window
    cut = len(window) < len(text)
    out: list[str] = []
    copied = 0  # window[:copied] is in ``out``
    pos = 0
    match = pattern.match
    candidate = None if booleans else _CANDIDATE.search
    reads_strings = pattern is _SQLITE
    lists: list[int | bool] = [-1, False, -1]  # _sqlite_string's cache of the list it is in
    while True:
        if candidate is not None:
            # ``pos`` ends a token; past it, a name may have been skipped up to ``at``.
            found = candidate(window, pos)
            if found is None:
                break
            at = found.start()
            char = window[at]
            following = window[at + 1:at + 2]
            if char in inert or (char == "-" and following != "-") or (
                    char == "/" and following != "*") or (
                    char == "." and following not in _DIGIT):
                pos = at + 1  # an operator, a qualified name's dot...: no need to match
                continue
            if at > pos and char in "0123456789$":
                previous = window[at - 1]
                if previous.isalnum() or previous == "_":
                    pos = _WORD_REST.match(window, at).end()  # t1, x$1: inside a name
                    continue
                if previous in placeholder_marks:
                    pos = _DIGITS.match(window, at).end()  # ?1, :1, @1: a placeholder
                    continue
            elif char == "'" and at > pos and window[at - 1] in _PREFIXES and (
                    at - 1 == pos or not (window[at - 2].isalnum() or window[at - 2] in "_$")):
                at -= 1  # the N of N'...', read by the pattern
            pos = at
        found = match(window, pos)
        if found is None:  # a character the dialect's reading did not foresee
            return None
        kind = found.lastgroup
        if kind == "skip":  # the window's end
            break
        start, pos = found.span(kind)
        if kind in _KEPT:  # a quoted identifier: stays as written
            if found.group(_END[kind]) is None:
                return _open(out, window, copied, start, cut)
            if not (reads_strings and kind == "name"
                    and _sqlite_string(window, start, pos, lists)):
                continue
            # (a "..." SQLite takes for a string: replaced as the literal it is)
        if kind == "dollar":
            close = window.find(found.group(kind), pos)
            if close < 0:
                return _open(out, window, copied, start, cut)
            pos = close + pos - start
        elif kind == "block":
            pos = _block_end(window, start, nested)
            if pos < 0:
                return _open(out, window, copied, start, cut)
        elif kind in _END and found.group(_END[kind]) is None:
            return _open(out, window, copied, start, cut)
        out.append(window[copied:start])
        if kind == "line":
            pass
        elif kind != "block":
            out.append(_LITERAL)
        elif start > 0 and pos < len(window) and not (
                window[start - 1].isspace() or window[pos].isspace()):
            out.append(" ")  # SELECT/**/1 must not become SELECT?
        copied = pos
    if not out:
        return window  # nothing replaced: the same object, unless the window cut it
    out.append(window[copied:])
    return _finish(out)


# ----- SQLite's double-quoted strings --------------------------------------------------
#
# SQLite reads "x" as an identifier when a column or table of that name exists and as a
# string when none does (its "double-quoted string literal" misfeature, on in the builds
# Python ships), so ``WHERE email = "a@example.com"`` runs, and its value would be exported
# as a name. Which it is depends on the schema, which we do not see: a "..." is taken for a
# string where SQL expects a value (after a comparison or arithmetic operator, after
# IS/LIKE/THEN/DEFAULT..., or as an item of a VALUES or IN list), and kept as a name
# elsewhere (a column list, a qualified name ``"t"."x"``, after SELECT/FROM/SET...). Where
# a column is compared with a column (``"a" = "b"``) the second is replaced too: a name
# lost, never a value shown.

_VALUE_OPERATORS = frozenset("=<>!+-*/%|")
_VALUE_WORDS = frozenset({"IS", "NOT", "LIKE", "GLOB", "REGEXP", "MATCH", "THEN", "ELSE",
                          "WHEN", "BETWEEN", "ESCAPE", "DEFAULT"})
_VALUE_LISTS = frozenset({"VALUES", "IN"})
_LAST_WORD = re.compile(r"(\w+)\s*$")
_NEXT_ROW = re.compile(r"\)\s*,\s*$")


def _sqlite_string(window: str, start: int, end: int, lists: list[int | bool]) -> bool:
    """Whether the "..." at ``window[start:end]`` stands where SQL expects a value.
    ``lists`` caches the list the previous one was in: (its "(", a value list?, where the
    search for a way out of it stopped), so each list is looked up once."""
    if window[end:end + 1] == "." or window[start - 1:start] == ".":
        return False  # a qualified name
    before = window[max(0, start - 64):start].rstrip()
    if not before:
        return False
    last = before[-1]
    if last in _VALUE_OPERATORS:
        return True
    if last not in "(,":
        word = _LAST_WORD.search(before)
        return word is not None and word.group(1).upper() in _VALUE_WORDS
    opener, values, checked = lists
    if not (checked >= 0 and window.find(")", checked, start) < 0  # type: ignore[arg-type]
            and window.find("(", checked, start) < 0):  # type: ignore[arg-type]
        previous_values = values and opener >= 0
        opener = _opening_paren(window, start)
        head = window[max(0, opener - 64):opener] if opener >= 0 else ""
        word = _LAST_WORD.search(head)
        values = bool(word is not None and word.group(1).upper() in _VALUE_LISTS) or (
            bool(previous_values) and _NEXT_ROW.search(head) is not None)  # VALUES (..), (..)
        lists[0], lists[1] = opener, values
    lists[2] = end
    return bool(values)


def _opening_paren(window: str, start: int) -> int:
    """The index of the "(" whose list ``start`` is in, or -1."""
    depth = 0
    for index in range(start - 1, -1, -1):
        char = window[index]
        if char == ")":
            depth += 1
        elif char == "(":
            if depth == 0:
                return index
            depth -= 1
    return -1


def _open(out: list[str], window: str, copied: int, start: int, cut: bool) -> str | None:
    # Something opened at ``start`` is not closed in the window. If the window cut the
    # statement, it closes further on: keep what came before. Otherwise our reading of the
    # dialect failed somewhere, and nothing of the text can be trusted.
    if not cut:
        return None
    out.append(window[copied:start])
    out.append(_LITERAL)
    return _finish(out)


def _finish(out: list[str]) -> str:
    text = "".join(out)
    if _LITERAL + "," in text or _LITERAL + " ," in text:  # perhaps an IN list
        text = _IN_LIST.sub(r"\1" + _LITERAL + ")", text)
    return text.replace(_LITERAL, "?").strip()


def _block_end(text: str, start: int, nested: bool) -> int:
    """The index after the ``*/`` closing the comment opened at ``start``, or -1."""
    if not nested:
        close = text.find("*/", start + 2)
        return -1 if close < 0 else close + 2
    depth = 0  # PostgreSQL: /* a /* b */ still a comment */
    for mark in _COMMENT_MARK.finditer(text, start):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return -1


# ----- more than one table? ----------------------------------------------------------------
#
# The conventions want db.collection.name only when the call works on one collection. This
# reads sanitized text (no literals, no comments, so every word is SQL) as a token stream and
# names the tables it finds after FROM (in a SELECT/DELETE/UPDATE, not EXTRACT(x FROM y)),
# JOIN, USING, INTO, TABLE, REFERENCES, a statement's UPDATE/TRUNCATE, and after the commas of
# a FROM/USING list. A name directly followed by "(" after FROM is a function
# (generate_series(...)), not a table.

_TOKEN = re.compile(r'"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[\w$]+|[@:][\w$@.]*|[(),;.]')
# Substrings without which (but one) no second table can be named: a substring test is
# cheap, and one inside a name (UPDATED_AT) only costs the walk.
_TABLE_MARKS = ("FROM", "JOIN", "USING", "INTO", "TABLE", "REFERENCES", "UPDATE", "TRUNCATE",
                "DROP", ";")
_LISTS = frozenset({"FROM", "USING", "UPDATE", "TRUNCATE", "DROP"})  # may name a, b, c
_QUERIES = frozenset({"SELECT", "DELETE", "UPDATE"})
_JOINS = frozenset({"JOIN", "STRAIGHT_JOIN"})
_NOT_NAMES = frozenset({
    "SELECT", "VALUES", "SET", "WHERE", "LATERAL", "UNNEST", "ONLY", "IF", "NOT", "EXISTS",
    "TABLE", "TEMP", "TEMPORARY", "UNLOGGED", "OUTFILE", "DUMPFILE", "LOW_PRIORITY",
    "IGNORE", "DEFAULT", "OR", "ON", "AS", "WITH"})
_SKIPPED_BEFORE_NAME = frozenset({"ONLY", "LATERAL", "IF", "NOT", "EXISTS", "TABLE", "TEMP",
                                  "TEMPORARY", "UNLOGGED", "LOW_PRIORITY", "IGNORE"})
_LIST_ENDS = frozenset({
    "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FETCH", "FOR", "WINDOW", "UNION",
    "INTERSECT", "EXCEPT", "MINUS", "RETURNING", "ON", "USING", "SET", "VALUES", "SELECT",
    "INTO", "JOIN", "STRAIGHT_JOIN", "INNER", "LEFT", "RIGHT", "FULL", "CROSS", "NATURAL",
    "OUTER", "QUALIFY", "PARTITION", "TABLESAMPLE", "LOCK", "PROCEDURE", "CASCADE",
    "RESTRICT", "RESTART", "CONTINUE"})


def names_other_tables(text: str, collection: str) -> bool:
    """True when the sanitized ``text`` names a table other than ``collection`` (compared
    case-insensitively, as written: ``public.t`` and ``t`` differ)."""
    upper = text[:_WALK].upper()
    marks = [(upper.find(mark), mark) for mark in _TABLE_MARKS if mark in upper]
    if len(marks) == 1 and upper.count(marks[0][1]) == 1 and not (
            marks[0][1] in _LISTS and "," in upper[marks[0][0]:]):
        return False  # one word that names a table, and no list after it: the parse's table
    own = collection.lower()
    return any(name.lower() != own for name in _table_names(text))


def _table_names(text: str) -> Iterator[str]:
    tokens = _TOKEN.findall(text, 0, _WALK)
    count = len(tokens)
    queries = [False]  # per parenthesis depth: a SELECT/DELETE/UPDATE was seen there
    listing = [False]  # per depth: inside a FROM/USING/DROP/TRUNCATE list of tables
    statement_start = True
    previous = ""
    i = 0
    while i < count:
        token = tokens[i]
        word = token.upper()
        i += 1
        name: str | None = None
        if token == "(":
            queries.append(False)
            listing.append(False)
        elif token == ")":
            if len(queries) > 1:
                queries.pop()
                listing.pop()
        elif token == ";":
            queries, listing, statement_start = [False], [False], True
        elif token == ",":
            if listing[-1]:
                name, i = _name(tokens, i, function_possible=True)
        elif statement_start:
            statement_start = False
            queries[-1] = word in _QUERIES
            if word in ("UPDATE", "TRUNCATE"):
                name, i = _name(tokens, i, function_possible=False)
                listing[-1] = True  # UPDATE a, b SET (MySQL), TRUNCATE a, b
            elif word == "DROP":
                listing[-1] = True
        elif word in _QUERIES:
            queries[-1] = True
            listing[-1] = False
        elif word == "FROM":
            if queries[-1] and previous != "DISTINCT":  # not a IS DISTINCT FROM b
                name, i = _name(tokens, i, function_possible=True)
                listing[-1] = True
        elif word in _JOINS:
            name, i = _name(tokens, i, function_possible=True)
        elif word == "USING":
            if i < count and tokens[i] != "(":  # not JOIN ... USING (column)
                name, i = _name(tokens, i, function_possible=True)
                listing[-1] = True
        elif word in ("INTO", "TABLE", "REFERENCES"):
            name, i = _name(tokens, i, function_possible=False)
        elif word in _LIST_ENDS:
            listing[-1] = False
        if name is not None:
            yield name
        previous = word


def _name(tokens: list[str], i: int, *, function_possible: bool) -> tuple[str | None, int]:
    """The (schema-qualified) name starting at ``tokens[i]``, and the index after it."""
    count = len(tokens)
    while i < count and tokens[i].upper() in _SKIPPED_BEFORE_NAME:
        i += 1
    if i >= count or not _is_name(tokens[i]):
        return None, i
    parts = [tokens[i]]
    i += 1
    while len(parts) < 3 and i + 1 < count and tokens[i] == "." and _is_name(tokens[i + 1]):
        parts.append(tokens[i + 1])
        i += 2
    if function_possible and i < count and tokens[i] == "(":
        return None, i  # FROM generate_series(...): a function, not a table
    return ".".join(parts), i


def _is_name(token: str) -> bool:
    first = token[0]
    if first in "\"`[":
        return True
    return (first == "$" or first == "_" or first.isalnum()) and token.upper() not in _NOT_NAMES
