"""One scrape: GET + decode into a ScrapeResult, every failure kept to that node, and failure logging
that says node, URL and cause once per cause."""

from __future__ import annotations

import logging
import threading

import pytest
from kubemetrics.worker.kubelet_client import ScrapeFailure
from kubemetrics.worker.scrape import DECODE_ON_THREAD_BYTES, FailureLog, NodeScraper, ScrapeResult, ScrapeTarget
from test_worker_fakes import SUMMARY_PATH, decode_summary, describe, fixture_body
from yarl import URL

TARGET = ScrapeTarget("node-1", "10.0.0.1", 10250, SUMMARY_PATH)


class CannedClient:
    """Stands in for KubeletClient: answers with a body or raises a failure."""

    def __init__(self, answer: bytes | ScrapeFailure, max_body_bytes: int = 1 << 20) -> None:
        self.answer = answer
        self.max_body_bytes = max_body_bytes
        self.urls: list[URL] = []

    async def get(self, url: URL) -> bytes:
        self.urls.append(url)
        if isinstance(self.answer, ScrapeFailure):
            raise self.answer
        return self.answer


def scraper(answer: bytes | ScrapeFailure, decoder=decode_summary, max_sample_bytes: int = 1 << 20) -> NodeScraper:  # type: ignore[no-untyped-def]
    return NodeScraper(CannedClient(answer), decoder, max_sample_bytes)  # type: ignore[arg-type]


async def test_a_good_body_becomes_an_encoded_sample_of_that_node() -> None:
    result = await scraper(fixture_body()).scrape(TARGET)
    assert result.success
    assert result.error_kind == ""
    assert result.response_bytes == len(fixture_body())
    assert result.sample is not None
    sample = describe(result.sample)
    assert sample["scrape_time_unix_nanos"] == result.request_time_unix_nanos
    assert len(sample["pods"]) == 17


async def test_the_request_goes_to_the_targets_url() -> None:
    client = CannedClient(fixture_body())
    await NodeScraper(client, decode_summary, 1 << 20).scrape(ScrapeTarget("n", "fd00::5", 10250, SUMMARY_PATH))  # type: ignore[arg-type]
    assert [str(url) for url in client.urls] == ["https://[fd00::5]:10250/stats/summary?only_cpu_and_memory=true"]


async def test_a_request_failure_keeps_its_kind_message_and_byte_count() -> None:
    result = await scraper(ScrapeFailure("oversized", "too big", 12345)).scrape(TARGET)
    assert (result.success, result.error_kind, result.error_message, result.response_bytes) == (
        False,
        "oversized",
        "too big",
        12345,
    )
    assert result.sample is None


@pytest.mark.parametrize(
    ("body", "cause"),
    [(b"{not json", "malformed"), (fixture_body()[:-200], "truncated"), (b"", "truncated"), (b"[]", "wrong_type")],
)
async def test_a_body_the_decoder_rejects_is_a_decode_failure(body: bytes, cause: str) -> None:
    result = await scraper(body).scrape(TARGET)
    assert (result.success, result.error_kind) == (False, "decode")
    assert result.error_message.startswith('decode failed: decode /stats/summary of node "node-1": ' + cause)
    assert result.response_bytes == len(body)


async def test_the_decoders_own_size_refusal_is_an_oversized_failure() -> None:
    node_scraper = NodeScraper(CannedClient(fixture_body(), max_body_bytes=100), decode_summary, 1 << 20)  # type: ignore[arg-type]
    result = await node_scraper.scrape(TARGET)
    assert result.error_kind == "oversized"
    assert "exceeds the limit of 100 bytes" in result.error_message


async def test_a_decoder_bug_costs_only_the_sample() -> None:
    def broken(body: bytes, node: str, at: int, limit: int) -> bytes:
        raise RuntimeError("index out of range")

    result = await scraper(fixture_body(), decoder=broken).scrape(TARGET)
    assert (result.error_kind, result.error_message) == ("decode", "decode failed: index out of range")


async def test_a_sample_too_large_for_a_batch_is_refused_as_oversized() -> None:
    result = await scraper(fixture_body(), max_sample_bytes=100).scrape(TARGET)
    assert result.error_kind == "oversized"
    assert result.error_message.endswith("exceeds the 100-byte batch limit")


async def test_large_bodies_are_decoded_off_the_event_loop_thread() -> None:
    threads: list[int] = []

    def recording(body: bytes, node: str, at: int, limit: int) -> bytes:
        threads.append(threading.get_ident())
        return b"sample"

    await scraper(b"x" * 10, decoder=recording).scrape(TARGET)
    await scraper(b"x" * DECODE_ON_THREAD_BYTES, decoder=recording).scrape(TARGET)
    assert threads[0] == threading.get_ident()
    assert threads[1] != threading.get_ident()


def failed(kind: str, message: str) -> ScrapeResult:
    return ScrapeResult(TARGET.node, None, 0.1, 0, 0, kind, message)


