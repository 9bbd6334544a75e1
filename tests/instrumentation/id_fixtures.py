"""Id generators that make two tracers draw the same ids, so a test can compare a span we
make with the one the SDK's ``start_span`` makes for the same request."""

from __future__ import annotations

import random

from opentelemetry.sdk.trace.id_generator import IdGenerator


class Sequential(IdGenerator):
    """Ids in a known order, so two tracers given the same requests make the same ids."""

    def __init__(self, random_ids: bool = True) -> None:
        self._next = 0x100
        self._random = random_ids

    def generate_span_id(self) -> int:
        self._next += 1
        return self._next

    def generate_trace_id(self) -> int:
        self._next += 1
        return (0xABC << 64) | self._next

    def is_trace_id_random(self) -> bool:
        return self._random


class Seeded(IdGenerator):
    """Random ids from a seeded generator: two tracers with the same seed draw the same
    ids, spread over the whole range (a ratio sampler looks at the low 64 bits)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True
