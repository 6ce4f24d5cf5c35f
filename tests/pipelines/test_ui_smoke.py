"""A real `dagster-webserver` serves our code location: assets, partitions, checks and the graph.

Unit tests load `defs` in-process; only a real webserver proves that `workspace.yaml` points at
the right module, that the code server starts from a clean `DAGSTER_HOME`, and that the UI can
render the asset graph. Chromium is required, not optional: `.ci/run` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBSERVER = Path(sys.executable).with_name("dagster-webserver")
STARTUP_SECONDS = 90
CHROMIUM_SECONDS = 120
WINDOW = (1400, 900)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SCREENSHOT_BYTES = 20_000  # a blank 1400x900 page compresses to a few kB

WORKSPACE_QUERY = """
query SmokeWorkspace {
  workspaceOrError {
    __typename
    ... on PythonError { message stack }
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              sensors { name }
              assetNodes {
                assetKey { path }
                groupName
                partitionDefinition { name type }
                assetChecksOrError {
                  __typename
                  ... on AssetChecks { checks { name blocking } }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""


@dataclass(frozen=True)
class Webserver:
    url: str
    log: Path

    def graphql(self, query: str) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/graphql", json={"query": query}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The webserver spawns a code server: end the whole process group, politely first."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_until_up(server: Webserver, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"dagster-webserver not up after {STARTUP_SECONDS}s:\n{server.log_tail()}")


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    root = tmp_path_factory.mktemp("ui-smoke")
    dagster_home = root / "dagster-home"
    dagster_home.mkdir()
    # No phone-home from CI machines.
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    server = Webserver(url=f"http://127.0.0.1:{port}", log=root / "webserver.log")
    env = os.environ | {"DAGSTER_HOME": str(dagster_home), "MAILSIFT_HOME": str(root / "data")}
    with server.log.open("wb") as log:
        process = subprocess.Popen(
            [str(WEBSERVER), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def location(webserver: Webserver) -> dict[str, Any]:
    """The one code location, once it has finished loading (it may still be LOADING at first)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        workspace = webserver.graphql(WORKSPACE_QUERY)["workspaceOrError"]
        assert workspace["__typename"] == "Workspace", workspace
        [entry] = workspace["locationEntries"]
        if entry["loadStatus"] == "LOADED" or time.monotonic() > deadline:
            return entry
        time.sleep(0.5)


@pytest.fixture(scope="module")
def repository(location: dict[str, Any]) -> dict[str, Any]:
    loaded = location["locationOrLoadError"]
    assert loaded is not None and loaded["__typename"] == "RepositoryLocation", loaded
    [repository] = loaded["repositories"]
    return repository


def _asset_nodes(repository: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"/".join(node["assetKey"]["path"]): node for node in repository["assetNodes"]}


def test_the_code_location_loads_without_errors(location):
    assert location["loadStatus"] == "LOADED"
    loaded = location["locationOrLoadError"]
    assert loaded["__typename"] != "PythonError", f"{loaded['message']}\n{loaded['stack']}"
    assert loaded["__typename"] == "RepositoryLocation"


def test_the_list_assets_are_served_partitioned_by_list(repository):
    nodes = _asset_nodes(repository)
    assert {"list_rows", "prepared_list"} <= set(nodes)
    for name in ("list_rows", "prepared_list"):
        assert nodes[name]["partitionDefinition"] == {"name": "lists", "type": "DYNAMIC"}


def test_the_row_conservation_check_is_served_as_blocking(repository):
    checks = _asset_nodes(repository)["prepared_list"]["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", checks
    assert {"name": "prepared_rows_conserved", "blocking": True} in checks["checks"]


def test_the_inbox_sensor_and_its_ingest_job_are_served(repository):
    assert "inbox_sensor" in {sensor["name"] for sensor in repository["sensors"]}
    assert "ingest_list" in {job["name"] for job in repository["jobs"]}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first (PNG spec §5.6)
    return width, height


def test_the_asset_graph_renders_in_headless_chromium(webserver, location, repository, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: `.ci/run` installs it (apt-get install chromium)"
    # The first-visit "join the community" dialog would cover the graph in the picture.
    assert webserver.graphql("mutation { setNuxSeen }")["setNuxSeen"]
    screenshot = tmp_path / "asset-graph.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=15000",
        # The lists group's own graph: the global graph shows groups collapsed once there are two.
        f"{webserver.url}/locations/{location['name']}/asset-groups/lists",
    ]
    browser = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        dom, stderr = browser.communicate(timeout=CHROMIUM_SECONDS)
    finally:
        _stop(browser)
    assert browser.returncode == 0, stderr.decode(errors="replace")[-2000:]
    data = screenshot.read_bytes()
    assert _png_size(data) == WINDOW
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{len(data)} bytes: a blank page?"
    rendered = dom.decode(errors="replace")
    for asset in ("list_rows", "prepared_list", "list_probes", "list_results"):
        assert asset in rendered, f"{asset} not on the rendered asset graph page"
