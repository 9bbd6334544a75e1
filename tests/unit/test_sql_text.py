"""``_sql_text``: the query text we export has no literal left in it, keeps the SQL around
them (identifiers, keywords, placeholders) as written, and is dropped rather than guessed
when a literal cannot be delimited; ``names_other_tables`` tells a statement on one table
from one on several."""

from __future__ import annotations

import random

import pytest

from telemetryflow_bootstrap.instrumentation import _sql_text
from telemetryflow_bootstrap.instrumentation._sql_text import names_other_tables, sanitize

PG, MY, LITE = "postgresql", "mysql", "sqlite"


@pytest.mark.parametrize(("statement", "expected"), [
    # where SQL expects a value, SQLite reads a "..." naming no column as a string
    ('SELECT * FROM users WHERE email = "a@example.com"', "SELECT * FROM users WHERE email = ?"),
    ('UPDATE t SET name = "bob", n = n + "1" WHERE id = ?',
     "UPDATE t SET name = ?, n = n + ? WHERE id = ?"),
    ('SELECT a FROM t WHERE b LIKE "%x%" ESCAPE "!" AND c IS NOT "y" AND d <> "z"',
     "SELECT a FROM t WHERE b LIKE ? ESCAPE ? AND c IS NOT ? AND d <> ?"),
    ('INSERT INTO t ("a", "b") VALUES ("x", "y"), ("z", "w")',
     'INSERT INTO t ("a", "b") VALUES (?, ?), (?, ?)'),
    ('SELECT * FROM t WHERE "t"."x" = "secret" AND y IN ("a", "b")',
     'SELECT * FROM t WHERE "t"."x" = ? AND y IN (?)'),
    ('SELECT CASE "s" WHEN "on" THEN "yes" ELSE "no" END FROM t',
     'SELECT CASE "s" WHEN ? THEN ? ELSE ? END FROM t'),
    ('CREATE TABLE t ("id" INTEGER, name TEXT DEFAULT "anon")',
     'CREATE TABLE t ("id" INTEGER, name TEXT DEFAULT ?)'),
    # where it is a name, it stays one
    ('UPDATE "t" SET "name" = ? WHERE "id" = ?', 'UPDATE "t" SET "name" = ? WHERE "id" = ?'),
    ('SELECT "a", count("b") FROM "t" JOIN "u" ON "t"."k" = "u"."k" GROUP BY "a" ORDER BY "b"',
     'SELECT "a", count("b") FROM "t" JOIN "u" ON "t"."k" = "u"."k" GROUP BY "a" ORDER BY "b"'),
    ('SELECT * FROM t WHERE x IN (SELECT "y" FROM u)',
     'SELECT * FROM t WHERE x IN (SELECT "y" FROM u)'),
])
def test_sqlite_double_quoted_strings_are_values(statement, expected):
    """SQLite's double-quoted string literals (a "..." that names no column is a string):
    one written where SQL expects a value is replaced, so ``WHERE email = "a@x"`` exports no
    address; quoted names stay. Only SQLite reads them so."""
    assert sanitize(statement, LITE) == expected
    assert sanitize('SELECT * FROM t WHERE a = "x"', PG) == 'SELECT * FROM t WHERE a = "x"'


def test_sqlite_value_lists_are_looked_up_once_each(monkeypatch):
    """A long VALUES list of "..." strings: each item is replaced, and the list's "(" is
    searched for once, not once per item (a quadratic walk on a 32k statement)."""
    items = ", ".join(f'"v{i}"' for i in range(3000))
    calls = []
    original = _sql_text._opening_paren
    monkeypatch.setattr(_sql_text, "_opening_paren",
                        lambda window, start: calls.append(start) or original(window, start))
    assert sanitize(f"INSERT INTO t VALUES ({items})", LITE) \
        == "INSERT INTO t VALUES (" + ", ".join(["?"] * 3000) + ")"
    assert len(calls) == 1


