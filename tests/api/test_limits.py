"""The API's door, tried from outside over raw sockets and HTTP against a real `botwarden
serve`: the token is decided from the headers before a byte of body is read, a body
over the cap is refused (declared or streamed in chunks) before it was all sent, fields
have lengths and refuse control characters, and every refusal is a JSON 4xx."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator

import httpx
import pytest

from botwarden.api.gate import MAX_BODY
from botwarden.keystore import MASTER_ENV, new_master_key
from tests.api.server import Server

JSON = {"Content-Type": "application/json"}
HUGE = 300 * 1024 * 1024  # what the server grew to 1.6 GB on
PEM_SECRET = (  # a venue secret may be a private key in PEM: line breaks are part of it
    "-----BEGIN EC PRIVATE KEY-----\n" + "A" * 64 + "\n" + "B" * 64 + "\n"
    "-----END EC PRIVATE KEY-----\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("home")
    server = Server(home, {MASTER_ENV: new_master_key()})
    yield server
    server.close()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock


def head(path: str, *lines: str) -> bytes:
    return ("\r\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *lines]) + "\r\n\r\n").encode()


def answer_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The response, read until the server closes: status, headers, body."""
    raw = b""
    try:
        while chunk := sock.recv(65536):
            raw += chunk
    except ConnectionResetError:  # the body it never read, dropped: the answer came first
        pass
    top, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = top.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (h.split(": ", 1) for h in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path", ["/api/v1/bots", "/api/v1/keys", "/api/v1/bots/x/start"])
def test_no_token_is_refused_from_the_headers_without_reading_the_body(
    server: Server, path: str
) -> None:
    with connect(server) as sock:
        sock.sendall(
            head(
                path,
                "Content-Type: application/json",
                f"Content-Length: {HUGE}",
                "Expect: 100-continue",
            )
        )
        status, headers, body = answer_of(sock)  # not a byte of the 300 MiB was sent
    assert status == 401, "the first answer: no '100 Continue', no waiting for the body"
    assert headers["content-type"] == "application/json"
    assert headers["www-authenticate"] == "Bearer"
    assert "token" in json.loads(body)["error"]


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            head(
                "/api/v1/keys",
                f"Authorization: Bearer {server.token}",
                "Content-Type: application/json",
                f"Content-Length: {HUGE}",
            )
        )
        status, headers, body = answer_of(sock)
    assert status == 413 and headers["content-type"] == "application/json"
    assert f"{MAX_BODY // 1024} KiB" in json.loads(body)["error"]


def test_a_chunked_body_is_cut_off_at_the_cap_before_it_was_all_sent(server: Server) -> None:
    chunk = b"x" * 16384
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    offered, sent = 64 * 1024 * 1024, 0
    with connect(server) as sock:
        sock.sendall(
            head(
                "/api/v1/keys",
                f"Authorization: Bearer {server.token}",
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
            )
        )
        try:
            while sent < offered and not select.select([sock], [], [], 0)[0]:
                sock.sendall(framed)
                sent += len(chunk)
            sock.sendall(b"0\r\n\r\n")  # all of it sent: the body ends
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed its side: its answer is waiting to be read
        status, headers, body = answer_of(sock)
    assert status == 413 and headers["content-type"] == "application/json", body
    assert sent < offered, "the answer came before the whole body was sent"
    assert "KiB" in json.loads(body)["error"]
    assert server.client.get("/healthz").json() == {"status": "ok"}


def test_a_body_at_the_cap_passes_and_one_byte_more_does_not(server: Server) -> None:
    start = b'{"config": "/no/such/bot.yaml"}'
    at_cap = start + b" " * (MAX_BODY - len(start))
    passed = server.client.post("/api/v1/bots", content=at_cap, headers=JSON)
    assert passed.status_code == 422 and "bot.yaml" in passed.json()["error"], passed.text
    over = server.client.post("/api/v1/bots", content=at_cap + b" ", headers=JSON)
    assert over.status_code == 413 and over.headers["content-type"] == "application/json"


def test_health_and_the_dashboard_stay_open_and_the_rest_is_shut(server: Server) -> None:
    for path in ("/healthz", "/", "/static/app.js"):
        assert httpx.get(server.url + path).status_code == 200, path
    for path in ("/api/v1/no-such-route", "/static", "/healthz/", "/metrics"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 401, path
        assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("/api/v1/bots", '{"config": "bot\\u0000.yaml"}', "config"),
        ("/api/v1/bots", '{"config": "bot.yaml\\nX"}', "config"),
        ("/api/v1/bots", '{"config": "\\ud800.yaml"}', "config"),
        ("/api/v1/bots", json.dumps({"config": "/" + "d" * 5000}), "config"),
        (
            "/api/v1/keys",
            json.dumps({"name": "n1", "api_key": "PK\x00SECRETPART", "secret_key": "s"}),
            "api_key",
        ),
        (
            "/api/v1/keys",
            json.dumps({"name": "n2", "api_key": "PK" + "K" * 300, "secret_key": "s"}),
            "api_key",
        ),
        (
            "/api/v1/keys",
            json.dumps({"name": "n3", "api_key": "PK12345678", "secret_key": "S" * 5000}),
            "secret_key",
        ),
        (
            "/api/v1/keys",
            json.dumps({"name": "n4", "api_key": "PK12345678", "secret_key": "SECRET\x07PART"}),
            "secret_key",
        ),
        (
            "/api/v1/keys",
            '{"name": "n5", "api_key": "PK\\udfffSECRETPART", "secret_key": "s"}',
            "api_key",
        ),
        (
            "/api/v1/keys",
            json.dumps({"name": "n\x006", "api_key": "PK12345678", "secret_key": "s"}),
            "name",
        ),
    ],
)
def test_a_bad_field_gets_a_422_naming_it_and_nothing_is_stored(
    server: Server, route: str, body: str, field: str
) -> None:
    answer = server.client.post(route, content=body.encode(), headers=JSON)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert f"body.{field}:" in error and "Traceback" not in answer.text
    assert "SECRET" not in error and "PART" not in error, "a key's value is never shown"
    assert server.client.get("/api/v1/keys").json() == []
    assert server.client.get("/api/v1/bots").json() == []


def test_a_ten_mib_key_is_not_stored(server: Server) -> None:
    body = {"name": "big", "api_key": "K" * (10 * 1024 * 1024), "secret_key": "s"}
    answer = server.client.post("/api/v1/keys", json=body)
    assert answer.status_code == 413, answer.text[:200]
    assert server.client.get("/api/v1/keys").json() == []


def test_a_pem_secret_with_its_line_breaks_is_stored(server: Server) -> None:
    body = {"name": "pem", "api_key": "organizations/o1/apiKeys/k1", "secret_key": PEM_SECRET}
    stored = server.client.post("/api/v1/keys", json=body)
    assert stored.status_code == 201, stored.text
    assert server.client.delete("/api/v1/keys/pem").status_code == 204
