"""Fuzzing a real node: Hypothesis strategies for what reaches it, and the checks every answer
must pass. Shared by the bounded CI run (``tests/integration/test_fuzz_*.py``) and the long campaign
(``benchmarks/fuzz.py``).

Surfaces:

* the receive path (:meth:`Node.receive`, what the peer endpoint runs for every POST): arbitrary
  bytes, byte-level mutations of a valid signed envelope, and tree-level mutations of a valid
  envelope signed afterwards with the sender's real keys (so the mutation reaches the checks
  behind the signatures: schema, header, agreement rules, conversation);
* the local API's ``POST /api/v1/messages`` of a running :class:`NodeRuntime`: mutated JSON of
  the schema's valid examples, and raw bodies.

The property, for every input: no exception escapes (the peer endpoint would answer 500), no
5xx, every refusal carries a code, and nothing stored (messages, conversations, outbox,
receipts, delivery attempts) changes on a refusal.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import http.cookiejar
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from lxml import etree

from gateway.config import NodeConfig
from gateway.crypto.xades import _sign_unchecked
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.web.runtime import NodeRuntime, http_status
from tests.integration.exchange_world import Signer, create_token, node_config, row_counts

RECEIVER = "KZ-MJ"
SENDER = "RU-FSSP"
TEMPLATES = (
    "cis-enforcement.Request",
    "cis-enforcement.Refusal",
    "cis-enforcement.DelayNotice",
    "cis-enforcement.AdditionalInfoRequest",
)
"""Valid examples the structured strategies start from (documents that open or continue a
conversation, of different shapes)."""

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\u0000",
            "\u001b[31m",
            "\ufffe",
            "\ud800",
            "<x/>",
            "&amp;",
            "]]>",
            "a" * 5000,
            "9" * 400,
            "2026-02-30",
            "-1",
            "KZ-MJ",
            "RU-FSSP",
            "unknown-agreement",
            "\u202e",
        ]
    ),
)
"""Text a hostile peer or a broken case system sends: control and non-characters, markup,
lone surrogates, huge, well-formed but wrong values, ids of real bodies."""


# --- outcomes ---------------------------------------------------------------------------------


class PropertyViolated(AssertionError):
    """An answer broke the fuzzing property (a 5xx, a refusal without code, a store change)."""


@dataclass
class Tally:
    """Counts of outcomes (``"422 SCHEMA_INVALID"``…) and of property violations."""

    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        self.outcomes[outcome] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "examples": sum(self.outcomes.values()),
            "outcomes": dict(self.outcomes.most_common()),
            "unhandled": len(self.violations),
            "violations": self.violations[:20],
        }


# --- the receive path -------------------------------------------------------------------------


@dataclass
class ReceiveTarget:
    """KZ-MJ as an in-process node, and RU-FSSP's real keys to sign what it is sent."""

    node: Node
    signer: Signer

    def valid(self, template: str) -> bytes:
        return self.signer.document(template, datetime.now(UTC))

    def resigned(self, root: etree._Element) -> bytes:
        """``root`` (mutated) signed with the sender's keys, without the signer's checks; as it
        is, unsigned, when the mutation took away what a signature refers to (a peer may send
        that too)."""
        unsigned = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
        try:
            return _sign_unchecked(
                root, self.signer.official, self.signer.seal, datetime.now(UTC), None
            )
        except Exception:  # the signer's own limits are not what is fuzzed
            return unsigned

    def check(self, payload: bytes) -> str:
        """Feed ``payload`` to the receive path; its outcome label, or PropertyViolated."""
        before = row_counts(self.node.store)
        try:
            outcome = self.node.receive(SENDER, payload)
        except Exception as exc:  # the peer endpoint would answer 500 INTERNAL_ERROR
            raise PropertyViolated(f"receive raised {type(exc).__name__}: {exc}") from exc
        status = http_status(outcome)
        if status >= 500 and outcome.disposition is not Disposition.TRY_AGAIN:
            raise PropertyViolated(f"status {status} for {outcome.code}")
        accepted = outcome.disposition in (Disposition.ACCEPTED, Disposition.REPLAYED)
        if not accepted:
            if not outcome.code:
                raise PropertyViolated(f"a refusal ({outcome.disposition}) without a code")
            after = row_counts(self.node.store)
            if after != before:
                raise PropertyViolated(f"refused {outcome.code} but the store moved: {after}")
        return f"{status} {outcome.code or outcome.disposition}"


@contextmanager
def receive_target(world: DemoWorld, tag: str, database_url: str = "") -> Iterator[ReceiveTarget]:
    config = node_config(world, RECEIVER, tag, database_url=database_url, peer_port=0)
    node = Node.from_config(NodeConfig.from_toml(config))
    try:
        yield ReceiveTarget(node, Signer.of(world, SENDER))
    finally:
        node.close()


_TEXT_RUN = re.compile(rb">([0-9A-Za-z][^<]*)<")
"""A text node starting with a letter or digit: changing that byte keeps the document
well-formed (a changed tag name would not)."""


