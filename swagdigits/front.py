"""``swagdigits up``'s buffering front: what nginx is to compose, for one machine without Docker.

Why it exists: gunicorn's threaded worker hands a connection to a thread when
its first byte arrives, and the thread then waits for the rest of the request.
A few dozen clients that send their headers a byte at a time (slowloris) hold
every web thread, and drawings wait behind them (issue 15). This front reads
each request whole, head and body, under deadlines, in one asyncio loop where a
waiting connection costs a few kilobytes and no thread; only then does it pass
the request to the web tier on loopback, one request per upstream connection
(``Connection: close``). The web tier's answer is read whole too (spooled to
disk past ``SPOOL_BYTES``), so a client that reads slowly holds no web thread
either. A WebSocket upgrade the web tier accepts (101) is relayed byte for byte
in both directions for the socket's life.

The front adds the client's address to ``X-Forwarded-For``; ``swagdigits up``
tells the web tier to trust one more proxy hop, so rate limits and socket caps
still see each client. Refusals are JSON with ``Connection: close``: 400 for a
malformed head, 408 for a request not received in time, 413 for a body over the
web tier's largest limit, 431 for an oversized head, 502 when the web tier does
not answer, 503 when the front holds ``max_connections`` already.
"""
from __future__ import annotations

import asyncio
import json
import logging
import resource
import tempfile
import time
from dataclasses import dataclass

log = logging.getLogger("swagdigits.front")

HEAD_MAX_BYTES = 64 * 1024          # a request head (request line + headers) larger than this: 431
HEAD_TIMEOUT_S = 10.0               # the whole head must arrive within this (nginx: 60 s between reads)
BODY_GRACE_S = 10.0                 # a body gets this long, plus its size at BODY_MIN_RATE
BODY_MIN_RATE = 64 * 1024           # bytes per second a slow body must still average
UPSTREAM_CONNECT_S = 5.0
SPOOL_BYTES = 1024 * 1024           # bodies and answers beyond this go to a temporary file
READ_CHUNK = 64 * 1024
MAX_CONNECTIONS = 4096              # open client connections (raised RLIMIT_NOFILE permitting)

# Hop-by-hop headers the front decides for itself, and forwarding headers it writes.
_DROPPED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
            "content-length", "expect", "upgrade", "x-forwarded-proto"}