@pytest.mark.parametrize(("system", "statement", "expected"), [
    # string literals, with each dialect's escapes
    (LITE, "SELECT ssn FROM users WHERE email = 'a@example.com'",
     "SELECT ssn FROM users WHERE email = ?"),
    (PG, "SELECT 'it''s', '' FROM t", "SELECT ?, ? FROM t"),
    (MY, "SELECT 'it\\'s', 'a\\\\', 'b''c' FROM t", "SELECT ?, ?, ? FROM t"),
    (PG, "SELECT E'it\\'s', e'\\\\' FROM t", "SELECT ?, ? FROM t"),
    (PG, "SELECT 'C:\\', 'next' FROM t", "SELECT ?, ? FROM t"),  # no backslash escapes
    (LITE, "SELECT 'C:\\', 'next' FROM t", "SELECT ?, ? FROM t"),
    (PG, "SELECT N'x', X'1f', B'0101', U&'d\\0061t' FROM t", "SELECT ?, ?, ?, U&? FROM t"),
    (MY, "SELECT _utf8mb4'x', x'1F', 0x1F, b'01', 0b01", "SELECT _utf8mb4?, ?, ?, ?, ?"),
    (LITE, "INSERT INTO blobs VALUES (X'CAFE')", "INSERT INTO blobs VALUES (?)"),
    # PostgreSQL dollar quoting
    (PG, "CREATE FUNCTION f() RETURNS int AS $$ SELECT 'x' $$ LANGUAGE sql",
     "CREATE FUNCTION f() RETURNS int AS ? LANGUAGE sql"),
    (PG, "SELECT $tag$ a $other$ 'b' $tag$, $1", "SELECT ?, $1"),
    # double quotes: identifiers, except MySQL's strings
    (PG, 'SELECT "Secret ""Col""" FROM "Order Lines"',
     'SELECT "Secret ""Col""" FROM "Order Lines"'),
    (MY, 'SELECT * FROM t WHERE name = "alice" AND pw = "x\\"y"',
     "SELECT * FROM t WHERE name = ? AND pw = ?"),
    (MY, "SELECT `col``1`, `t2`.`a` FROM `t2`", "SELECT `col``1`, `t2`.`a` FROM `t2`"),
    (LITE, "SELECT [col 1] FROM [my table] WHERE x = 1",
     "SELECT [col 1] FROM [my table] WHERE x = ?"),
    # numbers, not the digits of names or placeholders
    (PG, "SELECT t1.col_2, 42, -7, 3.14, .5, 1e10, 2.5E-3, 1_000, 0x1F, 0o17, 0b1 FROM t1",
     "SELECT t1.col_2, ?, -?, ?, ?, ?, ?, ?, ?, ?, ? FROM t1"),
    (PG, "SELECT * FROM t WHERE a = $1 AND b = $12 AND c::int4 = 5",
     "SELECT * FROM t WHERE a = $1 AND b = $12 AND c::int4 = ?"),
    (PG, "SELECT * FROM t WHERE a = %s AND b = %(user_2)s AND c = %% AND d = 3",
     "SELECT * FROM t WHERE a = %s AND b = %(user_2)s AND c = %% AND d = ?"),
    (LITE, "SELECT * FROM t WHERE a = ?1 AND b = :2 AND c = :name AND d = $x AND e = @y AND f = 9",
     "SELECT * FROM t WHERE a = ?1 AND b = :2 AND c = :name AND d = $x AND e = @y AND f = ?"),
    (MY, "SELECT 1st_col, t.2nd, .5 FROM 2nd_table LIMIT 10",
     "SELECT 1st_col, t.2nd, .? FROM 2nd_table LIMIT ?"),
    # booleans are literals; NULL is not
    (PG, "UPDATE t SET a = TRUE, b = false, c = NULL", "UPDATE t SET a = ?, b = ?, c = NULL"),
    # comments go, and quotes inside them open nothing
    (PG, "SELECT a -- it's mine\nFROM t WHERE b = 'x'", "SELECT a \nFROM t WHERE b = ?"),
    (PG, "/* owner's query */ SELECT 1", "SELECT ?"),
    (PG, "SELECT/*+ hint */1", "SELECT ?"),
    (PG, "SELECT '-- not a comment', 'a /* b' FROM t", "SELECT ?, ? FROM t"),
    (PG, "SELECT 1 /* a /* nested */ still 'secret' */ FROM t", "SELECT ?  FROM t"),
    (MY, "SELECT 1 # pw=hunter2\nFROM t", "SELECT ? \nFROM t"),
    (PG, "SELECT 1 /*traceparent='00-abc-def-01'*/", "SELECT ?"),
    # IN lists of literals collapse; lists of placeholders stay as written
    (PG, "SELECT * FROM t WHERE id IN (1, 2, 3) AND s NOT in ('a','b')",
     "SELECT * FROM t WHERE id IN (?) AND s NOT in (?)"),
    (LITE, "SELECT * FROM t WHERE id IN (?, ?, ?)", "SELECT * FROM t WHERE id IN (?, ?, ?)"),
    (PG, "SELECT * FROM t WHERE id IN (%s, %s) OR id IN (1, %s)",
     "SELECT * FROM t WHERE id IN (%s, %s) OR id IN (?, %s)"),
    # values and interval/date literals
    (LITE, "INSERT INTO users VALUES ('a@example.com', '123-45-6789')",
     "INSERT INTO users VALUES (?, ?)"),
    (PG, "SELECT now() - INTERVAL '1 day', DATE '2024-01-31'", "SELECT now() - INTERVAL ?, DATE ?"),
    (MY, "SELECT NOW() - INTERVAL 5 DAY", "SELECT NOW() - INTERVAL ? DAY"),
    # unknown systems get the PostgreSQL rules
    ("other_sql", "SELECT 'x', \"y\" FROM t", 'SELECT ?, "y" FROM t'),
])
def test_sanitize_replaces_every_literal_and_keeps_the_rest(system, statement, expected):
    """Each kind of literal becomes ``?``, comments go, IN lists of literals collapse, and
    identifiers, keywords and placeholders stay as written."""
    assert sanitize(statement, system) == expected


