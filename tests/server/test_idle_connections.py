"""Idle and slow sockets are closed (issue 16 item 8c): 450 held sockets on each listener.

The attack held 450 sockets open for 20 s, idle or trickling a request, and none was ever
closed: enough of them exhaust the process's file descriptors. Each socket here is a raw TCP
connection; the server must close it (the client reads end of file) within the configured
idle timeout plus slack, and keep answering new requests meanwhile and after.
"""

from __future__ import annotations

import asyncio
import time

from tests.server.conftest import Start, descriptor

CONFIG = """
domain: test
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 100}
"""

#: Sockets per listener, as in the attack.
SOCKETS = 450
#: The idle timeout the server is given, and how long after it every socket must be closed.
TIMEOUT_S = 1.0
SLACK_S = 4.0
#: The start of an HTTP request that never ends (a slowloris), and the HTTP/2 client preface
#: with nothing after it (a gRPC connection that never makes a call).
HTTP_PARTIAL = b"POST /json HTTP/1.1\r\nHost: x\r\n"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


async def _hold(port: int, first: bytes, trickle: bool) -> float:
    """Connect, send ``first`` (trickling a header byte a second if asked), return the
    seconds until the server closed the connection."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(first)
        deadline = start + TIMEOUT_S + SLACK_S
        while time.monotonic() < deadline:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5 if trickle else 1.0)
            except TimeoutError:
                if trickle:
                    writer.write(b"X")  # one more header byte: never a complete request
                continue
            if not data:
                return time.monotonic() - start
        return float("inf")
    except ConnectionError:
        return time.monotonic() - start
    finally:
        writer.close()


async def _attack(port: int, kinds: list[tuple[bytes, bool]]) -> list[float]:
    holds = [_hold(port, *kinds[n % len(kinds)]) for n in range(SOCKETS)]
    return list(await asyncio.gather(*holds))


async def test_450_idle_or_trickling_http_sockets_are_closed_after_the_idle_timeout(
    serve: Start,
) -> None:
    running = await serve(CONFIG, http_idle_timeout=TIMEOUT_S)
    kinds = [(b"", False), (HTTP_PARTIAL, False), (HTTP_PARTIAL, True)]
    attack = asyncio.create_task(_attack(running.server.http_port, kinds))
    await asyncio.sleep(0.3)
    request = {"domain": "test", "descriptors": [{"entries": [{"key": "key1", "value": "a"}]}]}
    async with running.http.post(
        running.base_url + "/json", json=request, headers={"Connection": "close"}
    ) as response:
        assert response.status == 200  # served while the 450 are held
    closed_after = await attack
    assert max(closed_after) <= TIMEOUT_S + SLACK_S, sorted(closed_after)[-5:]
    assert min(closed_after) >= TIMEOUT_S * 0.5  # closed by the timeout, not at once
    async with running.http.get(running.base_url + "/healthcheck") as response:
        assert response.status == 200


async def test_450_idle_grpc_sockets_are_closed_after_the_handshake_or_idle_timeout(
    serve: Start,
) -> None:
    running = await serve(
        CONFIG, grpc_max_connection_idle=TIMEOUT_S, grpc_handshake_timeout=TIMEOUT_S
    )
    # Nothing at all (the handshake never completes), and a preface and SETTINGS with no call
    # after them (an established connection left idle).
    kinds = [(b"", False), (H2_PREFACE, False)]
    attack = asyncio.create_task(_attack(running.server.grpc_port, kinds))
    await asyncio.sleep(0.3)
    answer = await running.ask("test", descriptor(("key1", "a")))
    assert answer.overall_code == 1  # OK, served while the 450 are held
    closed_after = await attack
    assert max(closed_after) <= TIMEOUT_S + SLACK_S, sorted(closed_after)[-5:]
    assert min(closed_after) >= TIMEOUT_S * 0.5  # closed by the timeouts, not at once
    answer = await running.ask("test", descriptor(("key1", "b")))
    assert answer.overall_code == 1
