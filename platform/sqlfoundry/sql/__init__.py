"""Everything SQL, one job per module: parse a schema (`schema`), validate a query (`validate`),
synthesize databases from a schema (`synthdb`), execute sandboxed (`execute`), compare queries
(`compare`). Imports only sqlglot and the standard library: data, evaluation, serving and the
training loop use it, and nothing here imports them."""
