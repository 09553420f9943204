"""The offline guard (conftest): reaching beyond loopback fails, loopback does not."""

from __future__ import annotations

import socket

import pytest

from tests import conftest


def test_resolving_or_connecting_to_a_remote_host_is_refused() -> None:
    with pytest.raises(conftest.UnexpectedNetworkCall):
        socket.getaddrinfo("example.org", 443)
    with socket.socket() as sock, pytest.raises(conftest.UnexpectedNetworkCall):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed anyway
    assert len(conftest._OFFENCES) == 2
    conftest._OFFENCES.clear()  # expected here; any other test would now fail


def test_loopback_is_allowed() -> None:
    assert socket.getaddrinfo("localhost", 80)
    assert socket.getaddrinfo("127.0.0.1", 80)
