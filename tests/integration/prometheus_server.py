"""A real Prometheus for integration tests, on a free loopback port.

    from prometheus_server import query, running_prometheus, wait_for

    with running_prometheus(tmp_path, jobs={"vectorticks": ["127.0.0.1:9464"]},
                            rule_files=[ROOT / "dashboards/alerts/vectorticks.rules.yml"]) as prom:
        wait_for(lambda: query(prom.url, 'up{job="vectorticks"} == 1'), timeout=20)
        alerts = prom.api("/api/v1/alerts")["alerts"]

``running_prometheus`` writes ``prometheus.yml`` (JSON, which is valid YAML: no PyYAML
needed) into a fresh directory, starts ``prometheus`` with its TSDB there and
``--web.enable-lifecycle`` (so ``prom.reload()`` re-reads the config and rules), waits for
``/-/ready`` and stops the process by pid at the end: SIGTERM, then SIGKILL.
``self_job="prometheus"`` makes it scrape itself, for tests that only need some series.

The binary is looked up on PATH; if it is missing the test fails with the install hint
(``make test`` installs it), rather than silently skipping the alerting checks.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

PROMETHEUS_INSTALL_HINT = "apt-get install -y prometheus"
T = TypeVar("T")


def prometheus_binary() -> str:
    """Path of ``prometheus``; fails the test with the install hint when it is missing."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(f"prometheus is not on PATH; install it with: {PROMETHEUS_INSTALL_HINT} "
                    f"(`make test` installs it)")
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _duration(seconds: float) -> str:
    """Seconds as a Prometheus config duration (whole milliseconds)."""
    return f"{round(seconds * 1000)}ms"


