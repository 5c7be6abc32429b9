"""Spider's hardness levels (easy / medium / hard / extra), counted from SQL components.

Follows the rules of Spider's evaluation script (`eval_hardness`): component1 counts WHERE,
GROUP BY, ORDER BY, LIMIT, joins, OR and LIKE; component2 counts nesting (set operations and
subqueries); "others" counts more than one aggregate, selected column, WHERE condition or GROUP BY
column. Computed on the sqlglot AST instead of Spider's own parser.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

_SET_OPS = (exp.Union, exp.Intersect, exp.Except)


def _main_select(tree: exp.Expression) -> exp.Select | None:
    while isinstance(tree, _SET_OPS):
        tree = tree.this
    return tree if isinstance(tree, exp.Select) else None


def _conditions(where: exp.Expression | None) -> int:
    if where is None:
        return 0
    return len(list(where.this.flatten())) if isinstance(where.this, exp.Connector) else 1


def _counts(select: exp.Select) -> tuple[int, int]:
    """(component1, others) for one SELECT, not descending into subqueries."""
    where = select.args.get("where")
    component1 = sum(bool(select.args.get(key)) for key in ("where", "group", "order", "limit"))
    component1 += len(select.args.get("joins") or [])
    if where is not None:
        component1 += sum(1 for _ in where.find_all(exp.Or)) + sum(1 for _ in where.find_all(exp.Like))
    aggregates = sum(1 for node in select.find_all(exp.AggFunc) if node.parent_select is select)
    others = int(aggregates > 1) + int(len(select.expressions) > 1) + int(_conditions(where) > 1)
    group = select.args.get("group")
    others += int(bool(group) and len(group.expressions) > 1)
    return component1, others


def hardness(sql: str) -> str | None:
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except (SqlglotError, ValueError):
        return None
    select = _main_select(tree)
    if select is None:
        return None
    component1, others = _counts(select)
    nested = sum(1 for _ in tree.find_all(*_SET_OPS))
    nested += sum(1 for node in tree.find_all(exp.Select) if node is not select and not isinstance(node.parent, _SET_OPS)
                  and node.parent_select is not None)
    if component1 <= 1 and others == 0 and nested == 0:
        return "easy"
    if (others <= 2 and component1 <= 1 and nested == 0) or (component1 <= 2 and others < 2 and nested == 0):
        return "medium"
    if ((others > 2 and component1 <= 2 and nested == 0)
            or (2 < component1 <= 3 and others <= 2 and nested == 0)
            or (component1 <= 1 and others == 0 and nested <= 1)):
        return "hard"
    return "extra"
