"""The functions a read-only query may call: an allow-list, per dialect.

`sql.validate` checks every function call of a query against it, and the evaluator's sqlite
authorizer (`sql.execute`) checks every call again at run time against the sqlite names.

Why an allow-list and not a deny-list: a deny-list must know every function that sleeps, reads or
writes files, loads code, takes locks, advances sequences or changes settings, in every dialect,
version and extension, and it fails open on the one it missed. An allow-list fails closed: a
function nobody vouched for is refused with its name, and the fix is one line here. Left out on
purpose, among others: sqlite load_extension, zeroblob, randomblob (allocate as much as asked),
readfile, writefile, edit, fts3_tokenizer; postgres pg_sleep, pg_read_file, pg_terminate_backend,
set_config, lo_import, dblink, nextval, setval, txid_*, pg_advisory_lock, query_to_xml (runs a
query given as a string); mysql sleep, benchmark, load_file, get_lock.
"""

from __future__ import annotations

from sqlglot import exp

# sqlglot's typed function nodes: sqlglot knows what each computes, whichever dialect's spelling
# produced it. Matched by exact class: a subclass (JSONCast of Cast) is a decision of its own.
SAFE_TYPED: frozenset[type[exp.Func]] = frozenset({
    # logic, conditionals and casts that sqlglot models as functions
    exp.And, exp.Or, exp.Xor, exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least,
    exp.Exists, exp.Collate, exp.Cast, exp.TryCast, exp.Typeof, exp.DecodeCase,
    # aggregates
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.GroupConcat, exp.ArrayAgg, exp.JSONArrayAgg,
    exp.JSONObjectAgg, exp.JSONBObjectAgg, exp.LogicalAnd, exp.LogicalOr, exp.BitwiseAndAgg,
    exp.BitwiseOrAgg, exp.Stddev, exp.StddevPop, exp.StddevSamp, exp.Variance, exp.VariancePop,
    exp.Corr, exp.CovarPop, exp.CovarSamp, exp.RegrCount, exp.RegrIntercept, exp.RegrR2,
    exp.RegrSlope, exp.PercentileCont, exp.PercentileDisc, exp.Mode,
    # window functions
    exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile, exp.Lag,
    exp.Lead, exp.FirstValue, exp.LastValue, exp.NthValue,
    # strings
    exp.Lower, exp.Upper, exp.Length, exp.BitLength, exp.Substring, exp.Trim, exp.Replace,
    exp.Concat, exp.ConcatWs, exp.StrPosition, exp.Left, exp.Right, exp.Pad, exp.Initcap,
    exp.Reverse, exp.Repeat, exp.Translate, exp.SplitPart, exp.StartsWith, exp.Format, exp.Chr,
    exp.Ascii, exp.Unicode, exp.Hex, exp.Unhex, exp.Soundex, exp.MD5, exp.SHA2Digest, exp.Encode,
    exp.Decode, exp.RegexpLike, exp.RegexpReplace, exp.RegexpCount, exp.RegexpSubstr,
    exp.StringToArray,
    # numbers
    exp.Abs, exp.Round, exp.Ceil, exp.Floor, exp.Trunc, exp.Sign, exp.Sqrt, exp.Cbrt, exp.Pow,
    exp.Exp, exp.Ln, exp.Log, exp.Pi, exp.Degrees, exp.Radians, exp.Sin, exp.Cos, exp.Tan, exp.Cot,
    exp.Asin, exp.Acos, exp.Atan, exp.Atan2, exp.Sinh, exp.Cosh, exp.Tanh, exp.Asinh, exp.Acosh,
    exp.Atanh, exp.WidthBucket, exp.Rand, exp.ToNumber,
    # dates and times
    exp.Date, exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp, exp.Localtime,
    exp.Localtimestamp, exp.Extract, exp.TimeToStr, exp.StrToDate, exp.StrToTime, exp.UnixToTime,
    exp.TsOrDsToTimestamp, exp.TimestampTrunc, exp.DateBin, exp.TimeFromParts,
    exp.TimestampFromParts, exp.MakeInterval, exp.JustifyDays, exp.JustifyHours,
    exp.JustifyInterval,
    # JSON values and arrays (functions of their arguments: json_set returns a value, writes nothing)
    exp.JSONExtract, exp.JSONExtractScalar, exp.JSONObject, exp.JSONRemove, exp.JSONSet,
    exp.JSONType, exp.Array, exp.ArraySize, exp.ArrayPosition, exp.ArrayToString,
    exp.ArrayConcat, exp.ArrayAppend, exp.ArrayPrepend, exp.ArrayRemove,
    # set-returning functions in FROM
    exp.Unnest, exp.Explode, exp.GenerateSeries, exp.ExplodingGenerateSeries,
})

