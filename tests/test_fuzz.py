"""Generated bad input against a real server process: never a 5xx, every rejection a 400/405
with a message, settings unchanged after every rejection. Routes and methods come from the
OpenAPI description shipped in the package."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from importlib.resources import files

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_process import ServerProcess

from jupyter_autoshutdown.serve.handlers import route_table

SPEC = json.loads(files("jupyter_autoshutdown").joinpath("openapi.json").read_text())
EXAMPLES_PER_ROUTE = 400
TALLY = {"requests": 0, "server_errors": 0, "rejections": 0, "accepted": 0}

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_values = st.recursive(
    leaves,
    lambda children: (st.lists(children, max_size=4)
                      | st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)


def body_for(field_names: list[str]) -> st.SearchStrategy[bytes]:
    keys = st.sampled_from(field_names) | st.text(max_size=12)
    objects = st.dictionaries(keys, json_values, max_size=5)
    as_json = st.one_of(objects, json_values).map(lambda v: json.dumps(v, allow_nan=True).encode())
    return st.one_of(
        as_json,
        as_json,
        st.binary(max_size=300),
        st.integers(min_value=66_000, max_value=200_000).map(lambda n: b'{"pad": "' + b"x" * n + b'"}'),
        st.integers(min_value=1, max_value=100_000).map(lambda n: b"[" * n + b"]" * n),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-home")
    process = ServerProcess(home)
    yield process
    process.stop()


def current_settings(server: ServerProcess) -> dict:
    return server.request("GET", "autoshutdown/api/settings").json()


def send(server: ServerProcess, method: str, path: str, body: bytes) -> requests.Response:
    response = server.request(method, path, data=body)
    TALLY["requests"] += 1
    if response.status_code >= 500:
        TALLY["server_errors"] += 1
    return response


SETTINGS_FIELDS = ("idle_timeout_minutes", "keep_terminals", "cull_busy", "cull_connected")


def expected_settings(path: str, body: bytes, before: dict) -> dict:
    """What an accepted `body` to `path` must have made of the settings, as the API describes."""
    fields = json.loads(body) if body or path != "/autoshutdown/api/activity" else {}
    assert isinstance(fields, dict), f"a {type(fields).__name__} body was accepted"
    expected = {name: before[name] for name in SETTINGS_FIELDS}
    if path == "/autoshutdown/api/settings":
        assert set(fields) <= set(SETTINGS_FIELDS), f"unknown fields accepted: {fields}"
        for name, value in fields.items():
            expected[name] = float(value) if name == "idle_timeout_minutes" else value
    elif path.startswith("/sagemaker-studio-autoshutdown/"):
        expected["idle_timeout_minutes"] = float(fields["idle_time"])
        if "keep_terminals" in fields:
            expected["keep_terminals"] = fields["keep_terminals"]
    return expected


def check_keep_alive(server, body: bytes) -> None:
    """An accepted global keep-alive holds until now + minutes (0 cancels it)."""
    minutes = float(json.loads(body)["minutes"])
    until = server.request("GET", "autoshutdown/api/keepalive").json()["keep_alive_until"]
    if minutes == 0:
        assert until is None
        return
    expected = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    assert abs((datetime.fromisoformat(until) - expected).total_seconds()) < 30, (until, minutes)
    server.request("DELETE", "autoshutdown/api/keepalive")


def check_rejection_or_acceptance(server, response, before, path: str = "", body: bytes = b"") -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        TALLY["accepted"] += 1
        if path:
            after = current_settings(server)
            expected = expected_settings(path, body, before)
            assert {name: after[name] for name in SETTINGS_FIELDS} == expected, (path, body, after)
            if path == "/autoshutdown/api/keepalive":
                check_keep_alive(server, body)
        return
    TALLY["rejections"] += 1
    # 403: a daily stop change, which this server's operator does not allow users.
    forbidden = response.status_code == 403 and b"daily_stop" in body and path == "/autoshutdown/api/settings"
    assert response.status_code == 400 or forbidden, (response.status_code, response.text)
    assert response.json()["message"]
    assert current_settings(server) == before


def test_spec_matches_the_handlers():
    routes = {"/" + pattern: handler for pattern, handler in route_table()}
    assert set(SPEC["paths"]) == set(routes)
    for path, operations in SPEC["paths"].items():
        for method in operations:
            assert hasattr(routes[path], method), f"{method} {path} in the spec but not served"


def _field_names(path: str, method: str) -> list[str]:
    schema_ref = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = SPEC["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    return list(schema["properties"])


WRITE_OPERATIONS = [
    (path, method)
    for path, operations in SPEC["paths"].items()
    for method, operation in operations.items()
    if "requestBody" in operation
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("path", "method"), WRITE_OPERATIONS)
def test_generated_bodies_never_cause_a_server_error(server, path, method):
    @settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=body_for(_field_names(path, method)))
    def run(body: bytes) -> None:
        before = current_settings(server)
        response = send(server, method.upper(), path.lstrip("/"), body)
        check_rejection_or_acceptance(server, response, before, path, body)

    run()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "PATCH"])
@pytest.mark.parametrize("path", list(SPEC["paths"]))
def test_methods_outside_the_spec_are_405(server, path, method):
    if method.lower() in SPEC["paths"][path]:
        pytest.skip("served method")
    before = current_settings(server)
    response = send(server, method, path.lstrip("/"), b"" if method == "DELETE" else b"{}")
    assert response.status_code == 405, response.text
    assert current_settings(server) == before


def test_zz_tally(server):
    """Runs last in this module: the figures for the record."""
    print(f"\nfuzz: {TALLY['requests']} requests, {TALLY['rejections']} rejected with 400, "
          f"{TALLY['accepted']} accepted, {TALLY['server_errors']} server errors (5xx)")
    assert TALLY["requests"] >= 2 * EXAMPLES_PER_ROUTE
    assert TALLY["server_errors"] == 0
