"""Table-driven tests of `valid` = parses, one read-only statement, side-effect-free functions only."""

import pytest

from sqlfoundry.sql.functions import SAFE_NAMES
from sqlfoundry.sql.schema import parse_schema
from sqlfoundry.sql.validate import check_query, check_read_only

HEAD = parse_schema("CREATE TABLE head (name VARCHAR, age INTEGER, born VARCHAR)")


@pytest.mark.parametrize(
    "sql, dialect, reason, detail",
    [
        # functions that load code, read or write files, sleep, allocate at will or change state
        ("SELECT name FROM head WHERE load_extension('/tmp/x.so') IS NULL", "sqlite", "unsafe_function",
         "load_extension()"),
        ("SELECT zeroblob(1000000000)", "sqlite", "unsafe_function", "zeroblob()"),
        ("SELECT replace(hex(zeroblob(1000000)), '00', 'xx')", "sqlite", "unsafe_function", "zeroblob()"),
        ("SELECT hex(randomblob(100))", "sqlite", "unsafe_function", "randomblob()"),
        ("SELECT readfile('/etc/passwd')", "sqlite", "unsafe_function", "readfile()"),
        ("SELECT writefile('/tmp/x', name) FROM head", "sqlite", "unsafe_function", "writefile()"),
        ("SELECT edit(name) FROM head", "sqlite", "unsafe_function", "edit()"),
        ("SELECT fts3_tokenizer('simple')", "sqlite", "unsafe_function", "fts3_tokenizer()"),
        ("SELECT * FROM read_csv('/etc/passwd')", "sqlite", "unsafe_function", "read_csv()"),  # typed, not allowed
        ("SELECT pg_sleep(100000) FROM head", "postgres", "unsafe_function", "pg_sleep()"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres", "unsafe_function", "pg_read_file()"),
        ("SELECT pg_terminate_backend(42)", "postgres", "unsafe_function", "pg_terminate_backend()"),
        ("SELECT set_config('search_path', 'evil', false)", "postgres", "unsafe_function", "set_config()"),
        ("SELECT lo_import('/etc/passwd')", "postgres", "unsafe_function", "lo_import()"),
        ("SELECT * FROM dblink('host=x', 'DELETE FROM head') AS t(a INT)", "postgres", "unsafe_function",
         "dblink()"),
        ("SELECT nextval('ids')", "postgres", "unsafe_function", "nextval()"),
        ("SELECT setval('ids', 1)", "postgres", "unsafe_function", "setval()"),
        ("SELECT txid_current()", "postgres", "unsafe_function", "txid_current()"),
        ("SELECT pg_advisory_lock(1)", "postgres", "unsafe_function", "pg_advisory_lock()"),
        ("SELECT query_to_xml('DELETE FROM head', true, true, '')", "postgres", "unsafe_function",
         "query_to_xml()"),
        ("SELECT pg_catalog.pg_sleep(1)", "postgres", "unsafe_function", "schema-qualified"),
        ("SELECT public.lower(name) FROM head", "postgres", "unsafe_function", "public.lower() is schema-qualified"),
        ("SELECT sleep(10)", "mysql", "unsafe_function", "sleep()"),
        ("SELECT benchmark(1000000, md5('x'))", "mysql", "unsafe_function", "benchmark()"),
        ("SELECT made_up(name) FROM head", "sqlite", "unsafe_function", "made_up() is not on the sqlite allow-list"),
        # locking and INTO clauses: a SELECT that writes
        ("SELECT * FROM head FOR UPDATE", "postgres", "not_read_only", "locking clause FOR UPDATE"),
        ("SELECT * FROM head FOR SHARE", "postgres", "not_read_only", "locking clause FOR SHARE"),
        ("SELECT * FROM head FOR NO KEY UPDATE NOWAIT", "postgres", "not_read_only", "FOR NO KEY UPDATE"),
        ("SELECT * FROM head LOCK IN SHARE MODE", "mysql", "not_read_only", "locking clause"),
        ("SELECT * INTO copy FROM head", "postgres", "not_read_only", "SELECT ... INTO copy"),
        ("SELECT name INTO @v FROM head LIMIT 1", "mysql", "not_read_only", "SELECT ... INTO @v"),
        # queries a text-to-SQL model writes every day stay valid
        ("SELECT COUNT(*), AVG(age), MAX(age), MIN(age), SUM(age) FROM head", "sqlite", None, ""),
        ("SELECT name FROM head WHERE name LIKE 'A%' AND name NOT LIKE '%z'", "sqlite", None, ""),
        ("SELECT CASE WHEN age > 56 THEN 'old' ELSE 'young' END FROM head", "sqlite", None, ""),
        ("SELECT CAST(age AS REAL) / 2, ROUND(age, 1), abs(age) FROM head", "sqlite", None, ""),
        ("SELECT strftime('%Y', born), date(born), datetime(born, '+1 day'), julianday(born) FROM head", "sqlite",
         None, ""),
        ("SELECT lower(name), upper(name), substr(name, 1, 3), length(name), instr(name, 'a') FROM head", "sqlite",
         None, ""),
        ("SELECT printf('%s is %d', name, age), ifnull(age, 0), iif(age > 56, 1, 0), coalesce(age, 0) FROM head",
         "sqlite", None, ""),
        ("SELECT group_concat(name), total(age), typeof(age) FROM head GROUP BY age HAVING COUNT(*) > 1", "sqlite",
         None, ""),
        ("SELECT name FROM head WHERE age IN (SELECT age FROM head WHERE age > 50)", "sqlite", None, ""),
        ("WITH old AS (SELECT * FROM head WHERE age > 56) SELECT COUNT(*) FROM old", "sqlite", None, ""),
        ("SELECT name, RANK() OVER (ORDER BY age DESC), row_number() OVER () FROM head", "sqlite", None, ""),
        ("SELECT name FROM head UNION SELECT born FROM head ORDER BY 1 LIMIT 3", "sqlite", None, ""),
        ("SELECT date_trunc('year', now()), extract(year FROM now()), to_char(now(), 'YYYY')", "postgres", None, ""),
        ("SELECT string_agg(name, ', '), percentile_cont(0.5) WITHIN GROUP (ORDER BY age) FROM head", "postgres",
         None, ""),
        ("SELECT name, age::int, greatest(age, 1), split_part(name, ' ', 1) FROM head", "postgres", None, ""),
    ],
)
def test_read_only_check(sql, dialect, reason, detail):
    checked = check_read_only(sql, dialect)
    assert (checked.ok, checked.reason) == (reason is None, reason), checked
    assert detail in checked.detail


@pytest.mark.parametrize("dialect", sorted(SAFE_NAMES))
def test_every_listed_function_is_allowed(dialect):
    """The named lists and the typed-node list agree: each name on a dialect's list, in whatever typed
    node sqlglot parses it into, passes (for some argument count)."""
    refused = [name for name in sorted(SAFE_NAMES[dialect]) if name.isidentifier() and not any(
        check_read_only(f"SELECT {name}({args})", dialect).ok for args in ("", "x", "x, 1", "x, 1, 2"))]
    assert refused == []


@pytest.mark.parametrize("sql, reason", [
    ("SELECT name FROM head WHERE load_extension('/tmp/x.so') IS NULL", "unsafe_function"),
    ("SELECT name FROM head FOR UPDATE", "not_read_only"),
    ("SELECT lower(name) FROM head WHERE age > 56", None),
])
def test_check_query_applies_the_read_only_check(sql, reason):
    """Serving's `valid` and evaluation both go through check_query: it must refuse what check_read_only does."""
    checked = check_query(sql, HEAD)
    assert (checked.ok, checked.reason) == (reason is None, reason), checked


MUSIC = parse_schema("CREATE TABLE artist (artist_name TEXT, country TEXT, id INTEGER); "
                     "CREATE TABLE song (song_name TEXT, rating INTEGER, artist_id INTEGER, country TEXT)")


@pytest.mark.parametrize("sql, problem", [
    # a column of the schema, but not of the tables the query reads: sqlite's "no such column"
    ("SELECT artist_name FROM artist WHERE rating > 9", "rating"),
    ("SELECT T1.rating FROM artist AS T1", "rating"),
    ("SELECT artist_name FROM artist WHERE id IN (SELECT artist_id FROM song WHERE artist_name = 'x')", None),
    ("SELECT country FROM artist JOIN song ON artist.id = song.artist_id", "country"),  # ambiguous
    # what the qualifier must accept: joins, aliases, CTEs, correlated subqueries, set operations
    ("SELECT T1.artist_name FROM artist AS T1 JOIN song AS T2 ON T1.id = T2.artist_id WHERE T2.rating > 9", None),
    ("SELECT count(*) AS n FROM artist ORDER BY n", None),
    ('SELECT artist_name FROM artist WHERE country = "France"', None),  # sqlite's double-quoted string
    # ... even when another table has a column of that name: sqlite resolves it in scope first
    ('SELECT artist_name FROM artist WHERE country = "rating"', None),
    ('SELECT T1.artist_name FROM artist AS T1 JOIN song AS T2 ON T1.id = T2.artist_id WHERE T1.country = "rating"',
     None),
    ("WITH best AS (SELECT artist_id, max(rating) AS r FROM song GROUP BY artist_id) "
     "SELECT artist_name, r FROM artist JOIN best ON best.artist_id = artist.id", None),
    ("SELECT artist_name FROM artist WHERE id IN (SELECT id FROM song WHERE rating > 5)", None),  # outer id
    ("SELECT a.artist_name FROM artist a WHERE EXISTS (SELECT 1 FROM song s WHERE s.artist_id = a.id)", None),
    ("SELECT artist_name FROM artist UNION SELECT song_name FROM song", None),
    ("SELECT * FROM artist JOIN song ON artist.id = song.artist_id", None),
    ("SELECT ARTIST_NAME FROM Artist WHERE \"Country\" = 'France'", None),  # any case, as sqlite
])
def test_columns_must_belong_to_the_tables_the_query_reads(sql, problem):
    checked = check_query(sql, MUSIC)
    assert checked.ok is (problem is None), checked
    if problem:
        assert checked.reason == "unknown_column" and f"no column named {problem} in the table" in checked.detail