# Every function, as sqlite names it, a read-only query may call. sqlite calls some operators
# through functions too (LIKE, GLOB, ->, ->>, CURRENT_TIMESTAMP), and the run-time authorizer
# sees those names, so they are listed. Table-valued json_each/json_tree are not: the read-only
# authorizer refuses virtual tables anyway.
SQLITE_FUNCTIONS = frozenset("""
    abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likelihood
    likely lower ltrim max min nullif octet_length printf quote random replace round rtrim sign
    soundex substr substring trim typeof unhex unicode unlikely upper -> ->>
    date time datetime julianday unixepoch strftime timediff current_date current_time
    current_timestamp
    avg count group_concat string_agg sum total
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
    nth_value
    acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10
    log2 mod pi pow power radians sin sinh sqrt tan tanh trunc
    json json_array json_array_length json_extract json_insert json_object json_patch json_remove
    json_replace json_set json_type json_valid json_quote json_group_array json_group_object
""".split())

POSTGRES_FUNCTIONS = frozenset("""
    abs cbrt ceil ceiling degrees div exp floor ln log log10 mod pi power radians round sign sqrt
    trunc width_bucket random acos asin atan atan2 cos cot sin tan sinh cosh tanh
    ascii btrim char_length character_length chr concat concat_ws format initcap left length lower
    lpad ltrim md5 octet_length bit_length position repeat replace reverse right rpad rtrim
    split_part starts_with strpos substr substring translate trim upper quote_ident quote_literal
    quote_nullable to_hex regexp_replace regexp_match regexp_matches regexp_like regexp_count
    regexp_substr regexp_split_to_array regexp_split_to_table encode decode sha224 sha256 sha384
    sha512
    to_char to_date to_number to_timestamp age clock_timestamp current_date current_time
    current_timestamp date_bin date_part date_trunc extract isfinite justify_days justify_hours
    justify_interval localtime localtimestamp make_date make_interval make_time make_timestamp
    make_timestamptz now statement_timestamp timeofday transaction_timestamp
    coalesce nullif greatest least num_nonnulls num_nulls
    avg bit_and bit_or bool_and bool_or count every max min sum string_agg array_agg json_agg
    jsonb_agg json_object_agg jsonb_object_agg corr covar_pop covar_samp stddev stddev_pop
    stddev_samp variance var_pop var_samp regr_slope regr_intercept regr_r2 regr_count
    percentile_cont percentile_disc mode
    rank dense_rank percent_rank cume_dist row_number ntile lag lead first_value last_value
    nth_value
    array_length array_lower array_upper array_position array_positions array_to_string array_cat
    array_append array_prepend array_remove array_replace cardinality unnest generate_series
    string_to_array
    json_extract_path json_extract_path_text jsonb_extract_path jsonb_extract_path_text
    json_array_length jsonb_array_length json_typeof jsonb_typeof to_json to_jsonb
    json_build_object jsonb_build_object json_build_array jsonb_build_array row_to_json
    jsonb_pretty json_each jsonb_each json_each_text jsonb_each_text json_object_keys
    jsonb_object_keys json_array_elements jsonb_array_elements jsonb_path_query jsonb_path_exists
    jsonb_set jsonb_insert jsonb_strip_nulls
""".split())

# Dialects without a list here may call only the typed functions above.
SAFE_NAMES: dict[str, frozenset[str]] = {"sqlite": SQLITE_FUNCTIONS, "postgres": POSTGRES_FUNCTIONS}


def unsafe_function(func: exp.Func, dialect: str) -> str | None:
    """Why a read-only query may not call `func` in `dialect`, or None when it may."""
    parent = func.parent
    if isinstance(parent, exp.Dot) and parent.expression is func:
        # A qualified name reaches functions outside the built-ins (postgres: any schema's).
        return (f"{parent.this.sql(dialect=dialect)}.{func.name}() is schema-qualified; "
                "call built-in functions by their plain name")
    if isinstance(func, exp.Anonymous):
        if dialect not in SAFE_NAMES:
            return (f"{func.name}() is not a function sqlglot knows, and {dialect} has no allow-list of "
                    "named functions (sql/functions.py)")
        if func.name.lower() in SAFE_NAMES[dialect]:
            return None
        name = func.name
    elif type(func) in SAFE_TYPED:
        return None
    else:
        name = func.sql_name().lower()
    return f"{name}() is not on the {dialect} allow-list of side-effect-free functions (sql/functions.py)"
