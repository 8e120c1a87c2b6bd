"""The moto double's transport (tests/doubles/aws_moto_server.py): every connection ends with an
orderly close (FIN), never a reset, even when the client's request bytes reach the server after
its answer.

Linux answers with RST instead of FIN when a socket is closed with bytes still unread in its
receive queue, or when bytes arrive after the close; a client then sees "connection reset by
peer" (Go's AWS SDK retries such a call, and a create that moto carried out becomes a duplicate).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.doubles.aws_moto_server import moto_server

LATE_BODY = b"x" * 4096


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with moto_server() as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        yield parts.hostname, parts.port


def _read_response(conn: socket.socket) -> bytes:
    """The whole response, by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, f"connection closed before the response headers: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lengths = [
        line.split(b":", 1)[1]
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    assert lengths, head
    while len(body) < int(lengths[0]):
        chunk = conn.recv(4096)
        assert chunk, "connection closed in the middle of the response body"
        body += chunk
    return head


def _request_head(method: str, address: tuple[str, int], body_length: int) -> bytes:
    """A request's line and headers, announcing a body of `body_length` bytes."""
    host, port = address
    return b"%s /moto-api/ HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %d\r\n\r\n" % (
        method.encode(),
        host.encode(),
        port,
        body_length,
    )


def _pending_error(conn: socket.socket) -> int:
    """The socket's pending error: ECONNRESET once an RST came in (recv still answers b"" when
    the server's FIN came first)."""
    return conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


def test_a_body_that_arrives_after_the_answer_does_not_reset_the_connection(
    address: tuple[str, int],
) -> None:
    # moto answers GET /moto-api/ without reading the body the request announces; the body comes
    # well after the answer (a client descheduled between writing its headers and its body).
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_request_head("GET", address, len(LATE_BODY)))
        head = _read_response(conn)
        assert head.startswith(b"HTTP/1.1 200"), head
        time.sleep(0.3)
        conn.sendall(LATE_BODY)
        time.sleep(0.2)
        assert conn.recv(4096) == b"", "the server sent more than its response"
        assert _pending_error(conn) == 0, "the server reset the connection (RST, not FIN)"


def test_a_post_whose_body_the_app_does_not_read_ends_with_a_clean_close(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(_request_head("POST", address, len(LATE_BODY)) + LATE_BODY)
        _read_response(conn)
        time.sleep(0.2)
        assert conn.recv(4096) == b""
        assert _pending_error(conn) == 0, "the server reset the connection (RST, not FIN)"