def test_the_failure_log_says_node_url_and_cause_once_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    failures = FailureLog(logging.getLogger("test.failures"))
    ok = ScrapeResult(TARGET.node, b"s", 0.1, 0, 1)
    for result in [
        ok,
        failed("timeout", "request timed out after 10s waiting for the response"),
        failed("timeout", "request timed out after 10s reading the body"),
        failed("http_status", 'request failed, status: "500 Internal Server Error"'),
        failed("http_status", 'request failed, status: "500 Internal Server Error"'),
        failed("http_status", 'request failed, status: "403 Forbidden"'),
        failed("decode", "decode failed: truncated at byte 100"),
        failed("decode", "decode failed: truncated at byte 120"),
        ok,
        ok,
    ]:
        failures.record(TARGET, result)
    url = "https://10.0.0.1:10250/stats/summary?only_cpu_and_memory=true"
    assert [record.getMessage() for record in caplog.records] == [
        f'Failed to scrape node node="node-1" url="{url}" kind=timeout '
        'err="request timed out after 10s waiting for the response"',
        f'Failed to scrape node node="node-1" url="{url}" kind=http_status '
        r'err="request failed, status: \"500 Internal Server Error\""',
        f'Failed to scrape node node="node-1" url="{url}" kind=http_status '
        r'err="request failed, status: \"403 Forbidden\""',
        f'Failed to scrape node node="node-1" url="{url}" kind=decode err="decode failed: truncated at byte 100"',
        f'Scrape of node recovered node="node-1" url="{url}"',
    ]
    assert [record.levelname for record in caplog.records] == ["ERROR"] * 4 + ["INFO"]
    assert failures.failing_nodes() == frozenset()


class PathClient:
    """Answers per URL path: a body, or a failure (e.g. a kubelet without /metrics/resource)."""

    def __init__(self, answers: dict[str, bytes | ScrapeFailure]) -> None:
        self.answers = answers
        self.max_body_bytes = 1 << 20
        self.paths: list[str] = []

    async def get(self, url: URL) -> bytes:
        self.paths.append(url.raw_path_qs)
        answer = self.answers[url.raw_path_qs]
        if isinstance(answer, ScrapeFailure):
            raise answer
        return answer


RESOURCE_BODY = (
    b"node_cpu_usage_seconds_total 12.5 1700000000000\n"
    b"node_memory_working_set_bytes 1.048576e+06 1700000000000\n"
    b'container_cpu_usage_seconds_total{container="app",namespace="ns",pod="p"} 1.5 1700000000000\n'
    b'container_memory_working_set_bytes{container="app",namespace="ns",pod="p"} 4096 1700000000000\n'
)
AUTO_TARGET = ScrapeTarget("node-1", "10.0.0.1", 10250, "/metrics/resource", fallback_path=SUMMARY_PATH)


def native_scraper(client: PathClient) -> NodeScraper:
    from kubemetrics import _native

    return NodeScraper(
        client,  # type: ignore[arg-type]
        _native.decode_summary,
        1 << 20,
        resource_decoder=_native.decode_resource_metrics,
    )


async def test_a_resource_path_is_decoded_as_prometheus_text() -> None:
    client = PathClient({"/metrics/resource": RESOURCE_BODY})
    result = await native_scraper(client).scrape(AUTO_TARGET)
    assert result.sample is not None, result.error_message
    sample = describe(result.sample)
    assert sample["node_point"]["cumulative_cpu_nanos"] == 12_500_000_000
    assert [(p["namespace"], p["name"]) for p in sample["pods"]] == [("ns", "p")]
    assert client.paths == ["/metrics/resource"]


async def test_a_kubelet_without_the_resource_endpoint_is_scraped_on_the_summary_from_then_on() -> None:
    missing = ScrapeFailure("http_status", 'request failed, status: "404 Not Found"', status=404)
    client = PathClient({"/metrics/resource": missing, SUMMARY_PATH: fixture_body()})
    node_scraper = native_scraper(client)
    first = await node_scraper.scrape(AUTO_TARGET)
    second = await node_scraper.scrape(AUTO_TARGET)
    assert first.success and second.success
    assert len(describe(first.sample or b"")["pods"]) == 17
    # One wasted request for the whole life of the assignment, not one per resolution.
    assert client.paths == ["/metrics/resource", SUMMARY_PATH, SUMMARY_PATH]


async def test_without_a_fallback_a_404_is_an_http_status_failure() -> None:
    missing = ScrapeFailure("http_status", 'request failed, status: "404 Not Found"', status=404)
    client = PathClient({"/metrics/resource": missing})
    target = ScrapeTarget("node-1", "10.0.0.1", 10250, "/metrics/resource")
    result = await native_scraper(client).scrape(target)
    assert (result.success, result.error_kind, result.http_status) == (False, "http_status", 404)
    assert client.paths == ["/metrics/resource"]


async def test_other_errors_do_not_switch_to_the_fallback() -> None:
    broken = ScrapeFailure("http_status", 'request failed, status: "500 Internal Server Error"', status=500)
    client = PathClient({"/metrics/resource": broken, SUMMARY_PATH: fixture_body()})
    node_scraper = native_scraper(client)
    await node_scraper.scrape(AUTO_TARGET)
    await node_scraper.scrape(AUTO_TARGET)
    assert client.paths == ["/metrics/resource", "/metrics/resource"]
