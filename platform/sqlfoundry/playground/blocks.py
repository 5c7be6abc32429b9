"""The playground's Gradio Blocks: Ask, Compare and Adapters tabs over the public /v1 API.

Every handler asks `client_for(request)` for an ApiClient: the mounted UI gets one that calls the
Serve app in-process with the key of the browser's session, `sqlfoundry ui` one for its remote
endpoint. Nothing here knows which, so both show the same UI.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import gradio as gr
import pandas as pd

from sqlfoundry.playground.client import ApiClient, ApiFailure
from sqlfoundry.playground.results import NOT_RUN, Rows, agreement, run_on_synthetic

ClientFor = Callable[[gr.Request], ApiClient]

BASE = ""  # the adapter picker's value for the base model (no adapter)
SCHEMA_SOURCE = "(the schema below)"  # the database picker's value for "use the schema box"
DIALECTS = ["sqlite", "postgres", "duckdb", "mysql", "bigquery", "snowflake", "tsql"]
EXAMPLES = [
    ["CREATE TABLE singer (singer_id INTEGER, name VARCHAR, age INTEGER)", "How many singers are there?"],
    ["CREATE TABLE head (name VARCHAR, born_state VARCHAR, age INTEGER)",
     "List the name and born state of heads older than 56."],
    ["CREATE TABLE employees (name VARCHAR, department VARCHAR, salary INTEGER)",
     "What is the average salary for each department?"],
    ["CREATE TABLE orders (order_id INTEGER, customer VARCHAR, total REAL)\n"
     "CREATE TABLE customers (name VARCHAR, city VARCHAR)",
     "Which customers from Paris placed orders over 100?"],
]
NO_ROWS = pd.DataFrame(columns=["(nothing ran)"])  # an empty frame would show headers 1, 2, 3
# System fonts only: the default theme's web fonts would be fetched from the internet.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


def adapter_choices(model_ids: list[str]) -> list[tuple[str, str]]:
    """Picker entries from /v1/models ids (`base`, `base:name`, `base:name@alias`): (label, ref)."""
    choices = [("base model (no adapter)", BASE)]
    for model_id in model_ids:
        _, sep, ref = model_id.partition(":")
        if sep and ref:
            choices.append((ref, ref))
    return choices


def default_adapter(choices: list[tuple[str, str]]) -> str:
    """What a first visit asks with: a `production` alias, else the first adapter, else the base
    model (a small base model alone rarely writes SQL; a fine-tuned adapter does)."""
    refs = [ref for _, ref in choices if ref != BASE]
    return next((ref for ref in refs if ref.endswith("@production")), refs[0] if refs else BASE)


def _table(rows: Rows) -> pd.DataFrame:
    if not rows.ran:
        return NO_ROWS
    seen: dict[str, int] = {}
    columns = []
    for name in rows.columns:  # pandas needs distinct headers: SELECT a, a
        seen[name] = seen.get(name, 0) + 1
        columns.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return pd.DataFrame(rows.rows, columns=columns)


def _status(answer: dict, rows: Rows) -> str:
    parts = ["**valid**" if answer.get("valid") else f"**invalid**: {answer.get('error')}"]
    parts.append(f"adapter `{answer.get('adapter') or 'base model'}`")
    if answer.get("confidence") is not None:
        parts.append(f"confidence {answer['confidence']:.2f} of {answer.get('candidates_considered')} candidates")
    if answer.get("latency_ms") is not None:
        parts.append(f"{answer['latency_ms']:.0f} ms")
    text = " · ".join(parts)
    return f"{text}\n\n{rows.note}" if rows.note else text


def _body(schema: str, question: str, adapter: str, dialect: str = "sqlite", candidates: float | None = None,
          max_new_tokens: float | None = None) -> dict:
    body = {"schema": schema, "question": question, "dialect": dialect or "sqlite", "adapter": adapter or None}
    if candidates:
        body["candidates"] = int(candidates)
    if max_new_tokens:
        body["max_new_tokens"] = int(max_new_tokens)
    return body


async def answer_with_rows(client: ApiClient, body: dict) -> tuple[dict, Rows]:
    """/v1/sql's answer and its rows on a synthesized database (valid SQLite answers only)."""
    answer = await client.sql(body)
    if not answer.get("valid"):
        return answer, Rows(note=NOT_RUN)
    if body["dialect"] != "sqlite":
        return answer, Rows(note=f"not run: rows are shown for dialect sqlite (this answer is {body['dialect']})")
    return answer, (await asyncio.to_thread(run_on_synthetic, body["schema"], [answer["sql"]]))[0]


