"""Everything SQL, one job per module: parse and render a schema (`schema`), extract a statement
from model output (`extract`), validate a query (`validate`, with the side-effect-free function
allow-list in `functions`), synthesize databases from a schema (`synthdb`), execute sandboxed
(`execute`), compare queries (`compare`). Imports only sqlglot and the standard library: data,
evaluation, serving and the training loop use it, and nothing here imports them."""
