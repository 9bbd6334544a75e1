"""Pytest fixtures around ``tests.otlp_receiver``; import them into a conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .otlp_receiver import OTLPReceiver, make_self_signed_cert


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A running OTLP receiver (gRPC + HTTP on 127.0.0.1, OS-chosen ports), stopped after."""
    receiver = OTLPReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def otlp_self_signed_cert() -> tuple[bytes, bytes]:
    """A (cert_pem, key_pem) pair for localhost / 127.0.0.1, made once per session."""
    return make_self_signed_cert()


@pytest.fixture
def otlp_tls_receiver(otlp_self_signed_cert: tuple[bytes, bytes]) -> Iterator[OTLPReceiver]:
    """A running OTLP receiver serving TLS; trust ``receiver.cert_file`` as the CA."""
    receiver = OTLPReceiver(tls=otlp_self_signed_cert).start()
    try:
        yield receiver
    finally:
        receiver.stop()
