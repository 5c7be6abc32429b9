"""What real databases add to a request: schema introspection (cold: a fresh engine's first read;
cached: within schema_refresh_s) and read-only execution (check + transpile + run), per engine, on
the shop fixture of tests/test_databases.py (sqlite file, DuckDB file, PostgreSQL 127.0.0.1 server
started from the Debian binaries as in the tests). Medians of --repeats runs; JSON to bench/results/.

    .venv/bin/python bench/db_latency.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUERY = ("SELECT c.country, COUNT(*), SUM(o.amount) FROM customers AS c JOIN orders AS o "
         "ON o.customer_id = c.id GROUP BY c.country ORDER BY c.country")


def _ms(samples: list[float]) -> dict:
    return {"median_ms": round(statistics.median(samples) * 1000, 3),
            "p95_ms": round(sorted(samples)[int(0.95 * (len(samples) - 1))] * 1000, 3)}


def measure(name: str, url: str, password_env: str | None, env: dict, repeats: int) -> dict:
    from sqlfoundry.databases import Database, DatabaseConfig, run_candidate

    config = DatabaseConfig(url=url, password_env=password_env, schema_refresh_s=3600)
    cold, cached, run = [], [], []
    for _ in range(repeats):
        db = Database(name, config, env)  # a new engine: connect + introspect
        started = time.perf_counter()
        db.schema()
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        tables = db.schema().tables
        cached.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = run_candidate(db, QUERY, tables=tables)
        run.append(time.perf_counter() - started)
        assert result.error is None and result.row_count == 3, result.error
        db.dispose()
    return {"introspection_cold": _ms(cold), "introspection_cached": _ms(cached), "execution": _ms(run)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    from conftest import _free_port
    from pgserver import start
    from shopdb import READER_PASSWORD, build_duckdb, build_postgres, build_sqlite

    folder = Path(tempfile.mkdtemp(prefix="db-latency-"))
    server = start(_free_port())
    try:
        targets = {"sqlite": (build_sqlite(folder / "shop.db"), None, {}),
                   "duckdb": (build_duckdb(folder / "shop.duckdb"), None, {}),
                   "postgres": (build_postgres(server), "PW", {"PW": READER_PASSWORD})}
        results = {engine: measure(engine, *target, args.repeats) for engine, target in targets.items()}
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    out = ROOT / "bench/results/db_latency.json"
    out.write_text(json.dumps({"repeats": args.repeats, "query": QUERY, "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
