"""The byte budget of bodies in flight: requests over it wait in line, then get 503 BUSY; a body
declared over the limit is refused before a byte of it is read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.model.limits import BODY_BYTES_IN_FLIGHT, MAX_MESSAGE_BYTES
from gateway.web.budget import ByteBudget, NoRoom
from gateway.web.limits import PeerLimits
from gateway.web.peer_client import PeerClient, PeerResponse, PeerTransportError, messages_url
from gateway.web.peer_server import BODY_BUDGET

from .conftest import Pki

# --- the budget itself ---


async def test_reservations_within_capacity_pass_at_once() -> None:
    budget = ByteBudget(100)
    async with budget.hold(60, wait=0.0), budget.hold(40, wait=0.0):
        assert budget.in_use == 100
    assert budget.in_use == 0


async def test_a_reservation_without_room_waits_and_then_gives_up() -> None:
    budget = ByteBudget(100)
    async with budget.hold(80, wait=0.0):
        with pytest.raises(NoRoom):
            async with budget.hold(30, wait=0.05):
                pass
        assert (budget.in_use, budget.waiting) == (80, 0)
    assert budget.in_use == 0


async def test_the_line_is_first_come_first_served() -> None:
    """A large reservation is not overtaken by small ones that would fit before it."""
    budget = ByteBudget(100)
    order: list[str] = []

    async def take(name: str, amount: int) -> None:
        async with budget.hold(amount, wait=5.0):
            order.append(name)
            await asyncio.sleep(0.01)

    first = budget.hold(70, wait=0.0)
    await first.__aenter__()
    tasks = [asyncio.create_task(take("large", 90))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("small", 10)))  # 10 would fit now, but waits its turn
    await asyncio.sleep(0.02)
    assert order == [] and budget.waiting == 2
    await first.__aexit__(None, None, None)
    await asyncio.gather(*tasks)
    assert order == ["large", "small"]
    assert budget.in_use == 0


async def test_a_cancelled_wait_leaves_the_line_and_lets_the_next_in() -> None:
    budget = ByteBudget(100)
    inside = asyncio.Event()
    done = asyncio.Event()

    async def hold(amount: int) -> None:
        async with budget.hold(amount, wait=5.0):
            inside.set()
            await done.wait()

    async with budget.hold(50, wait=0.0):
        blocked = asyncio.create_task(hold(100))
        await asyncio.sleep(0)
        behind = asyncio.create_task(hold(50))
        await asyncio.sleep(0.01)
        assert budget.waiting == 2 and not inside.is_set()
        blocked.cancel()
        await asyncio.gather(blocked, return_exceptions=True)
        await asyncio.wait_for(inside.wait(), 1.0)  # fits beside the 50 held, once the head left
        assert (budget.in_use, budget.waiting) == (100, 0)
    assert budget.in_use == 50  # the one behind still holds its share
    done.set()
    await behind
    assert budget.in_use == 0


@pytest.mark.parametrize("amount", [-1, 101])
async def test_an_amount_the_budget_could_never_hold_is_refused(amount: int) -> None:
    with pytest.raises(ValueError, match="cannot reserve"):
        async with ByteBudget(100).hold(amount, wait=0.0):
            pass


def test_limits_refuse_a_budget_below_one_message() -> None:
    assert BODY_BYTES_IN_FLIGHT >= MAX_MESSAGE_BYTES
    with pytest.raises(ValueError, match="could never be received"):
        PeerLimits(max_message_bytes=2048, bytes_in_flight=1024)


# --- at the endpoint ---


class HeldPipeline:
    """A pipeline that records what the budget holds while it runs and answers when released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.seen_in_use: list[int] = []
        self.budget: ByteBudget | None = None

    async def __call__(self, sender: str, payload: bytes) -> tuple[int, bytes, str]:
        assert self.budget is not None
        self.running += 1
        self.seen_in_use.append(self.budget.in_use)
        await self.release.wait()
        self.running -= 1
        return 200, b"<ok/>", "application/xml"


StartServer = Callable[..., Awaitable]


async def _post(client: PeerClient, url: str, payload: bytes) -> PeerResponse | PeerTransportError:
    try:
        return await client.post_message(url, payload)
    except PeerTransportError as error:
        return error


async def _served(pki: Pki, directory, start_server: StartServer, limits: PeerLimits):
    held = HeldPipeline()
    server = await start_server(pki.server_context("ru"), directory, held, limits)
    held.budget = server.runner.app[BODY_BUDGET]
    return held, messages_url(server.url)


