"""`python -m kubemetrics worker` as a real process (uvloop, the real decoder, flags as the supervisor
passes them) against fake kubelets and a fake front in this test's event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
from test_worker_fakes import REPO_ROOT, FakeFront, FakeKubelet, FrontServer, TLSMaterial

pytestmark = pytest.mark.integration


@asynccontextmanager
async def worker_process(argv: list[str], log_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "python"), os.environ.get("PYTHONPATH")])),
    }
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kubemetrics",
            "worker",
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=REPO_ROOT,
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


async def wait_while_running(
    front: FakeFront, process: asyncio.subprocess.Process, log_path: Path, predicate: Callable[[], bool], what: str
) -> None:
    await front.wait_for(lambda: predicate() or process.returncode is not None, 8, what)
    if process.returncode is not None:
        pytest.fail(f"the worker exited with {process.returncode} before {what}:\n{read_log(log_path)}")


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


def worker_argv(front: FrontServer, tls: TLSMaterial, token_file: Path) -> list[str]:
    return [
        f"--front-address={front.address}",
        "--worker-id=w-proc",
        "--metric-resolution=1s",
        f"--kubelet-certificate-authority={tls.ca_file}",
        f"--kubelet-bearer-token-file={token_file}",
        "--kubelet-request-timeout=500ms",
    ]


async def test_a_worker_process_scrapes_pushes_and_exits_non_zero_when_the_front_goes(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.1")
    wrong_ca = TLSMaterial.create(tmp_path, "127.0.9.2", name="wrong-ca")
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t\n")
    server = await FrontServer(tmp_path).start()
    good, impostor = FakeKubelet("127.0.9.1", tls), FakeKubelet("127.0.9.2", wrong_ca)
    await good.start()
    await impostor.start()
    front = server.front
    front.assign(good.target("good"), impostor.target("impostor"))
    try:
        log_path = tmp_path / "worker.log"
        async with worker_process(worker_argv(server, tls, token_file), log_path) as process:
            await wait_while_running(
                front, process, log_path, lambda: len(front.samples_of("good")) >= 2, "two samples came"
            )
            await front.wait_for(lambda: len(front.outcomes("impostor")) >= 1, 2, "the impostor's outcome")
            assert [(hello.worker_id, hello.pid) for hello in front.hellos] == [("w-proc", process.pid)]
            assert {outcome.error_kind for outcome in front.outcomes("impostor")} == {"tls"}
            assert impostor.requests == []
            assert {request.headers["Authorization"] for request in good.requests} == {"Bearer s3cr3t"}

            await server.stop()
            async with asyncio.timeout(3):
                exit_code = await process.wait()
        assert exit_code != 0
        log = read_log(log_path)
        assert 'Failed to scrape node node="impostor"' in log
        assert log.count('node="impostor"') == 1
        assert "Exiting: " in log
    finally:
        await good.stop()
        await impostor.stop()
        await server.stop()


async def test_a_worker_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    tls = TLSMaterial.create(tmp_path, "127.0.9.3")
    token_file = tmp_path / "token"
    token_file.write_text("t")
    server = await FrontServer(tmp_path).start()
    kubelet = FakeKubelet("127.0.9.3", tls)
    await kubelet.start()
    front = server.front
    front.assign(kubelet.target("n1"))
    try:
        log_path = tmp_path / "worker.log"
        async with worker_process(worker_argv(server, tls, token_file), log_path) as process:
            await wait_while_running(
                front, process, log_path, lambda: len(front.samples_of("n1")) >= 1, "a sample came"
            )
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                assert await process.wait() == 0
        assert front.push_streams_ended == 1
        assert len(front.outcomes("n1")) == len(kubelet.requests)
    finally:
        await kubelet.stop()
        await server.stop()