@pytest.mark.parametrize(("system", "statement"), [
    (PG, "SELECT 'unterminated"),
    (PG, "SELECT * FROM t WHERE a = 'x AND b = 42"),
    (PG, 'SELECT "open identifier'),
    (PG, "SELECT 1 /* open comment 'secret'"),
    (PG, "SELECT 1 /* nested /* */ still open"),
    (PG, "SELECT $$ open body"),
    (PG, "SELECT E'escaped quote \\'"),
    (MY, "SELECT 'it\\'s open"),
    (MY, 'SELECT "open string'),
    (MY, "SELECT `open name"),
    (LITE, "SELECT [open name"),
    (LITE, "SELECT x'12"),
])
def test_an_open_literal_drops_the_text(system, statement):
    """A literal, quoted name or comment that never closes: no text at all (the dialect was
    misread somewhere, so no part of it can be trusted), and no exception."""
    assert sanitize(statement, system) is None


def test_text_without_literals_comes_back_as_the_same_object():
    """A parameterized statement costs no copy: the very string comes back."""
    statement = "SELECT id, name FROM users WHERE email = %s AND org = %(org)s"
    assert sanitize(statement, PG) is statement


def test_a_huge_statement_is_read_up_to_the_window_and_cut_inside_a_literal():
    """A megabyte of inline values: only the window is read, a literal the window cuts
    counts as closed beyond it, and no value survives."""
    rows = ",".join(f"({i}, 'secret-{i}')" for i in range(50_000))
    text = sanitize(f"INSERT INTO bulk (n, s) VALUES {rows}", MY)
    assert text is not None and text.startswith("INSERT INTO bulk (n, s) VALUES (?, ?),(?, ?)")
    assert "secret" not in text and len(text) < _sql_text._WINDOW
    cut_inside = "SELECT '" + "x" * _sql_text._WINDOW
    assert sanitize(cut_inside, PG) == "SELECT ?"


_SECRET = "S3CR3T"
_LITERAL_FORMS = {
    PG: ["'{s}'", "'it''s {s}'", "E'\\'{s}'", "$${s}$$", "$q${s} $$ $q$", "4{n}", "0x{n}",
         "/* {s} 'x */", "-- {s}\n", "/* a /* {s} */ b */"],
    MY: ["'{s}'", "'a\\'{s}'", '"{s}"', '"a\\"{s}"', "4{n}", "0x{n}", "/* {s} */",
         "# {s}\n", "-- {s}\n", "x'{n}'"],
    LITE: ["'{s}'", "'a''{s}'", "X'{n}'", "4{n}", "/* {s} */", "-- {s}\n"],
}
_SQL_PIECES = ["SELECT", "a", ",", "FROM", "t1", "WHERE", "b", "=", "(", ")", "IN", "%s",
               "?", "$1", ":name", '"Quoted Name"', "`tick`", "t.c", "::int4", "||", " ", "\n"]


@pytest.mark.parametrize("system", [PG, MY, LITE])
def test_no_literal_or_comment_content_ever_survives(system):
    """A few thousand statements mixing SQL pieces with literals and comments that hold a
    marker (seeded, so reproducible): the marker never appears in a sanitized text, and
    sanitizing never raises."""
    rng = random.Random(20261127)
    forms = _LITERAL_FORMS[system]
    pieces = [p for p in _SQL_PIECES if not (system == MY and p.startswith('"'))]
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.35:
                parts.append(rng.choice(forms).format(s=_SECRET, n="13579"))
            else:
                parts.append(rng.choice(pieces))
        statement = " ".join(parts)
        text = sanitize(statement, system)
        assert text is None or (_SECRET not in text and "13579" not in text), statement


