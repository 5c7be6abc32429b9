import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def synth_file(tmp_path_factory) -> Path:
    import json

    from sqlfoundry.data.synth import generate_rows

    path = tmp_path_factory.mktemp("data") / "synth.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in generate_rows(400, seed=7)))
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 protocol server (moto) on 127.0.0.1; clients reach it over HTTP via AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


@pytest.fixture()
def s3_bucket(s3_server):
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One local Ray for the whole session (2 CPUs); started after the S3 server so workers see it."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    # Serve gives its HTTP proxy 5 s to become ready and kills it otherwise: too short on a busy
    # 2-core CI machine (the proxy's own start is what fails, not the code under test).
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


# The real-database fixtures (tests/test_databases.py, tests/test_serving.py): passwords reach the
# code under test only through these environment variables.
PG_READER_ENV, PG_ADMIN_ENV = "SHOP_PG_PW", "SHOP_PG_ADMIN_PW"


def postgres_expected() -> bool:
    """PostgreSQL tests may skip only on a developer machine without PostgreSQL; in CI (and wherever
    pg_config exists) a server that does not start fails them."""
    from pgserver import pg_bindir

    return pg_bindir() is not None or bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def postgres_server():
    from pgserver import start

    if not postgres_expected():
        pytest.skip("PostgreSQL is not installed (no pg_config) and CI is unset: apt-get install postgresql")
    server = start(_free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shop_files(tmp_path_factory) -> dict[str, str]:
    """The shop fixture database as a sqlite file and a DuckDB file: {backend: url}."""
    from shopdb import build_duckdb, build_sqlite

    folder = tmp_path_factory.mktemp("shop")
    return {"sqlite": build_sqlite(folder / "shop.db"), "duckdb": build_duckdb(folder / "shop.duckdb")}


@pytest.fixture(scope="session")
def shop_postgres(postgres_server) -> dict:
    """The shop database on the test server: the reader's URL, the admin's, and the passwords' env."""
    from pgserver import ADMIN, ADMIN_PASSWORD
    from shopdb import READER_PASSWORD, build_postgres

    return {"url": build_postgres(postgres_server), "admin_url": postgres_server.url(ADMIN, "shop"),
            "env": {PG_READER_ENV: READER_PASSWORD, PG_ADMIN_ENV: ADMIN_PASSWORD}}