def build_blocks(client_for: ClientFor, title: str = "sqlfoundry playground") -> gr.Blocks:
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"# {title}\nAsk for SQL against a schema, compare adapters, browse the registry.")
        with gr.Tab("Ask", id="ask"):
            with gr.Row():
                with gr.Column(scale=3):
                    database = gr.Dropdown([SCHEMA_SOURCE], value=SCHEMA_SOURCE, label="Database",
                                           info="a configured database (SQL runs there, read-only) or the schema below")
                    schema = gr.Textbox(EXAMPLES[0][0], lines=4, label="Schema (CREATE TABLE statements)")
                    question = gr.Textbox(EXAMPLES[0][1], label="Question", elem_id="ask-question")
                with gr.Column(scale=2):
                    adapter = gr.Dropdown(adapter_choices([]), value=BASE, label="Adapter", elem_id="ask-adapter")
                    dialect = gr.Dropdown(DIALECTS, value="sqlite", label="Dialect", allow_custom_value=True)
                    candidates = gr.Number(1, minimum=1, precision=0, label="Candidates (executed and voted on)")
                    max_new_tokens = gr.Slider(0, 256, value=0, step=8, label="Max new tokens",
                                               info="0: the deployment's default")
                    ask = gr.Button("Ask", variant="primary", elem_id="ask-button")
            sql = gr.Code(language="sql", label="SQL", interactive=False, elem_id="ask-sql")
            status = gr.Markdown(elem_id="ask-status")
            rows = gr.Dataframe(label="Result rows", interactive=False, elem_id="ask-rows")
            gr.Examples(EXAMPLES, inputs=[schema, question], label="Examples (click one, then Ask)")

        with gr.Tab("Compare", id="compare"):
            with gr.Row():
                c_schema = gr.Textbox(EXAMPLES[1][0], lines=3, label="Schema", scale=3, elem_id="compare-schema")
                c_question = gr.Textbox(EXAMPLES[1][1], label="Question", scale=2, elem_id="compare-question")
            with gr.Row():
                left_adapter = gr.Dropdown(adapter_choices([]), value=BASE, label="Left", elem_id="compare-left")
                right_adapter = gr.Dropdown(adapter_choices([]), value=BASE, label="Right", elem_id="compare-right")
            compare = gr.Button("Compare", variant="primary", elem_id="compare-button")
            verdict = gr.Markdown(elem_id="compare-verdict")
            with gr.Row():
                with gr.Column():
                    left_sql = gr.Code(language="sql", label="Left SQL", interactive=False)
                    left_status = gr.Markdown()
                    left_rows = gr.Dataframe(label="Left rows", interactive=False)
                with gr.Column():
                    right_sql = gr.Code(language="sql", label="Right SQL", interactive=False)
                    right_status = gr.Markdown()
                    right_rows = gr.Dataframe(label="Right rows", interactive=False)

        with gr.Tab("Adapters", id="adapters"):
            refresh = gr.Button("Refresh", elem_id="adapters-refresh")
            registry_note = gr.Markdown()
            versions = gr.Dataframe(label="Adapter versions (newest first)", interactive=False)
            curve_of = gr.Dropdown([], label="Training curve of")
            curve = gr.LinePlot(x="step", y="value", color="series", label="Training curve", height=260)
        listing = gr.State({})

        async def ask_fn(db, schema_text, question_text, adapter_ref, dialect_name, n, max_tokens,
                         request: gr.Request):
            client = client_for(request)
            try:
                if db and db != SCHEMA_SOURCE:
                    body = {"database": db, "question": question_text, "adapter": adapter_ref or None}
                    if max_tokens:
                        body["max_new_tokens"] = int(max_tokens)
                    if n:
                        body["candidates"] = int(n)
                    answer = await client.query(body)
                    result = Rows(answer["columns"], answer["rows"],
                                  f"{answer['row_count']} row(s) from database {db}"
                                  + (" (truncated)" if answer.get("truncated") else ""))
                    if not answer.get("valid"):
                        result = Rows(note=NOT_RUN)
                else:
                    body = _body(schema_text, question_text, adapter_ref, dialect_name, n, max_tokens)
                    answer, result = await answer_with_rows(client, body)
            except ApiFailure as err:
                return "", f"**error**: {err}", NO_ROWS
            return answer["sql"], _status(answer, result), _table(result)

        ask.click(ask_fn, [database, schema, question, adapter, dialect, candidates, max_new_tokens],
                  [sql, status, rows])
        question.submit(ask_fn, [database, schema, question, adapter, dialect, candidates, max_new_tokens],
                        [sql, status, rows])

        async def compare_fn(schema_text, question_text, left_ref, right_ref, request: gr.Request):
            client = client_for(request)
            try:
                left, right = await asyncio.gather(client.sql(_body(schema_text, question_text, left_ref)),
                                                   client.sql(_body(schema_text, question_text, right_ref)))
            except ApiFailure as err:
                return f"**error**: {err}", "", "", NO_ROWS, "", "", NO_ROWS
            # Both answers on one database (built from both, in one order): the verdict compares
            # their rows on the same data.
            sides = await asyncio.to_thread(run_on_synthetic, schema_text,
                                            [side["sql"] if side.get("valid") else None for side in (left, right)])
            same = agreement(sides[0], sides[1], left["sql"], right["sql"])
            return (f"**{same}**", left["sql"], _status(left, sides[0]), _table(sides[0]),
                    right["sql"], _status(right, sides[1]), _table(sides[1]))

        compare.click(compare_fn, [c_schema, c_question, left_adapter, right_adapter],
                      [verdict, left_sql, left_status, left_rows, right_sql, right_status, right_rows])

        async def load_fn(request: gr.Request):
            client = client_for(request)
            try:
                model_ids, database_names = await client.models(), await client.databases()
            except ApiFailure as err:
                gr.Warning(str(err))
                model_ids, database_names = [], []
            choices = adapter_choices(model_ids)
            preferred = default_adapter(choices)
            return (gr.Dropdown(choices=choices, value=preferred), gr.Dropdown(choices=choices, value=BASE),
                    gr.Dropdown(choices=choices, value=preferred),
                    gr.Dropdown(choices=[SCHEMA_SOURCE, *database_names], value=SCHEMA_SOURCE),
                    *(await adapters_fn(request)))

        async def adapters_fn(request: gr.Request):
            try:
                found = await client_for(request).adapters()
            except ApiFailure as err:
                return f"**error**: {err}", NO_ROWS, gr.Dropdown(choices=[]), {}, None
            table, curves = [], {}
            for entry in found.get("data", []):
                for version in entry.get("versions", []):
                    ref = f"{entry['name']}@{version['version']}"
                    table.append({"adapter": entry["name"], "version": version["version"],
                                  "aliases": ", ".join(version.get("aliases", [])),
                                  "created": version.get("created", ""), "base model": version.get("base_model"),
                                  **{k: v for k, v in version.get("metrics", {}).items()},
                                  "error": version.get("error", "")})
                    if version.get("curve"):
                        curves[ref] = version["curve"]
            if not found.get("registry"):
                note = "This endpoint serves the base model only (no adapter registry configured)."
            else:
                note = f"{len(found.get('data', []))} adapter(s); {len(curves)} version(s) with a training curve."
            first = next(iter(curves), None)
            return (note, pd.DataFrame(table), gr.Dropdown(choices=list(curves), value=first), curves,
                    _curve_frame(curves, first))

        def curve_fn(ref, curves):
            return _curve_frame(curves, ref)

        refresh.click(adapters_fn, None, [registry_note, versions, curve_of, listing, curve])
        curve_of.change(curve_fn, [curve_of, listing], curve)
        blocks.load(load_fn, None, [adapter, left_adapter, right_adapter, database,
                                    registry_note, versions, curve_of, listing, curve])
    return blocks


def _curve_frame(curves: dict, ref: str | None) -> pd.DataFrame | None:
    """Long format (step, value, series) of one version's curve: train loss and eval loss."""
    if not ref or ref not in curves:
        return None
    points = [{"step": p["step"], "value": p[key], "series": key}
              for p in curves[ref] for key in ("loss", "eval_loss") if p.get(key) is not None]
    return pd.DataFrame(points, columns=["step", "value", "series"])
