"""Operations endpoints over real HTTP: liveness, readiness, metrics, OpenAPI, 404 problems."""

from __future__ import annotations

from e2e_app import PASSWORD, new_email

from roombook.http.app import API_TABLES
from roombook.http.endpoints import API_PREFIX


async def test_healthz_answers_ok(client):
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_readyz_checks_every_store_and_the_shards(client):
    resp = await client.get("/readyz")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"global": "ok", "shards": "ok", "eu": "ok", "us": "ok"}


async def test_readyz_is_a_503_problem_when_a_store_is_closed(client):
    from roombook.domain.accounts import Region
    from roombook.http.keys import REGIONS

    await client.app[REGIONS][Region.US].__aexit__(None, None, None)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert resp.content_type == "application/problem+json"
    assert "us" in (await resp.json())["detail"]


async def test_an_unknown_route_is_a_404_problem(client):
    resp = await client.get("/api/v1/no-such-thing")
    assert resp.status == 404
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == 404 and body["type"].endswith("/not-found") and body["title"]


async def test_a_wrong_method_is_a_405_problem(client):
    resp = await client.get("/api/v1/auth/login")
    assert resp.status == 405
    assert resp.content_type == "application/problem+json"


async def test_metrics_count_requests_by_canonical_route_and_expose_shard_figures(client, sign_up):
    await sign_up(client)
    await client.get("/api/v1/no-such-thing/bk-raw-path-marker")
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    text = await resp.text()
    assert 'roombook_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"}' in text
    assert 'route="unmatched",status="404"' in text
    # Raw URLs never become labels. The marker has letters: a run of digits could turn up by
    # chance in a sample's value (a _created timestamp, a duration sum) and fail the test.
    assert "raw-path-marker" not in text and "no-such-thing" not in text
    assert "roombook_http_request_duration_seconds_bucket" in text
    assert "# TYPE roombook_bookings_total counter" in text
    assert "roombook_shard_call_duration_seconds" in text
    assert 'roombook_shard_commit_batches{shard="0"}' in text
    # the shards' own commit-latency and batch-size histograms, cumulative, +Inf bucket = count
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    for shard in ("0", "1"):
        count = samples[f'roombook_shard_commit_seconds_count{{shard="{shard}"}}']
        assert samples[f'roombook_shard_commit_seconds_bucket{{le="+Inf",shard="{shard}"}}'] == count
        assert f'roombook_shard_batch_commands_bucket{{le="1.0",shard="{shard}"}}' in samples
    assert 'roombook_shard_ring_version{shard="0"} 1.0' in text


async def test_openapi_describes_every_registered_endpoint(client):
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    registered = {(e.method.lower(), API_PREFIX + e.path) for table in API_TABLES for e in table.items}
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert registered == described
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert set(schema["required"]) == {"email", "password"}
    assert schema["additionalProperties"] is False  # unknown fields are refused
    assert "401" in login["responses"] and "Problem" in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            for ref_holder in _refs(op):
                assert ref_holder.rsplit("/", 1)[-1] in doc["components"]["schemas"], ref_holder


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def _answers(client):
    """One of each kind of answer: a handler's with and without a user, a problem, aiohttp's own."""
    email = new_email()
    register = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "region": "eu"})
    login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    token = (await login.json())["access_token"]
    return {
        "register": register,
        "login": login,
        "me": await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}),
        "bad login": await client.post("/api/v1/auth/login", json={"email": email}),
        "unmatched": await client.get("/api/v1/no-such-thing"),
        "wrong method": await client.delete("/healthz"),
        "metrics": await client.get("/metrics"),
        "openapi": await client.get("/api/v1/openapi.json"),
    }


async def test_every_answer_is_never_stored_framed_or_sniffed_and_names_no_versions(client):
    answers = await _answers(client)
    assert [(name, resp.status) for name, resp in answers.items()] == [
        ("register", 201),
        ("login", 200),
        ("me", 200),
        ("bad login", 422),
        ("unmatched", 404),
        ("wrong method", 405),
        ("metrics", 200),
        ("openapi", 200),
    ]
    for name, resp in answers.items():
        headers = resp.headers
        assert headers["Cache-Control"] == "no-store", name  # tokens and bookings stay out of caches
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Content-Security-Policy"] == "frame-ancestors 'none'", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["Server"] == "roombook", name  # not aiohttp's "Python/3.x aiohttp/3.x"
