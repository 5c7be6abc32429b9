"""The static validator on real gold SQL: every query of Spider's training split
(../shared/data/spider-train-dbs/train_gold.sql, 8,563 lines) checked with sql.validate.check_query
against its own database's schema (introspected from the sqlite file, as /v1/query reads it). A gold query that runs on its
database must pass: a refusal there is a false alarm that would throw away right answers (in
voting, `valid`, repair). Refused queries are run on sqlite to tell false alarms from gold that is
itself broken. JSON to bench/results/validator_gold.json.

    .venv/bin/python bench/validator_gold.py
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIDER = ROOT.parent / "shared/data/spider-train-dbs"
OUT = ROOT / "bench/results/validator_gold.json"


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    from sqlfoundry.databases import Database, DatabaseConfig
    from sqlfoundry.sql.validate import check_query

    lines = [line.rsplit("\t", 1) for line in (SPIDER / "train_gold.sql").read_text().splitlines() if "\t" in line]
    tables: dict[str, list] = {}
    refused, reasons = [], Counter()
    started = time.perf_counter()
    for sql, db_id in lines:
        path = SPIDER / "database" / db_id / f"{db_id}.sqlite"
        if db_id not in tables:
            # Introspected as /v1/query does (some of these files' own DDL does not parse).
            db = Database(db_id, DatabaseConfig(url=f"sqlite:///{path}"), {})
            tables[db_id] = db.schema().tables
            db.dispose()
        checked = check_query(sql, tables[db_id])
        if not checked.ok:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                conn.execute(sql).fetchall()
                runs = None
            except sqlite3.Error as err:
                runs = str(err)
            finally:
                conn.close()
            reasons[checked.reason] += 1
            refused.append({"db_id": db_id, "sql": sql, "reason": checked.reason, "detail": checked.detail,
                            "sqlite_error": runs})
    seconds = time.perf_counter() - started
    report = {"data": os.path.relpath(SPIDER / "train_gold.sql", ROOT), "queries": len(lines),
              "databases": len(tables), "accepted": len(lines) - len(refused), "refused": len(refused),
              "refused_by_reason": dict(reasons),
              "false_alarms": sum(r["sqlite_error"] is None for r in refused),
              "checks_per_second": round(len(lines) / seconds), "refusals": refused}
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "refusals"}, indent=2))
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