@pytest.mark.parametrize(("statement", "collection", "several"), [
    ("SELECT * FROM orders o JOIN customers c ON o.cid = c.id", "orders", True),
    ("SELECT * FROM orders", "orders", False),
    ("SELECT * FROM t a JOIN t b ON a.parent = b.id", "t", False),
    ("SELECT * FROM a, b WHERE a.id = b.id", "a", True),
    ("SELECT * FROM a x, LATERAL (SELECT 1) y", "a", False),
    ("SELECT * FROM t WHERE id IN (SELECT tid FROM u)", "t", True),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM t WHERE p = ?)", "t", False),
    ("SELECT (SELECT max(x) FROM u), a FROM t", "t", True),
    ("(SELECT 1 FROM a) UNION (SELECT 2 FROM b)", "a", True),
    ("SELECT EXTRACT(YEAR FROM created) FROM t", "t", False),
    ("SELECT substring(name FROM ? FOR ?), trim(both FROM x) FROM t", "t", False),
    ("SELECT * FROM t WHERE a IS DISTINCT FROM b", "t", False),
    ("SELECT * FROM generate_series(?, ?) g", "generate_series", False),
    ("SELECT * FROM t1 CROSS JOIN generate_series(?, ?)", "t1", False),
    ("SELECT a FROM t ORDER BY a, b LIMIT ?, ?", "t", False),
    ("SELECT a, b FROM public.t GROUP BY a, b", "public.t", False),
    ("SELECT a FROM public . t", "public.t", False),
    ("SELECT a FROM T", "t", False),
    ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?)", "t", False),
    ("INSERT INTO t SELECT * FROM u", "t", True),
    ("INSERT INTO t (a) VALUES (?) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a", "t", False),
    ("INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE a = VALUES(a)", "t", False),
    ("UPDATE t SET a = (SELECT max(a) FROM t)", "t", False),
    ("UPDATE t SET a = u.a FROM u WHERE t.id = u.id", "t", True),
    ("UPDATE a JOIN b ON a.id = b.id SET a.x = b.x", "a", True),
    ("UPDATE a, b SET a.x = b.x WHERE a.id = b.id", "a", True),
    ("UPDATE t SET a = ?, b = ? WHERE c IN (?)", "t", False),
    ("SELECT ?;", "t", False),
    ("DELETE FROM t USING u WHERE t.id = u.id", "t", True),
    ("DELETE FROM t WHERE id = ?", "t", False),
    ("SELECT a INTO @x FROM t", "t", False),
    ("SELECT * INTO TEMP TABLE copy FROM t", "t", True),
    ("CREATE TABLE t AS SELECT * FROM u", "t", True),
    ("CREATE TABLE IF NOT EXISTS t (a int REFERENCES u (id))", "t", True),
    ("CREATE TABLE t (a int, b int)", "t", False),
    ("CREATE TABLE orders(id, cid); CREATE TABLE customers(id)", "orders", True),
    ("CREATE TABLE u_1 (a); INSERT INTO u_1 VALUES (?);", "u_1", False),
    ("DROP TABLE IF EXISTS a, b", "a", True),
    ("TRUNCATE TABLE a, b RESTART IDENTITY", "a", True),
    ("TRUNCATE logs", "logs", False),
    ('SELECT * FROM "Order Lines" JOIN "order lines" ON TRUE', '"Order Lines"', False),
    ("SELECT * FROM `shop`.`items` i JOIN `shop`.`stock` s USING (sku)", "`shop`.`items`", True),
])
def test_names_other_tables(statement, collection, several):
    """Tables after FROM (of a query, not of EXTRACT/IS DISTINCT FROM), JOIN, USING, INTO,
    TABLE, REFERENCES and in FROM lists count; functions in FROM, columns and aliases do not;
    the same table twice is still one."""
    assert names_other_tables(statement, collection) is several


_FRAGMENTS = ["SELECT", " ", "\n", "t1", "x", "E", "N", "b", "X", "'", "''", "\\", '"', "`", "[",
              "]", "--", "/*", "*/", "#", "$", "$1", "$$", "$q$", "?", "?1", ":1", "@2", "%s",
              "1", "0x1F", "1.5", ".", "-", "/", "e5", "_", "é", ",", "(", ")", "IN", "in", "="]


@pytest.mark.parametrize("system", [PG, MY, LITE])
def test_the_fast_scan_reads_like_the_pattern_alone(system):
    """Between literals, the scan jumps from one possible start to the next; a statement
    holding TRUE is read by the pattern alone. Both readings agree on thousands of seeded
    random statements (adjacent fragments: prefixes, digits in names, placeholders, open
    quotes), and neither raises."""
    rng = random.Random(97531)
    for _ in range(4000):
        statement = "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 16)))
        plain = sanitize(statement, system)
        with_boolean = sanitize("TRUE " + statement, system)
        if plain is None:
            assert with_boolean is None, statement
        else:
            assert with_boolean is not None, statement
            assert with_boolean.split() == ["?", *plain.split()], statement
