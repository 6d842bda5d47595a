"""Time-boxed fuzzing of the native kubelet payload decoders through their Python entry points.

Inputs are derived from the real fixtures: cut short, bytes flipped or replaced, tokens inserted,
ranges deleted or repeated, two payloads spliced, plus plain random bytes. Whatever the input, a
decoder may only return an encoded NodeSample that protoc's classes parse, or raise DecodeError
with a known kind and an offset inside the body; anything else (another exception, a crash of the
interpreter) fails the test.

    KUBEMETRICS_FUZZ_SECONDS=5 .venv/bin/pytest tests/fuzz        # seconds per decoder, default 60
    KUBEMETRICS_FUZZ_SEED=1234 ...                                  # replay a run

A decoder is added by appending a FuzzTarget to TARGETS.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubemetrics import _native
from kubemetrics.v1 import sample_pb2

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("KUBEMETRICS_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
KUBELET_FIXTURES = SHARED_DIR / "fixtures" / "kubelet"

FUZZ_SECONDS = float(os.environ.get("KUBEMETRICS_FUZZ_SECONDS", "60"))
FUZZ_NODE = "fuzz-node"
SCRAPE_TIME = 1_900_000_000_000_000_000
DECODE_ERROR_KINDS = {"malformed", "truncated", "wrong_type", "oversized", "encoding", "missing_field", "kubelet_error"}


@dataclass(frozen=True)
class FuzzTarget:
    """One decoder: how to call it on a body, and the real payloads mutations start from."""

    name: str
    endpoint: str
    decode: Callable[[bytes], bytes]
    fixture_dir: Path
    fixture_glob: str
    # Bytes worth inserting for this format (besides the generic ones below).
    tokens: Sequence[bytes] = field(default_factory=tuple)

    def seeds(self) -> list[bytes]:
        return [path.read_bytes() for path in sorted(self.fixture_dir.glob(self.fixture_glob))]


TARGETS = [
    FuzzTarget(
        name="summary",
        endpoint="/stats/summary",
        decode=lambda body: _native.decode_summary(body, FUZZ_NODE, SCRAPE_TIME),
        fixture_dir=KUBELET_FIXTURES / "summary",
        fixture_glob="*.json",
        tokens=(
            b"null",
            b'""',
            b'"none"',
            b"-1",
            b"1e400",
            b"18446744073709551616",
            b"0.5",
            b"{}",
            b"[]",
            b"{",
            b"]",
            b",",
            b":",
            b'"\\ud800"',
            b'"\\u0000"',
            b'"2026-02-30T00:00:00Z"',
            b'"2026-06-26T10:14:35.123+02:00"',
            b'"pods":null,',
            b'"containers":null,',
            b'"startTime":null,',
            b'"cpu":{},',
        ),
    ),
    FuzzTarget(
        name="resource",
        endpoint="/metrics/resource",
        decode=lambda body: _native.decode_resource_metrics(body, FUZZ_NODE, SCRAPE_TIME),
        fixture_dir=KUBELET_FIXTURES / "resource",
        fixture_glob="*.prom",
        tokens=(
            b"NaN",
            b"+Inf",
            b"-1",
            b"1e400",
            b"1.253376e+07",
            b"-62135596800000",
            b"99999999999999999999",
            b"{",
            b"}",
            b"=",
            b",",
            b"\r\n",
            b"# HELP x y\n",
            b'container=""',
            b'pod="p",',
            b'namespace="a\\"b",',
            b"_extra",
            b"resource_scrape_error 1\n",
            b"container_cpu_usage_seconds_total",
            b'container_memory_working_set_bytes{container="c",namespace="n",pod="p"} 1 1\n',
        ),
    ),
]

GENERIC_TOKENS = (b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98\x80", b"\\", b'"', b"\n", b" " * 64)


class Mutator:
    """Derives damaged inputs from the seeds with a seeded generator, so a failing run replays."""

    def __init__(self, rng: random.Random, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> None:
        self.rng = rng
        self.seeds = seeds
        self.tokens = [*tokens, *GENERIC_TOKENS]

    def next_input(self) -> bytes:
        choice = self.rng.random()
        if choice < 0.05:
            return self.rng.randbytes(self.rng.randrange(0, 512))
        body = bytearray(self.rng.choice(self.seeds))
        if choice < 0.20:
            return bytes(body[: self.rng.randrange(0, len(body) + 1)])
        if choice < 0.25:
            other = self.rng.choice(self.seeds)
            return bytes(body[: self.rng.randrange(0, len(body) + 1)] + other[self.rng.randrange(0, len(other) + 1) :])
        for _ in range(self.rng.randint(1, 8)):
            self.mutate(body)
        return bytes(body)

    def mutate(self, body: bytearray) -> None:
        if not body:
            body.extend(self.rng.choice(self.tokens))
            return
        at = self.rng.randrange(len(body))
        operation = self.rng.randrange(5)
        if operation == 0:
            # Mostly one low bit, so most flips stay ASCII and reach the parser past the UTF-8 check.
            body[at] ^= 1 << self.rng.randrange(8)
        elif operation == 1:
            body[at] = self.rng.choice(b'"{}[],:\\0123456789.-eEntfu \n')
        elif operation == 2:
            body[at:at] = self.rng.choice(self.tokens)
        elif operation == 3:
            del body[at : at + self.rng.randrange(1, 64)]
        else:
            chunk = body[at : at + self.rng.randrange(1, 256)]
            to = self.rng.randrange(len(body) + 1)
            body[to:to] = chunk


def check_one(target: FuzzTarget, body: bytes) -> str:
    """Decodes one input and returns the outcome ("ok" or the error kind); fails on anything else."""
    try:
        encoded = target.decode(body)
    except _native.DecodeError as error:
        assert error.kind in DECODE_ERROR_KINDS, error
        assert 0 <= error.offset <= len(body), error
        assert isinstance(error.field, str)
        assert str(error).startswith(f'decode {target.endpoint} of node "{FUZZ_NODE}": {error.kind} at byte ')
        return str(error.kind)
    sample = sample_pb2.NodeSample.FromString(encoded)
    assert sample.node == FUZZ_NODE
    assert sample.scrape_time_unix_nanos == SCRAPE_TIME
    return "ok"


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS, ids=[target.name for target in TARGETS])
def test_decoder_survives_damaged_and_random_input(target: FuzzTarget) -> None:
    seed = int(os.environ.get("KUBEMETRICS_FUZZ_SEED", str(time.time_ns())))
    seeds = target.seeds()
    assert seeds, f"no fixtures in {target.fixture_dir}"
    mutator = Mutator(random.Random(seed), seeds, target.tokens)

    # The unmodified payloads decode.
    for body in seeds:
        assert check_one(target, body) == "ok"

    outcomes: dict[str, int] = {}
    tried = 0
    deadline = time.monotonic() + FUZZ_SECONDS
    while time.monotonic() < deadline:
        body = mutator.next_input()
        try:
            outcome = check_one(target, body)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\nKUBEMETRICS_FUZZ_SEED={seed}, input {tried}: {body[:200]!r}") from None
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        tried += 1

    print(f"\nfuzz {target.name}: {tried} inputs in {FUZZ_SECONDS:g}s (seed {seed}): {dict(sorted(outcomes.items()))}")
    assert tried > 0
    # Mutations that keep a payload valid and ones that break it must both occur, or the mutator
    # is not exercising the decoder.
    assert outcomes.get("ok", 0) > 0
    assert sum(count for kind, count in outcomes.items() if kind != "ok") > 0
