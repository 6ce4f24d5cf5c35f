"""Completion webhooks: a real run's outcome reaches a real HTTP receiver, signed.

The receiver listens on 127.0.0.1 in a thread and checks each signature with
`engine.webhooks.verify_signature`; the config comes from MAILSIFT_* variables as in production.
The runs are real, in a temporary DagsterInstance, of a stand-in job named like the real one so
no mail world is needed.
"""

# No `from __future__ import annotations`: the stand-in assets' context hints must be real types.
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from engine.webhooks import SIGNATURE_HEADER, read_delivery_log, verify_signature
from pipelines.partitions import lists_partitions
from pipelines.resources import MailsiftSettings
from pipelines.webhook_sensors import list_completed_webhook, list_failed_webhook

SECRET = "whsec-test-5f1d"
LIST_KEY = "customers.csv-0123456789"
SUMMARY = {"total_rows": 2, "by_status": {"valid": 1, "invalid": 1}}


@dataclass
class Receiver:
    url: str
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str | None] = field(default_factory=list)

    def events(self) -> list[dict]:
        return [json.loads(body) for body in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    received = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            received.signatures.append(self.headers.get(SIGNATURE_HEADER))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/mailsift"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook_env(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    monkeypatch.setenv("MAILSIFT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("MAILSIFT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("MAILSIFT_WEBHOOK_ALLOW_PRIVATE", "true")
    return receiver


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(lists_partitions.name, [LIST_KEY])
        yield instance


@dg.asset(partitions_def=lists_partitions, name="list_results")
def stand_in_list_results(
    context: dg.AssetExecutionContext, mailsift: MailsiftSettings
) -> dg.MaterializeResult:
    """Writes what the real list_results writes, without verifying anything."""
    layout = mailsift.layout()
    key = context.partition_key
    layout.list_dir(key).mkdir(parents=True, exist_ok=True)
    layout.summary_file(key).write_text(json.dumps(SUMMARY))
    layout.results_file(key, "csv").write_text("email,status\na@example.com,valid\n")
    layout.results_file(key, "parquet").write_bytes(b"PAR1")
    layout.report_file(key).write_text("<html></html>")
    return dg.MaterializeResult()


@dg.asset(partitions_def=lists_partitions, name="list_probes")
def stand_in_probes() -> None:
    """Succeeds without probing: a step before list_results."""


@dg.asset(partitions_def=lists_partitions, name="list_probes")
def stand_in_failing_probes() -> None:
    raise RuntimeError("mx.example.net refused every connection: is our IP blocked?")


def _run(instance: dg.DagsterInstance, job_name: str, asset: dg.AssetsDefinition):
    defs = dg.Definitions(
        assets=[asset],
        jobs=[dg.define_asset_job(job_name, selection=[asset])],
        resources={"mailsift": MailsiftSettings()},
    )
    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(instance=instance, partition_key=LIST_KEY, raise_on_error=False)


def _context(instance: dg.DagsterInstance, result, event: dg.DagsterEvent, sensor: str):
    return dg.build_run_status_sensor_context(
        sensor_name=sensor,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"mailsift": MailsiftSettings()},
    )


def test_a_finished_list_posts_a_signed_list_completed_with_summary_and_locations(
    webhook_env, instance
):
    result = _run(instance, "verify_list", stand_in_list_results)
    assert result.success
    context = _context(
        instance, result, result.get_run_success_event(), list_completed_webhook.name
    )

    list_completed_webhook(context)

    [body], [signature] = webhook_env.bodies, webhook_env.signatures
    assert verify_signature(body, signature, SECRET)
    [event] = webhook_env.events()
    layout = MailsiftSettings().layout()
    assert event["event"] == "list.completed"
    assert (event["list_id"], event["run_id"]) == (LIST_KEY, result.run_id)
    assert event["summary"] == SUMMARY
    assert event["locations"] == {
        "results_csv": str(layout.results_file(LIST_KEY, "csv")),
        "results_parquet": str(layout.results_file(LIST_KEY, "parquet")),
        "summary": str(layout.summary_file(LIST_KEY)),
        "report": str(layout.report_file(LIST_KEY)),
    }
    assert event["started_at"] and event["finished_at"]
    [logged] = read_delivery_log(layout.root)
    assert logged["outcome"] == "delivered"


def test_a_failed_list_posts_list_failed_naming_the_failing_step(webhook_env, instance):
    result = _run(instance, "verify_list", stand_in_failing_probes)
    assert not result.success
    context = _context(instance, result, result.get_run_failure_event(), list_failed_webhook.name)

    list_failed_webhook(context)

    [body], [signature] = webhook_env.bodies, webhook_env.signatures
    assert verify_signature(body, signature, SECRET)
    [event] = webhook_env.events()
    assert (event["event"], event["list_id"]) == ("list.failed", LIST_KEY)
    assert "list_probes" in event["error"] and "is our IP blocked?" in event["error"]
    assert event["summary"] == {} and event["locations"] == {}


def test_a_rerun_of_earlier_steps_alone_sends_no_list_completed(webhook_env, instance):
    defs = dg.Definitions(
        assets=[stand_in_probes, stand_in_list_results],
        jobs=[dg.define_asset_job("verify_list")],
        resources={"mailsift": MailsiftSettings()},
    )
    result = defs.resolve_job_def("verify_list").execute_in_process(
        instance=instance, partition_key=LIST_KEY, asset_selection=[dg.AssetKey("list_probes")]
    )
    context = _context(
        instance, result, result.get_run_success_event(), list_completed_webhook.name
    )

    list_completed_webhook(context)

    assert webhook_env.bodies == []


def test_nothing_is_sent_or_logged_without_a_webhook_url(receiver, instance):
    result = _run(instance, "verify_list", stand_in_list_results)
    context = _context(
        instance, result, result.get_run_success_event(), list_completed_webhook.name
    )

    list_completed_webhook(context)

    assert receiver.bodies == []
    assert read_delivery_log(MailsiftSettings().layout().root) == []


def test_both_webhook_sensors_are_loaded_and_on_from_the_start():
    from pipelines.definitions import defs

    for sensor in (list_completed_webhook, list_failed_webhook):
        loaded = defs.resolve_sensor_def(sensor.name)
        assert loaded.default_status == dg.DefaultSensorStatus.RUNNING