class PrometheusServer:
    """One ``prometheus`` subprocess scraping the given jobs.

    ``jobs`` maps a job name to its ``host:port`` targets; ``self_job`` adds a job that
    scrapes this server itself. ``scrape_interval`` and ``evaluation_interval`` are in
    seconds (the scrape timeout follows the interval, which Prometheus requires to be no
    longer). ``rule_files`` are referenced by absolute path, so edits plus ``reload()``
    take effect."""

    def __init__(self, binary: str, workdir: Path, *,
                 jobs: Mapping[str, Sequence[str]] | None = None, self_job: str | None = None,
                 scrape_interval: float = 1.0, evaluation_interval: float = 1.0,
                 rule_files: Sequence[str | Path] = (), extra_args: Sequence[str] = ()):
        self.binary = binary
        self.workdir = Path(workdir)
        self.jobs = {name: list(targets) for name, targets in (jobs or {}).items()}
        self.self_job = self_job
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.rule_files = [str(Path(f).resolve()) for f in rule_files]
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        """The configuration written to ``prometheus.yml``."""
        jobs = dict(self.jobs)
        if self.self_job:
            jobs[self.self_job] = [self.address, *jobs.get(self.self_job, [])]
        return {
            "global": {"scrape_interval": _duration(self.scrape_interval),
                       "scrape_timeout": _duration(min(self.scrape_interval, 10.0)),
                       "evaluation_interval": _duration(self.evaluation_interval)},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": name, "static_configs": [{"targets": targets}]}
                               for name, targets in jobs.items()],
        }

    def write_config(self) -> Path:
        self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
        return self.config_path

    def start(self, timeout: float = 30.0) -> None:
        """Start on a free port (a few tries: a probed port can be taken before the bind)
        and wait for ``/-/ready``."""
        if self.running:
            return
        ports = [self.port] if self.port is not None else [_free_port() for _ in range(3)]
        for port in ports:
            self.port = port
            if self._launch(timeout):
                return
        raise RuntimeError(f"prometheus was not ready on {self.address} within {timeout} s; "
                           f"log:\n{self.log_tail()}")

    def _launch(self, timeout: float) -> bool:
        self.write_config()
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        cmd = [self.binary, f"--config.file={self.config_path}",
               f"--storage.tsdb.path={data}", f"--web.listen-address={self.address}",
               "--web.enable-lifecycle", "--log.level=warn", *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:  # exited: port taken, bad config, …
                self.proc = None
                return False
            if self._ready():
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def reload(self, timeout: float = 10.0) -> None:
        """Rewrite ``prometheus.yml`` from the current attributes and POST ``/-/reload``
        (re-reads the config and every rule file)."""
        self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                raise RuntimeError(f"reload failed: HTTP {response.status}")

    def api(self, path: str, params: Mapping[str, Any] | None = None,
            timeout: float = 10.0) -> Any:
        """GET an ``/api/v1/…`` endpoint and return its ``data`` (raises on an error)."""
        return api_get(self.url, path, params, timeout=timeout)

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        return query(self.url, expr, at=at)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop this process by pid: SIGTERM, then SIGKILL if it does not exit."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextmanager
def running_prometheus(workdir: Path, *, jobs: Mapping[str, Sequence[str]] | None = None,
                       self_job: str | None = None, scrape_interval: float = 1.0,
                       evaluation_interval: float = 1.0, rule_files: Sequence[str | Path] = (),
                       extra_args: Sequence[str] = (),
                       timeout: float = 30.0) -> Iterator[PrometheusServer]:
    """A started ``PrometheusServer`` in ``workdir/prometheus``, stopped on exit."""
    directory = Path(workdir) / "prometheus"
    directory.mkdir(parents=True, exist_ok=True)
    server = PrometheusServer(prometheus_binary(), directory, jobs=jobs, self_job=self_job,
                              scrape_interval=scrape_interval,
                              evaluation_interval=evaluation_interval, rule_files=rule_files,
                              extra_args=extra_args)
    server.start(timeout)
    try:
        yield server
    finally:
        server.stop()


def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Body of a pytest fixture that starts servers on demand and stops them all at the
    end of the test — declare it in a conftest or test module as::

        @pytest.fixture
        def prometheus(tmp_path):
            yield from prometheus_factory(tmp_path)

        def test_x(prometheus):
            prom = prometheus(jobs={"vectorticks": [addr]}, rule_files=[rules])
    """
    servers: list[PrometheusServer] = []

    def start(**kwargs: Any) -> PrometheusServer:
        timeout = kwargs.pop("timeout", 30.0)
        directory = tmp_path / f"prometheus-{len(servers)}"
        directory.mkdir()
        server = PrometheusServer(prometheus_binary(), directory, **kwargs)
        servers.append(server)
        server.start(timeout)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def api_get(url: str, path: str, params: Mapping[str, Any] | None = None, *,
            timeout: float = 10.0) -> Any:
    """GET ``url + path`` with query parameters; the JSON ``data`` of a successful answer,
    else ``RuntimeError`` with Prometheus' error message."""
    full = url.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(full, timeout=timeout) as response:
            payload = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error")
        except ValueError:
            detail = exc.reason
        raise RuntimeError(f"GET {path} failed: HTTP {exc.code}: {detail}") from None
    if payload.get("status") != "success":
        raise RuntimeError(f"GET {path} failed: {payload.get('error')}")
    return payload["data"]


def query(url: str, expr: str, *, at: float | None = None,
          timeout: float = 10.0) -> list[dict[str, Any]]:
    """An instant query: the result vector as a list of ``{"metric": …, "value": [t, v]}``
    (a scalar or string result comes back as a one-element list)."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = api_get(url, "/api/v1/query", params, timeout=timeout)
    result = data["result"]
    return result if data["resultType"] in ("vector", "matrix") else [{"value": result}]


def scalar(url: str, expr: str) -> float | None:
    """The value of a one-series query, or None when it has no result."""
    result = query(url, expr)
    return float(result[0]["value"][1]) if result else None


def wait_for(predicate: Callable[[], T], timeout: float, *, interval: float = 0.25,
             message: str = "condition") -> T:
    """Call ``predicate`` until it returns something truthy and return that; raise
    ``AssertionError`` (with the last value or error) after ``timeout`` seconds.
    Errors raised by the predicate (a query before the first scrape, …) are retried."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except (RuntimeError, OSError, urllib.error.URLError, KeyError, ValueError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}; "
                                 f"last: {last!r}")
        time.sleep(interval)