def byte_mutation(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes flipped, inserted, deleted or cut off."""

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            # "char" thrice as often: most of the others end at the parser already.
            op = draw(
                st.sampled_from(["char"] * 3 + ["flip", "insert", "delete", "truncate", "splice"])
            )
            at = draw(st.integers(0, max(0, len(out) - 1)))
            if op == "char":  # a letter for another: well-formed still, the signatures meet it
                texts = [m.start(1) for m in _TEXT_RUN.finditer(out)]
                if texts:
                    where = texts[draw(st.integers(0, len(texts) - 1))]
                    out[where] = draw(st.sampled_from(b"0aZ9qQ"))
            elif op == "flip" and out:
                out[at] = draw(st.integers(0, 255))
            elif op == "insert":
                out[at:at] = draw(st.binary(min_size=1, max_size=16))
            elif op == "delete":
                del out[at : at + draw(st.integers(1, 64))]
            elif op == "truncate":
                del out[at:]
            else:  # a piece of markup a parser must survive
                out[at:at] = draw(
                    st.sampled_from(
                        [
                            b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>",
                            b"&e;",
                            b"<![CDATA[",
                            b"<xi:include href='/etc/passwd'/>",
                            b"\xff\xfe",
                            b"\x00",
                            b"<a>" * 50,
                        ]
                    )
                )
        return bytes(out)

    return mutate()


def _elements(root: etree._Element) -> list[etree._Element]:
    signatures = "{urn:cis-exchange:envelope:1}Signatures"
    return [e for e in root.iter() if isinstance(e.tag, str) and e.tag != signatures]


@st.composite
def mutated_tree(draw: st.DrawFn, target: ReceiveTarget) -> bytes:
    """A valid document with a few elements changed, removed, duplicated or renamed, then
    signed with the sender's real keys: the mutation passes the signatures and meets the
    schema, the header checks and the agreement's rules."""
    root = target.signer.unsigned(draw(st.sampled_from(TEMPLATES)), datetime.now(UTC))
    for _ in range(draw(st.integers(1, 3))):
        elements = _elements(root)
        element = elements[draw(st.integers(0, len(elements) - 1))]
        op = draw(st.sampled_from(["text", "remove", "duplicate", "rename", "attribute"]))
        parent = element.getparent()
        if op == "text" or parent is None:
            if len(element) == 0:
                element.text = _xml_safe(draw(HOSTILE_TEXT))
        elif op == "remove":
            parent.remove(element)
        elif op == "duplicate":
            parent.insert(parent.index(element), copy.deepcopy(element))
        elif op == "rename":
            namespace = etree.QName(element).namespace
            name = draw(st.sampled_from(["X", "Kind", "Body", "Signatures"]))
            element.tag = f"{{{namespace}}}{name}" if namespace else name
        else:
            element.set(draw(st.sampled_from(["Id", "lang", "x"])), _xml_safe(draw(HOSTILE_TEXT)))
    return target.resigned(root)


def _xml_safe(text: str) -> str:
    """What lxml lets a tree hold (a peer's serialiser would not write the rest either; raw
    bytes of that kind are the byte mutations' business)."""
    return "".join(
        c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd")
    )


def receive_inputs(target: ReceiveTarget) -> st.SearchStrategy[bytes]:
    """Every kind of input for the receive path, mixed."""
    valid = target.valid("cis-enforcement.Request")
    return st.one_of(
        st.binary(max_size=512),
        byte_mutation(valid),
        mutated_tree(target),
    )


# --- the local API ------------------------------------------------------------------------------


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        HOSTILE_TEXT,
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated_submission(draw: st.DrawFn) -> Any:
    """A valid example's JSON with a few values replaced, keys removed or added."""
    document: Any = example(draw(st.sampled_from(TEMPLATES)))
    document["header"]["Recipient"] = SENDER  # the API's node is the receiver of the others
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(document))
        path = paths[draw(st.integers(0, len(paths) - 1))]
        op = draw(st.sampled_from(["replace", "remove", "add"]))
        if not path:
            if op == "replace":
                document = draw(JSON_VALUES)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if op == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif op == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(HOSTILE_TEXT)] = draw(JSON_VALUES)
        else:
            parent.append(draw(JSON_VALUES))
    return document


