"""Asking an HTTP server about a body it must refuse by its declared size alone."""

from __future__ import annotations

import socket


def answer_to_declared_length(port: int, path: str, token: str, length: int) -> bytes:
    """POST headers declaring a ``length``-byte body, send no body, and return what the server
    answers (read until its Content-Length refusal or the connection closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode())
        answer = b""
        while b"(Content-Length)" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer
