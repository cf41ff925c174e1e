"""The REST contract: SageMaker-compatible and native routes, validation, auth, persistence."""

from __future__ import annotations

import json

import pytest
from helpers import api, extension_of, start_extension
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

IDLE_CHECKER = ("sagemaker-studio-autoshutdown", "idle_checker")
COMPAT_SETTINGS = ("sagemaker-studio-autoshutdown", "settings")
SETTINGS = ("autoshutdown", "api", "settings")
STATUS = ("autoshutdown", "api", "status")


async def expect_error(jp_fetch, *parts, method, body, code=400):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*parts, method=method, body=body)
    assert info.value.code == code, info.value
    return json.loads(info.value.response.body)


async def test_sagemaker_route_post_then_get(jp_serverapp, jp_fetch, state_path):
    await start_extension(jp_serverapp)
    reply = await api(jp_fetch, *IDLE_CHECKER, method="POST",
                      body={"idle_time": 45, "keep_terminals": True})
    assert reply["count"] >= 1
    assert reply["persisted"] is True
    got = await api(jp_fetch, *IDLE_CHECKER)
    # As in the original: minutes in, seconds out.
    assert got["idle_time"] == 2700
    assert got["keep_terminals"] is True
    assert got["idle_timeout_minutes"] == 45
    saved = json.loads(state_path.read_text())
    assert saved["settings"]["idle_timeout_minutes"] == 45
    assert saved["settings"]["keep_terminals"] is True


async def test_sagemaker_route_accepts_the_original_body_shapes(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    # The original called int() on idle_time, so scripts sending "60" worked; keep_terminals optional.
    await api(jp_fetch, *IDLE_CHECKER, method="POST", body={"idle_time": "60"})
    got = await api(jp_fetch, *IDLE_CHECKER)
    assert got["idle_time"] == 3600
    assert got["keep_terminals"] is False


@pytest.mark.parametrize("route", [IDLE_CHECKER, COMPAT_SETTINGS], ids=["idle_checker", "settings"])
async def test_compat_posts_ignore_unknown_fields_and_list_them(jp_serverapp, jp_fetch, state_path, route):
    extension = await start_extension(jp_serverapp)
    reply = await api(jp_fetch, *route, method="POST",
                      body={"idle_time": 30, "keep_terminals": True, "submit": "Submit", "zone": 1})
    assert reply["ignored_fields"] == ["submit", "zone"]
    assert extension.store.current.idle_timeout_minutes == 30
    saved = json.loads(state_path.read_text())["settings"]
    assert saved == {"idle_timeout_minutes": 30, "keep_terminals": True}


async def test_the_original_front_ends_settings_post_gets_the_original_reply(jp_serverapp, jp_fetch):
    await start_extension(jp_serverapp)
    reply = await api(jp_fetch, *COMPAT_SETTINGS, method="POST",
                      body={"idle_time": 90, "keep_terminals": False})
    assert reply["idle_time"] == "5400" and reply["keep_terminals"] is False  # seconds, as a string
    assert (await api(jp_fetch, *IDLE_CHECKER))["idle_time"] == 5400


async def test_native_settings_patch(jp_serverapp, jp_fetch, state_path):
    extension = await start_extension(jp_serverapp)
    reply = await api(jp_fetch, *SETTINGS, method="PATCH",
                      body={"idle_timeout_minutes": 0.5, "cull_busy": True})
    assert reply["idle_timeout_minutes"] == 0.5
    assert reply["idle_timeout_seconds"] == 30
    assert reply["cull_busy"] is True
    assert reply["persisted"] is True
    assert extension.store.current.cull_busy is True
    got = await api(jp_fetch, *SETTINGS)
    assert got["idle_timeout_minutes"] == 0.5
    assert got["app_action"] == "none"
    assert json.loads(state_path.read_text())["settings"]["cull_busy"] is True


async def test_settings_change_wakes_the_monitor(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    count = extension.monitor.count
    # Default max_check_interval is 60 s, the timeout 120 min: only the wake-up runs a pass soon.
    await api(jp_fetch, *SETTINGS, method="PATCH", body={"idle_timeout_minutes": 30})
    from helpers import wait_for

    await wait_for(lambda: extension.monitor.count > count, timeout=5)


BAD_IDLE_CHECKER_BODIES = [
    b"not json",
    b"",
    b"[]",
    b'"120"',
    b"null",
    b"{}",
    b'{"idle_time": -1}',
    b'{"idle_time": NaN}',
    b'{"idle_time": Infinity}',
    b'{"idle_time": 1e400}',
    b'{"idle_time": 10000000}',
    b'{"idle_time": true}',
    b'{"idle_time": null}',
    b'{"idle_time": [1]}',
    b'{"idle_time": {"minutes": 1}}',
    b'{"idle_time": "soon"}',
    b'{"idle_time": "nan"}',
    b'{"idle_time": 5, "keep_terminals": "yes"}',
    b'{"idle_time": 5, "keep_terminals": 1}',
    b'{"idle_time": 1' + b"0" * 5000 + b"}",
    b"\xff\xfe",
    b'{"idle_time": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"idle_time": 5, "pad": "' + b"x" * 70000 + b'"}',
]

BAD_SETTINGS_BODIES = [
    b"not json",
    b"[]",
    b'{"idle_timeout_minutes": -5}',
    b'{"idle_timeout_minutes": "5"}',
    b'{"idle_timeout_minutes": NaN}',
    b'{"idle_timeout_minutes": 600000}',
    b'{"keep_terminals": "false"}',
    b'{"cull_busy": 0}',
    b'{"cull_connected": null}',
    b'{"app_action": "server"}',
    b'{"starting_timeout_minutes": 1}',
    b'{"state_file": "/tmp/elsewhere.json"}',  # the state file path is static config only
    b'{"idle_timeout_minutes": 5, "keep_terminals": "x"}',
    b'{"\xc3\xa9": 1}',
]


BAD_INPUTS = [(IDLE_CHECKER, "POST", body) for body in BAD_IDLE_CHECKER_BODIES] + [
    (COMPAT_SETTINGS, "POST", body) for body in BAD_IDLE_CHECKER_BODIES] + [
    (SETTINGS, "PATCH", body) for body in BAD_SETTINGS_BODIES
]


@pytest.mark.parametrize(("route", "method", "body"), BAD_INPUTS,
                         ids=[f"{r[-1]}-{i}" for i, (r, _, _) in enumerate(BAD_INPUTS)])
async def test_bad_input_is_a_400_and_changes_nothing(
    jp_serverapp, jp_fetch, state_path, route, method, body
):
    extension = await start_extension(jp_serverapp)
    before = extension.store.current
    reply = await expect_error(jp_fetch, *route, method=method, body=body)
    assert reply["message"]
    assert extension.store.current == before
    assert not state_path.exists()


async def test_partial_bad_patch_applies_nothing(jp_serverapp, jp_fetch):
    extension = await start_extension(jp_serverapp)
    await expect_error(jp_fetch, *SETTINGS, method="PATCH",
                       body=b'{"idle_timeout_minutes": 7, "keep_terminals": "x"}')
    assert extension.store.current.idle_timeout_minutes == 120


@pytest.mark.parametrize(
    ("route", "method"),
    [(IDLE_CHECKER, "PUT"), (IDLE_CHECKER, "DELETE"), (SETTINGS, "POST"), (STATUS, "POST"),
     (STATUS, "PATCH")],
)
async def test_wrong_methods_are_405(jp_serverapp, jp_fetch, route, method):
    await start_extension(jp_serverapp)
    body = None if method == "DELETE" else b"{}"
    await expect_error(jp_fetch, *route, method=method, body=body, code=405)


@pytest.mark.parametrize("route", [IDLE_CHECKER, SETTINGS, STATUS])
async def test_unauthenticated_requests_are_refused(jp_serverapp, jp_fetch, route):
    await start_extension(jp_serverapp)
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*route, headers={"Authorization": ""})
    assert info.value.code == 403
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*route, method="POST" if route == IDLE_CHECKER else "PATCH",
                       body=b'{"idle_time": 1}', headers={"Authorization": ""})
    assert info.value.code == 403
    assert extension_of(jp_serverapp).store.current.idle_timeout_minutes == 120


class ReadOnlyAuthorizer(Authorizer):
    """Lets everyone read the auto-shutdown resource and nobody change it."""

    seen: list[tuple[str, str]] = []

    def is_authorized(self, handler, user, action, resource):
        ReadOnlyAuthorizer.seen.append((action, resource))
        return not (resource == "autoshutdown" and action != "read")


async def test_authorization_matrix(jp_serverapp, jp_fetch):
    jp_serverapp.web_app.settings["authorizer"] = ReadOnlyAuthorizer(
        parent=jp_serverapp, identity_provider=jp_serverapp.identity_provider
    )
    await start_extension(jp_serverapp)
    for route in (IDLE_CHECKER, SETTINGS, STATUS):
        await jp_fetch(*route)  # reading is allowed
    await expect_error(jp_fetch, *IDLE_CHECKER, method="POST", body=b'{"idle_time": 1}', code=403)
    await expect_error(jp_fetch, *SETTINGS, method="PATCH",
                       body=b'{"idle_timeout_minutes": 1}', code=403)
    assert ("write", "autoshutdown") in ReadOnlyAuthorizer.seen
    assert ("read", "autoshutdown") in ReadOnlyAuthorizer.seen
    assert extension_of(jp_serverapp).store.current.idle_timeout_minutes == 120


async def test_status_reports_each_kernel(jp_serverapp, jp_fetch):
    from helpers import start_kernel

    await start_extension(jp_serverapp)
    kernel_id = await start_kernel(jp_fetch)
    status = await api(jp_fetch, *STATUS)
    assert status["running"] is True
    assert status["count"] >= 1
    assert status["last_check"] is not None
    (kernel,) = status["kernels"]
    assert kernel["id"] == kernel_id
    assert kernel["name"] == "python3"
    assert 0 <= kernel["idle_seconds"] < 60
    assert 0 < kernel["seconds_until_shutdown"] <= 30 * 60  # starting_timeout default, 30 min
    assert status["settings"]["idle_timeout_minutes"] == 120
    assert status["app"]["action"] == "none"