def submission_bodies() -> st.SearchStrategy[bytes]:
    """Bodies for ``POST /api/v1/messages``: mutated documents, and raw bytes."""
    encoded = mutated_submission().map(
        lambda d: json.dumps(d, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    )
    return st.one_of(encoded, encoded, st.binary(max_size=256))


@dataclass
class ApiTarget:
    """A running node (KZ-MJ, sending to RU-FSSP) on a loop of its own thread, and a token."""

    runtime: NodeRuntime
    token: str

    def check(self, body: bytes) -> str:
        store = self.runtime.node.store
        before = row_counts(store)
        connection = http.client.HTTPConnection("127.0.0.1", self.runtime.api_port, timeout=120)
        try:
            connection.request(
                "POST",
                "/api/v1/messages",
                body=body,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            response = connection.getresponse()
            status, raw = response.status, response.read()
        finally:
            connection.close()
        if status >= 500:
            raise PropertyViolated(f"{status}: {raw[:300]!r}")
        if status in (200, 201, 202):
            return str(status)
        try:
            code = json.loads(raw)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            raise PropertyViolated(f"{status} without a problem body: {raw[:300]!r}") from None
        after = row_counts(store)
        if after != before:
            raise PropertyViolated(f"{status} {code} but the store moved: {after}")
        return f"{status} {code}"


@contextmanager
def running_node(
    world: DemoWorld, tag: str, database_url: str = "", *, console: bool = False
) -> Iterator[NodeRuntime]:
    """KZ-MJ as a running node (no delivery) on an event loop of its own thread, so that the
    synchronous Hypothesis tests can talk to it over HTTP."""
    config = node_config(world, RECEIVER, tag, database_url=database_url, peer_port=0)
    runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-node", daemon=True)
    thread.start()

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    run(runtime.start(deliver=False, console=console))
    try:
        yield runtime
    finally:
        run(runtime.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@contextmanager
def api_target(world: DemoWorld, tag: str, database_url: str = "") -> Iterator[ApiTarget]:
    with running_node(world, tag, database_url) as runtime:
        yield ApiTarget(runtime, create_token(runtime.node.store, datetime.now(UTC)))


def world_for_fuzzing(root: Path) -> DemoWorld:
    """A demo world of the four bodies (the long campaign's; the tests take the session's)."""
    from datetime import timedelta

    from gateway.demo.setup import build_world

    return build_world(root, now=datetime.now(UTC) - timedelta(days=2))


# --- the console --------------------------------------------------------------------------------

CONSOLE_USER = "fuzz-operator"
CONSOLE_PASSWORD = "fuzz-operator-password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 303 is an answer to look at, not to follow


@dataclass
class ConsoleTarget:
    """The console of a running node, signed in as an operator, with one received request
    (a conversation its forms act on)."""

    runtime: NodeRuntime
    conversation_id: str
    opener: urllib.request.OpenerDirector
    csrf: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.runtime.console_port}"

    def request(self, path: str, form: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=120) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    def sign_in(self) -> None:
        _, page = self.request("/login")
        token = _CSRF.search(page)
        assert token, "the sign-in page has no CSRF token"
        status, _ = self.request(
            "/login",
            [
                ("username", CONSOLE_USER),
                ("password", CONSOLE_PASSWORD),
                ("csrf_token", token.group(1)),
            ],
        )
        assert status == 303, status
        _, page = self.request("/")
        token = _CSRF.search(page)
        assert token, "the dashboard has no CSRF token"
        self.csrf = token.group(1)

    def check(self, submission: tuple[str, list[tuple[str, str]]]) -> str:
        """POST one form (the CSRF token added); its outcome, or PropertyViolated."""
        path, form = submission
        store = self.runtime.node.store
        before = row_counts(store)
        status, page = self.request(
            path.format(c=self.conversation_id), [("csrf_token", self.csrf), *form]
        )
        if status >= 500:
            raise PropertyViolated(f"console {status} at {path}: {page[:300]!r}")
        if status not in (302, 303) and row_counts(store) != before:
            raise PropertyViolated(f"console {status} at {path} but the store moved")
        return f"{status} {path.split('/')[-1]}"


FORM_TEXT = HOSTILE_TEXT.map(
    lambda t: t.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
)
"""Form fields arrive as UTF-8 bytes: a lone surrogate cannot be sent, its replacement can."""


def console_forms() -> st.SearchStrategy[tuple[str, list[tuple[str, str]]]]:
    """The forms an operator posts about a conversation, with hostile values."""
    field = st.tuples(
        st.sampled_from(
            ["Ground", "Circumstances", "ConsultationsHeld", "Reason", "ExpectedDate", "purpose"]
        ),
        FORM_TEXT,
    )
    fields = st.lists(field, max_size=6)
    refuse = st.tuples(st.just("/conversations/{c}/refuse"), fields)
    delay = st.tuples(st.just("/conversations/{c}/actions/delay"), fields)
    purpose = st.tuples(st.just("/conversations/{c}/purpose"), fields)
    return st.one_of(refuse, delay, purpose)


@contextmanager
def console_target(world: DemoWorld, tag: str) -> Iterator[ConsoleTarget]:
    from gateway.app.passwords import hash_password
    from gateway.store import users

    with running_node(world, tag, console=True) as runtime:
        node = runtime.node
        with node.store.transaction() as conn:
            users.create(
                conn,
                CONSOLE_USER,
                hash_password(CONSOLE_PASSWORD),
                ["operator", "confidential-reader"],
                datetime.now(UTC),
            )
        request = Signer.of(world, SENDER).document(
            "cis-enforcement.Request", datetime.now(UTC), Recipient=RECEIVER
        )
        outcome = node.receive(SENDER, request)
        assert outcome.disposition is Disposition.ACCEPTED, outcome.code
        root = etree.fromstring(request)
        conversation = root.findtext(
            "{urn:cis-exchange:envelope:1}Header/{urn:cis-exchange:envelope:1}ConversationId"
        )
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )
        target = ConsoleTarget(runtime, (conversation or "").strip(), opener)
        target.sign_in()
        yield target
