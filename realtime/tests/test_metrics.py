"""/metrics: protected by a token or an address; counts what sockets and workers do."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.test import Client as HttpClient

from realtime import emit
from realtime.metrics import REGISTRY

pytestmark = pytest.mark.django_db(transaction=True)


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_need_the_token_or_an_allowed_address(settings):
    settings.METRICS_TOKEN = "s3cret"
    settings.METRICS_ALLOWED_IPS = []
    http = HttpClient()
    refused = http.get("/metrics")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    wrong = http.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    ok = http.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200
    assert ok["Content-Type"].startswith("text/plain")
    assert "# TYPE realtime_connections gauge" in ok.content.decode()
    # The test client comes from 127.0.0.1.
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert http.get("/metrics").status_code == 200
    settings.METRICS_ALLOWED_IPS = ["10.0.0.1"]
    assert http.get("/metrics").status_code == 403


async def test_sockets_events_errors_and_latency_are_counted(backend, ws, make_user):
    user = await database_sync_to_async(make_user)("alice")
    before = {
        "connects": value("realtime_connects_total"),
        "disconnects": value("realtime_disconnects_total"),
        "connections": value("realtime_connections"),
        "heartbeat": value("realtime_events_in_total", event="heartbeat"),
        "unknown": value("realtime_events_in_total", event="(unknown)"),
        "unknown_event": value("realtime_error_replies_total", code="unknown_event"),
        "hello_out": value("realtime_events_out_total", event="hello"),
        "latency": value("realtime_emit_latency_seconds_count"),
    }
    a = await ws(user)
    b = await ws(user)
    assert value("realtime_connections") == before["connections"] + 2
    await a.call("heartbeat")
    await a.call("no-such-event")
    await emit.user_emit(user_id=user.id, event="hello", data=1)
    assert await a.event("hello") == 1
    assert await b.event("hello") == 1
    await b.close()
    assert value("realtime_connects_total") == before["connects"] + 2
    assert value("realtime_disconnects_total") == before["disconnects"] + 1
    assert value("realtime_connections") == before["connections"] + 1
    assert (
        value("realtime_events_in_total", event="heartbeat") == before["heartbeat"] + 1
    )
    assert value("realtime_events_in_total", event="(unknown)") == before["unknown"] + 1
    assert (
        value("realtime_error_replies_total", code="unknown_event")
        == before["unknown_event"] + 1
    )
    # One emit, two receiving sockets; one latency sample for the one instance.
    assert value("realtime_events_out_total", event="hello") == before["hello_out"] + 2
    assert value("realtime_emit_latency_seconds_count") == before["latency"] + 1


async def test_served_over_http_by_the_server(ws, make_user):
    user = await database_sync_to_async(make_user)("alice")
    await ws(user)
    page = await sync_to_async(HttpClient().get)("/metrics")
    assert page.status_code == 200
    line = next(
        line
        for line in page.content.decode().splitlines()
        if line.startswith("realtime_connections ")
    )
    assert float(line.split()[1]) >= 1


def test_outgoing_event_names_are_bounded(monkeypatch):
    # Admins name emitted events freely: after the cap they share one label.
    from realtime import metrics

    monkeypatch.setattr(metrics, "MAX_OUT_EVENT_NAMES", 3)
    monkeypatch.setattr(metrics, "_out_names", set())
    for i in range(10):
        metrics.events_out(f"bounded-{i}").inc()
    metrics.events_out("bounded-0").inc()  # a name with a label keeps it
    names = {
        sample.labels["event"]
        for family in REGISTRY.collect()
        if family.name == "realtime_events_out"
        for sample in family.samples
        if sample.labels.get("event", "").startswith("bounded-")
    }
    assert names == {"bounded-0", "bounded-1", "bounded-2"}
    assert value("realtime_events_out_total", event="bounded-0") == 2
    assert value("realtime_events_out_total", event="(other)") >= 7
