"""The production online store (Feast's Redis store over TLS with AUTH) against a real Redis 7.

`pipelines/features/repo/feature_store.prod.yaml` is what the cluster's feature steps and the
feature server use: a Redis online store (ElastiCache, in-transit encryption, AUTH token). Here
its ``online_store`` block is taken verbatim, its placeholders expanded to a TLS-only
``redis-server`` started on loopback; only the registry and the offline source move to local
files, because S3 is not reachable offline. The same apply -> materialize -> lookup path as the
local default must then give the same values, and the TLS and AUTH settings must really be
enforced (a plaintext or password-less client, or one that cannot verify the certificate, is
refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from pipelines import features as fs
from pipelines.training import data, schema
from tests.redis_server import RedisServer, start_redis, stop_redis, write_store_config

ROWS = 300
SEED = 11
MODEL = "credit_risk"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A TLS-only Redis with a random password, for this module."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        stop_redis(server)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return data.generate(ROWS, SEED)


@pytest.fixture(scope="module")
def redis_store(
    redis_server: RedisServer, table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """A store with the prod online store on the real Redis: applied and materialized."""
    config = write_store_config(tmp_path_factory.mktemp("redis_store"), redis_server)
    store = fs.open_store(config, create=True)
    fs.apply(store, table)
    fs.register_feature_service(store, MODEL, 1, list(schema.FEATURES))
    done = fs.materialize(store)
    assert [m.skipped for m in done] == [False] * len(done)
    return store


@pytest.fixture(scope="module")
def sqlite_store(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The embedded default (SQLite online store) over the same table."""
    store = fs.open_store(tmp_path_factory.mktemp("sqlite_store"), create=True)
    fs.apply(store, table)
    fs.register_feature_service(store, MODEL, 1, list(schema.FEATURES))
    fs.materialize(store)
    return store


def test_the_store_really_uses_redis(redis_store: Any, redis_server: RedisServer) -> None:
    assert type(redis_store._get_provider().online_store).__name__ == "RedisOnlineStore"
    # One hash per customer (Feast keys Redis by entity key); nothing is served from elsewhere.
    assert redis_server.client().dbsize() == ROWS  # type: ignore[attr-defined]


def test_online_values_equal_the_rows_and_the_local_default(
    redis_store: Any, sqlite_store: Any, table: pd.DataFrame
) -> None:
    """Every customer's Redis lookup is its row of the table, exactly as the SQLite store."""
    request = fs.resolve_request(redis_store, feature_service=f"{MODEL}_v1")
    local_request = fs.resolve_request(sqlite_store, feature_service=f"{MODEL}_v1")
    for _, row in table.iloc[:: max(1, ROWS // 40)].iterrows():
        entity = int(row[schema.ENTITY])
        online = fs.online_features(redis_store, entity, request)
        assert list(online) == list(schema.FEATURES)
        assert online == {f: float(row[f]) for f in schema.FEATURES}, entity
        assert online == fs.online_features(sqlite_store, entity, local_request), entity


def test_an_unknown_customer_is_reported_from_redis(redis_store: Any) -> None:
    with pytest.raises(fs.UnknownEntityError, match="no features for customer 999999999"):
        fs.online_features(redis_store, 999_999_999)


def test_plaintext_clients_are_refused(redis_server: RedisServer) -> None:
    import redis

    with pytest.raises(redis.exceptions.ConnectionError):
        redis_server.client(ssl=False).ping()  # type: ignore[attr-defined]


def test_clients_without_the_password_are_refused(redis_server: RedisServer) -> None:
    import redis

    for password in (None, "wrong-password"):
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis_server.client(password=password).ping()  # type: ignore[attr-defined]


def test_tls_verifies_the_server_certificate(redis_server: RedisServer) -> None:
    """``ssl=true`` alone verifies against the system trust store: the test CA is not in it."""
    import redis

    with pytest.raises(redis.exceptions.ConnectionError, match=r"(?i)certificate verify failed"):
        redis_server.client(ssl_ca_certs=None).ping()  # type: ignore[attr-defined]
