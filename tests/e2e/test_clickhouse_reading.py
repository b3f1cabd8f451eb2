"""Reading ClickHouse over its HTTP interface: the engine behind the stand-in (`tests/support/clickhouse.py`).

A stream is read whole; values from outside travel as parameters and come back as sent; a refusal, a timeout,
an error in the middle of the answer and a connection cut in the middle are each raised, never taken for the
end of the data, and no password appears in any of them.
"""

import asyncio
import signal
from pathlib import Path

import aiohttp
import pyarrow as pa
import pytest

from connectors.sources.clickhouse.http import (
    ArrowQuery,
    ClickHouse,
    ClickHouseCut,
    ClickHouseError,
    Params,
)
from connectors.sources.read_ahead import read_ahead
from tests.support.clickhouse import GIVEN, ClickHouseAccount, ClickHouseStandIn


async def _read(clickhouse: ClickHouse, sql: str, params: dict[str, str] | None = None) -> list[pa.RecordBatch]:
    failures: list[BaseException] = []
    batches = [b async for b in read_ahead(ArrowQuery(clickhouse, sql, params or {}), lambda b: [b], failures.append)]
    return batches


async def test_a_stream_is_read_whole_in_batches(clickhouse: ClickHouseAccount) -> None:
    batches = await _read(clickhouse.client(), "SELECT number, toString(number) AS s FROM numbers(300000)")
    table = pa.Table.from_batches(batches)
    assert len(batches) > 1
    assert table.num_rows == 300000 and pa.compute.sum(table["number"]).as_py() == 299999 * 300000 // 2


@pytest.mark.parametrize("text", ["it's", "back\\slash", "tab\there", "new\nline", "quote ' \" `", "{p0:String}",
                                  "é ✓ 😀", "'); DROP TABLE x; --"])  # fmt: skip
async def test_values_travel_as_parameters(clickhouse: ClickHouseAccount, text: str) -> None:
    p = Params()
    sql = f"SELECT {p(text, 'String')} AS one, {p([text, 'b'], 'Array(String)')} AS many, {p(7, 'Int64')} AS n"
    rows = await asyncio.to_thread(clickhouse.client().rows, sql, p.values)
    assert rows == [{"one": text, "many": [text, "b"], "n": 7}]


async def test_a_wrong_password_is_refused_without_quoting_it(clickhouse: ClickHouseAccount) -> None:
    with pytest.raises(ClickHouseError) as refused:
        await _read(ClickHouseAccount(clickhouse.url, clickhouse.user, "wrong-password-xyz").client(), "SELECT 1")
    assert refused.value.code == 516 and "wrong-password-xyz" not in str(refused.value)


async def test_the_statement_timeout_ends_a_query(clickhouse: ClickHouseAccount) -> None:
    bounded = clickhouse.client(statement_timeout_seconds=1)
    with pytest.raises(ClickHouseError) as failed:
        await _read(bounded, "SELECT sleepEachRow(0.2) FROM numbers(50) SETTINGS max_block_size = 1")
    assert failed.value.timed_out, failed.value


async def test_an_error_in_the_middle_of_the_answer_is_raised(clickhouse: ClickHouseAccount) -> None:
    sql = "SELECT number, throwIf(number = 250000, 'boom') AS x FROM numbers(300000) SETTINGS max_block_size = 10000"
    read: list[pa.RecordBatch] = []
    with pytest.raises(ClickHouseError, match="boom") as failed:
        async for batch in read_ahead(ArrowQuery(clickhouse.client(), sql, {}), lambda b: [b], lambda e: None):
            read.append(batch)
    assert failed.value.code == 395  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO
    assert 0 < sum(b.num_rows for b in read) < 300000


async def test_a_connection_cut_in_the_middle_is_raised(tmp_path: Path) -> None:
    with ClickHouseStandIn(tmp_path).start() as server:
        assert server.process is not None
        query = ArrowQuery(server.account.client(), "SELECT number, repeat('x', 200) AS s FROM numbers(2000000)", {})
        read = 0
        with pytest.raises(ClickHouseCut, match="cut in the middle"):
            async for batch in read_ahead(query, lambda b: [b], lambda e: None):
                if not read:
                    server.process.send_signal(signal.SIGKILL)
                    await asyncio.sleep(0.5)
                read += batch.num_rows
        assert 0 < read < 2000000


async def test_a_real_server_when_one_is_given(clickhouse: ClickHouseAccount) -> None:
    """With `BATCH_EXPORTS_TEST_CLICKHOUSE_URL`, every ClickHouse test runs against that server."""
    if not clickhouse.real:
        pytest.skip(f"no real ClickHouse server given ({GIVEN}): ClickHouse's engine behind the stand-in was used")
    (row,) = await asyncio.to_thread(clickhouse.client().rows, "SELECT version() AS version", {})
    assert row["version"]


async def test_a_reader_that_goes_away_mid_stream_leaves_the_server_to_the_next_query(
    clickhouse: ClickHouseAccount,
) -> None:
    """An export that fails (its destination refused) stops reading in the middle of the answer: the next query,
    another test's, is still answered. The stand-in once kept its one engine session for the abandoned answer
    until the garbage collector found it, and every later query waited out its timeout."""
    auth = aiohttp.BasicAuth(clickhouse.user, clickhouse.password)
    within = aiohttp.ClientTimeout(total=20)  # the old stand-in made the next query wait until the collector ran
    query = "SELECT number, repeat('x', 100) AS s FROM numbers(50000000) FORMAT TabSeparated"
    for _ in range(3):
        async with (
            aiohttp.ClientSession(auth=auth, timeout=within) as http,
            http.post(clickhouse.url + "/", data=query) as response,
        ):
            assert response.status == 200
            assert await response.content.read(65536)  # the first part of the answer, then the reader goes away
    async with (
        aiohttp.ClientSession(auth=auth, timeout=within) as http,
        http.post(clickhouse.url + "/", data="SELECT 42") as response,
    ):
        assert (response.status, await response.text()) == (200, "42\n")