class Refusal(Exception):
    """A request the front answers itself, without troubling the web tier."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


@dataclass
class Head:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    def wants_upgrade(self) -> bool:
        return any("upgrade" in v.lower() for v in self.values("connection")) and bool(self.values("upgrade"))


def parse_head(raw: bytes) -> Head:
    """The request line and headers; ``Refusal(400)`` for anything an HTTP/1.1 server must refuse."""
    lines = raw.decode("latin-1").split("\r\n")          # latin-1: every byte is a character
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/1."):
        raise Refusal(400, "Bad Request", "malformed request line")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise Refusal(400, "Bad Request", "malformed header line")
        headers.append((name, value.strip()))
    return Head(parts[0], parts[1], parts[2], headers)


def body_length(head: Head, max_body: int) -> int | None:
    """Content-Length as an int (0 when absent), or None for a chunked body; refuses smuggling shapes."""
    encodings = [e.strip().lower() for v in head.values("transfer-encoding") for e in v.split(",")]
    lengths = set(head.values("content-length"))
    if encodings:
        if lengths:
            raise Refusal(400, "Bad Request", "both Transfer-Encoding and Content-Length")
        if encodings != ["chunked"]:
            raise Refusal(501, "Not Implemented", "only the chunked transfer coding is understood")
        return None
    if not lengths:
        return 0
    if len(lengths) > 1 or not next(iter(lengths)).isdigit():
        raise Refusal(400, "Bad Request", "invalid Content-Length")
    length = int(next(iter(lengths)))
    if length > max_body:
        raise Refusal(413, "Payload Too Large", f"request body over {max_body} bytes")
    return length


def upstream_head(head: Head, peer: str, body_size: int) -> bytes:
    """The head the web tier gets: hop-by-hop headers decided here, the client appended to X-Forwarded-For."""
    kept = [(k, v) for k, v in head.headers if k.lower() not in _DROPPED and k.lower() != "x-forwarded-for"]
    forwarded = ", ".join(head.values("x-forwarded-for") + [peer])
    kept.append(("X-Forwarded-For", forwarded))
    kept.append(("X-Forwarded-Proto", "http"))
    if head.wants_upgrade():
        kept += [("Connection", "Upgrade"), ("Upgrade", head.values("upgrade")[0])]
    else:
        kept.append(("Connection", "close"))
    if body_size or head.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
        kept.append(("Content-Length", str(body_size)))
    lines = [f"{head.method} {head.target} {head.version}"] + [f"{k}: {v}" for k, v in kept]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def refusal_bytes(refusal: Refusal) -> bytes:
    body = json.dumps({"error": refusal.message}).encode()
    return (f"HTTP/1.1 {refusal.status} {refusal.reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Front:
    """Listens on ``host:port`` and passes whole requests to the web tier at ``upstream``."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int], max_body: int,
                 max_connections: int = MAX_CONNECTIONS, head_timeout: float = HEAD_TIMEOUT_S,
                 body_grace: float = BODY_GRACE_S):
        self.host, self.port, self.upstream = host, port, upstream
        self.max_body, self.max_connections = max_body, max_connections
        self.head_timeout, self.body_grace = head_timeout, body_grace
        self.open = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, self.host, self.port,
                                                 limit=HEAD_MAX_BYTES, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("front on http://%s:%d/ -> web tier at %s:%d", self.host, self.port, *self.upstream)

    async def serve_forever(self) -> None:
        await self.start()
        async with self.server:
            await self.server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            if self.open > self.max_connections:
                raise Refusal(503, "Service Unavailable", "too many open connections; try again")
            await self._exchange(reader, writer)
        except Refusal as refusal:
            await self._refuse(writer, refusal)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass                                  # the client went away; nothing to answer
        except Exception:
            log.exception("front failed a request")
        finally:
            self.open -= 1
            writer.close()

    async def _refuse(self, writer: asyncio.StreamWriter, refusal: Refusal) -> None:
        try:
            writer.write(refusal_bytes(refusal))
            await asyncio.wait_for(writer.drain(), HEAD_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError):
            pass

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        head = parse_head(await self._read_head(reader))
        length = body_length(head, self.max_body)
        if length != 0 and any(v.lower() == "100-continue" for v in head.values("expect")):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as body:
            size = await self._read_body(reader, length, body)
            up_reader, up_writer = await self._connect()
            try:
                up_writer.write(upstream_head(head, peer, size))
                body.seek(0)
                while chunk := body.read(READ_CHUNK):
                    up_writer.write(chunk)
                    await up_writer.drain()
                await self._answer(head, up_reader, up_writer, reader, writer)
            finally:
                up_writer.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.head_timeout)
        except asyncio.TimeoutError:
            raise Refusal(408, "Request Timeout", f"request head not received within {self.head_timeout:g} s")
        except asyncio.LimitOverrunError:
            raise Refusal(431, "Request Header Fields Too Large", f"request head over {HEAD_MAX_BYTES} bytes")

    async def _read_body(self, reader: asyncio.StreamReader, length: int | None, body) -> int:
        """Reads the whole body into ``body`` (de-chunked) before the web tier sees any of it."""
        expected = length if length is not None else self.max_body
        deadline = time.monotonic() + self.body_grace + expected / BODY_MIN_RATE
        try:
            if length is not None:
                await self._copy(reader, body, length, deadline)
                return length
            return await self._dechunk(reader, body, deadline)
        except asyncio.TimeoutError:
            raise Refusal(408, "Request Timeout", "request body not received in time")

    async def _copy(self, reader: asyncio.StreamReader, body, n: int, deadline: float) -> None:
        while n > 0:
            chunk = await asyncio.wait_for(reader.read(min(n, READ_CHUNK)), max(0.0, deadline - time.monotonic()))
            if not chunk:
                raise ConnectionError("client closed mid-body")
            body.write(chunk)
            n -= len(chunk)

    async def _dechunk(self, reader: asyncio.StreamReader, body, deadline: float) -> int:
        size = 0
        while True:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), max(0.0, deadline - time.monotonic()))
            try:
                n = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise Refusal(400, "Bad Request", "malformed chunk size")
            if n == 0:
                while (await asyncio.wait_for(reader.readuntil(b"\r\n"),
                                              max(0.0, deadline - time.monotonic()))) != b"\r\n":
                    pass                                            # trailers: not forwarded
                return size
            size += n
            if size > self.max_body:
                raise Refusal(413, "Payload Too Large", f"request body over {self.max_body} bytes")
            await self._copy(reader, body, n, deadline)
            if await asyncio.wait_for(reader.readexactly(2), max(0.0, deadline - time.monotonic())) != b"\r\n":
                raise Refusal(400, "Bad Request", "malformed chunk")

    async def _connect(self):
        try:
            return await asyncio.wait_for(asyncio.open_connection(*self.upstream, limit=HEAD_MAX_BYTES),
                                          UPSTREAM_CONNECT_S)
        except (OSError, asyncio.TimeoutError):
            raise Refusal(502, "Bad Gateway", "the web tier is not answering; try again shortly")

    async def _answer(self, head: Head, up_reader, up_writer, reader, writer) -> None:
        """The web tier's whole answer to the client, or, after a 101, both directions until one closes."""
        try:
            status_line = await up_reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            raise Refusal(502, "Bad Gateway", "the web tier closed the connection without answering")
        if head.wants_upgrade() and status_line.split(b" ")[1:2] == [b"101"]:
            writer.write(status_line)
            await asyncio.gather(_pipe(up_reader, writer), _pipe(reader, up_writer))
            return
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as answer:
            answer.write(status_line)
            while chunk := await up_reader.read(READ_CHUNK):    # the web tier closes after its answer
                answer.write(chunk)
            up_writer.close()                                    # its thread is free before we write
            answer.seek(0)
            while chunk := answer.read(READ_CHUNK):
                writer.write(chunk)
                await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(READ_CHUNK):
            sink.write(chunk)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        if sink.can_write_eof():
            try:
                sink.write_eof()
            except (OSError, RuntimeError):
                pass


def raise_file_limit(wanted: int) -> int:
    """Lifts the soft open-file limit towards ``wanted`` (each client and upstream takes a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def serve(host: str, port: int, upstream: tuple[str, int], max_body: int) -> int:
    limit = raise_file_limit(2 * MAX_CONNECTIONS + 64)
    front = Front(host, port, upstream, max_body, max_connections=min(MAX_CONNECTIONS, (limit - 64) // 2))
    try:
        asyncio.run(front.serve_forever())
    except KeyboardInterrupt:
        pass
    return 0