async def test_requests_beyond_the_budget_get_503_busy_with_retry_after(
    pki: Pki, directory, start_server: StartServer
) -> None:
    body = b"<a>" + b"x" * 1000 + b"</a>"
    limits = PeerLimits(max_message_bytes=len(body), bytes_in_flight=2 * len(body), room_wait=0.3)
    held, url = await _served(pki, directory, start_server, limits)
    async with PeerClient(pki.client_context("kz")) as client:
        first = [asyncio.create_task(_post(client, url, body)) for _ in range(2)]
        while held.running < 2:
            await asyncio.sleep(0.01)
        refused = await _post(client, url, body)
        held.release.set()
        answers = await asyncio.gather(*first)
        again = await _post(client, url, body)  # room again once the first two answered
    assert isinstance(refused, PeerTransportError)
    assert refused.status == 503 and refused.retryable
    assert refused.retry_after == 5.0
    assert refused.response is not None and refused.response.body == b"BUSY\n"
    assert [a.status for a in answers] == [200, 200]
    assert isinstance(again, PeerResponse) and again.status == 200
    assert held.seen_in_use[:2] in ([len(body), 2 * len(body)], [2 * len(body), 2 * len(body)])
    assert held.budget is not None and held.budget.in_use == 0


async def test_a_request_waiting_in_line_is_served_when_room_comes(
    pki: Pki, directory, start_server: StartServer
) -> None:
    body = b"<a>" + b"y" * 5000 + b"</a>"
    limits = PeerLimits(max_message_bytes=len(body), bytes_in_flight=len(body), room_wait=10.0)
    held, url = await _served(pki, directory, start_server, limits)
    async with PeerClient(pki.client_context("kz")) as client:
        first = asyncio.create_task(_post(client, url, body))
        while held.running < 1:
            await asyncio.sleep(0.01)
        second = asyncio.create_task(_post(client, url, body))
        while held.budget is None or held.budget.waiting < 1:
            await asyncio.sleep(0.01)
        assert held.running == 1, "the second body is not processed while the first holds it all"
        held.release.set()
        answers = await asyncio.gather(first, second)
    assert [a.status for a in answers] == [200, 200]
    assert held.seen_in_use == [len(body), len(body)]


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(
    pki: Pki, directory, start_server: StartServer
) -> None:
    """Only the headers go out: the 413 comes back without a byte of the body read."""
    held, url = await _served(pki, directory, start_server, PeerLimits())
    host, port = url.removeprefix("https://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=pki.client_context("kz"), server_hostname=host
    )
    try:
        writer.write(
            b"POST /exchange/v1/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/xml\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_MESSAGE_BYTES + 1)
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        rest = await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413")
    assert b"MESSAGE_TOO_LARGE" in rest
    assert held.seen_in_use == []
    assert held.budget is not None and held.budget.in_use == 0


# --- the node's configuration ---


def test_the_budget_is_configured_in_the_limits_section(tmp_path) -> None:
    from gateway.config import NodeConfig
    from gateway.model.problems import ConfigurationError

    path = tmp_path / "node.toml"
    node = {"body_id": "RU-FSSP"}
    assert NodeConfig.from_dict({"node": node}, path).limits.peer_bytes_in_flight == (
        BODY_BYTES_IN_FLIGHT
    )
    raised = NodeConfig.from_dict({"node": node, "limits": {"peer_bytes_in_flight": 2**27}}, path)
    assert raised.limits.peer_bytes_in_flight == 2**27
    for value, says in [
        (1024, f"set at least {MAX_MESSAGE_BYTES}"),
        ("64MiB", "must be a whole number"),
    ]:
        with pytest.raises(ConfigurationError) as info:
            NodeConfig.from_dict({"node": node, "limits": {"peer_bytes_in_flight": value}}, path)
        assert str(path) in str(info.value)
        assert "[limits]" in str(info.value) and "peer_bytes_in_flight" in str(info.value)
        assert says in str(info.value)


def test_per_peer_limits_are_configured_in_the_limits_section(tmp_path) -> None:
    """Defaults let a body send over 1,000 requests/s; a node may set its own."""
    from gateway.config import NodeConfig
    from gateway.model.limits import PEER_BURST, PEER_CONCURRENT_REQUESTS, PEER_RATE_PER_SECOND
    from gateway.model.problems import ConfigurationError

    path = tmp_path / "node.toml"
    node = {"body_id": "RU-FSSP"}
    limits = NodeConfig.from_dict({"node": node}, path).limits
    assert (limits.peer_rate_per_second, limits.peer_burst, limits.peer_concurrent_requests) == (
        PEER_RATE_PER_SECOND,
        PEER_BURST,
        PEER_CONCURRENT_REQUESTS,
    )
    assert limits.peer_rate_per_second >= 1000
    own = {"peer_rate_per_second": 50, "peer_burst": 200, "peer_concurrent_requests": 8}
    limits = NodeConfig.from_dict({"node": node, "limits": own}, path).limits
    assert (limits.peer_rate_per_second, limits.peer_burst, limits.peer_concurrent_requests) == (
        50,
        200,
        8,
    )
    with pytest.raises(ConfigurationError) as info:
        NodeConfig.from_dict({"node": node, "limits": {"peer_rate_per_second": 0}}, path)
    assert "[limits]" in str(info.value) and "peer_rate_per_second" in str(info.value)


def test_freed_memory_goes_back_to_the_system_on_glibc() -> None:
    import platform

    from gateway.web import budget

    if platform.libc_ver()[0] == "glibc":
        assert budget._MALLOC_TRIM is not None, "malloc_trim not found in glibc"
    budget.give_back_freed_memory()  # a no-op elsewhere; must never raise
