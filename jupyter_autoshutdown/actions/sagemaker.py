"""The `sagemaker` action: stop the SageMaker Studio apps this server keeps billing.

Studio describes the app this server runs in at `/opt/ml/metadata/resource-metadata.json`
(`DomainId`, `UserProfileName` or `SpaceName`, `AppType`, `ResourceName`, `ResourceArn`).

- Studio Classic (this server is the free `JupyterServer` app): kernels and image terminals run in
  `KernelGateway` apps, which are what costs money. Each follows its own kernels, whatever happens
  in the JupyterServer app (the action keeps its own schedule, see `actions`): an InService
  KernelGateway app with no live kernel (a kernel's model names its `app_name`) and no image
  terminal (named ``<image arn>__<id>__<instance type>``) is deleted once it has had none for one
  idle timeout, counted from when its last kernel or terminal went away, or else from its creation
  or from when this server first saw it, whichever is latest. It is deleted once, and not again
  while nothing changed. The action talks either to Studio's own app endpoint on this server
  (``sagemaker/api/apps``, as the original extension did: no IAM permission needed; its requests
  carry ``no_track_activity`` so they are never activity) or to the SageMaker API through boto3
  (needs `sagemaker:ListApps` and `sagemaker:DeleteApp`).
- Studio (JupyterLab or Code Editor apps in a space): this server's own app is what costs money; the
  action deletes it through boto3, which is what "Stop" does in Studio. The space's storage stays.

Deleting a Studio app stops its instance; the user's home directory (EFS or the space's EBS volume)
is kept. boto3 is an optional extra (`pip install jupyter_autoshutdown[sagemaker]`) and its calls
run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

# The package imports this module lazily (in load_action), so the package is loaded by now.
from ..auth import request_headers
from ..policy import GatewayApps, gateway_app_deleted, kernel_gateway_apps
from .base import ActionDeferred

if TYPE_CHECKING:
    from .base import ActionContext, ActionSettings

REQUEST_TIMEOUT_SECONDS = 60.0
CLASSIC_APP_TYPE = "JupyterServer"
KERNEL_APP_TYPE = "KernelGateway"
#: How often a missing metadata file is looked for again (to know which schedule applies).
METADATA_RETRY_SECONDS = 60.0
CLASSIC_SCHEDULE = (
    "Studio Classic: each KernelGateway app is deleted once it has had no kernel and no image "
    "terminal for the timeout, whatever the JupyterServer app does"
)


class StudioRequestFailed(Exception):
    """Studio's app endpoint or the SageMaker API refused a request."""


@dataclass(frozen=True)
class StudioApp:
    name: str
    app_type: str
    status: str
    instance_type: str
    #: The image (and image version) ARNs the app runs; image terminals name one of them.
    image_arns: frozenset[str]
    created_at: datetime | None


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _from_endpoint(record: dict[str, Any]) -> StudioApp:
    return StudioApp(
        name=str(record["app_name"]),
        app_type=str(record.get("app_type", KERNEL_APP_TYPE)),
        status=str(record.get("status", "InService")),
        instance_type=str(record.get("instance_type", "")),
        image_arns=frozenset(str(arn) for arn in (record.get("environment_arn"),) if arn),
        created_at=_as_datetime(record.get("creation_time") or record.get("created_at")),
    )


def _from_api(record: dict[str, Any]) -> StudioApp:
    spec = record.get("ResourceSpec") or {}
    arns = (spec.get("SageMakerImageArn"), spec.get("SageMakerImageVersionArn"))
    return StudioApp(
        name=str(record["AppName"]),
        app_type=str(record.get("AppType", "")),
        status=str(record.get("Status", "")),
        instance_type=str(spec.get("InstanceType", "")),
        image_arns=frozenset(str(arn) for arn in arns if arn),
        created_at=_as_datetime(record.get("CreationTime")),
    )


def image_terminal_owner(terminal_name: str) -> tuple[str, str] | None:
    """(image ARN, instance type) of a Studio image terminal, None for a system terminal."""
    if not terminal_name.startswith("arn:"):
        return None
    parts = terminal_name.split("__")
    if len(parts) < 3:
        return None
    return parts[0], parts[2]


def self_url(serverapp: Any) -> str:
    """This server's own base URL on loopback."""
    ip = serverapp.ip or ""
    if ip in ("", "0.0.0.0", "*", "localhost"):
        host = "127.0.0.1"
    elif ip == "::":
        host = "[::1]"
    else:
        host = f"[{ip}]" if ":" in ip else ip
    scheme = "https" if serverapp.certfile else "http"
    return f"{scheme}://{host}:{serverapp.port}{serverapp.base_url}"


class StopStudioApps:
    name = "sagemaker"

    def __init__(self, settings: ActionSettings) -> None:
        if settings.sagemaker_method not in ("auto", "endpoint", "boto3"):
            raise ValueError(
                f"sagemaker_method must be 'auto', 'endpoint' or 'boto3', not {settings.sagemaker_method!r}"
            )
        self.metadata_path = Path(settings.sagemaker_metadata_path)
        self.method = settings.sagemaker_method
        #: Makes the SageMaker API client; tests put a botocore Stubber behind it.
        self.client_factory: Callable[[str | None], Any] = _boto3_client
        self._client: Any = None
        # What this server has seen of its KernelGateway apps; the rule is policy.kernel_gateway_apps.
        self._schedule = GatewayApps()
        self._cached_metadata: dict[str, Any] | None = None
        self._metadata_retry_at = 0.0

    # ---- what this server runs in --------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        # Read at run time: a lifecycle script may install us before Studio writes the file.
        try:
            metadata = json.loads(self.metadata_path.read_text())
        except (OSError, ValueError) as error:
            raise StudioRequestFailed(
                f"cannot read SageMaker Studio metadata {self.metadata_path}: {error}"
            ) from error
        if not isinstance(metadata, dict) or not metadata.get("DomainId"):
            raise StudioRequestFailed(f"{self.metadata_path} has no DomainId")
        return metadata

    def own_schedule(self) -> str | None:
        """Studio Classic's KernelGateway apps follow their own kernels (see the module's doc)."""
        if self._cached_metadata is None and time.monotonic() >= self._metadata_retry_at:
            try:
                self._cached_metadata = self.metadata()
            except StudioRequestFailed:
                self._metadata_retry_at = time.monotonic() + METADATA_RETRY_SECONDS
        metadata = self._cached_metadata
        if metadata is None or metadata.get("AppType", CLASSIC_APP_TYPE) != CLASSIC_APP_TYPE:
            return None
        return CLASSIC_SCHEDULE

    async def _call(self, metadata: dict[str, Any], operation: str, **request: Any) -> Any:
        """One SageMaker API call, in a worker thread: boto3 blocks (and so does making a client)."""

        def call() -> Any:
            if self._client is None:
                arn = str(metadata.get("ResourceArn", ""))
                region = arn.split(":")[3] if arn.count(":") >= 5 else None
                self._client = self.client_factory(region or None)
            return getattr(self._client, operation)(**request)

        return await asyncio.to_thread(call)

    # ---- run -----------------------------------------------------------------------------

    async def run(self, context: ActionContext) -> str:
        metadata = self._cached_metadata = self.metadata()
        if metadata.get("AppType", CLASSIC_APP_TYPE) == CLASSIC_APP_TYPE:
            return await self._stop_kernel_gateway_apps(context, metadata)
        return await self._stop_own_app(metadata)

    async def _stop_own_app(self, metadata: dict[str, Any]) -> str:
        request = {
            **_owner(metadata),
            "AppType": metadata["AppType"],
            "AppName": metadata.get("ResourceName", "default"),
        }
        await self._call(metadata, "delete_app", **request)
        return f"deleted this Studio {request['AppType']} app '{request['AppName']}' (its storage is kept)"

    async def _stop_kernel_gateway_apps(self, context: ActionContext, metadata: dict[str, Any]) -> str:
        method, apps = await self._list_apps(context, metadata)
        in_use = await _apps_in_use(context, apps)
        decision = kernel_gateway_apps(
            ((app.name, app.app_type, app.status, app.created_at) for app in apps), in_use,
            metadata.get("ResourceName", "default"), self._schedule, datetime.now(timezone.utc),
            context.idle_timeout_seconds,
        )
        self._schedule = decision.state
        kept, waits = list(decision.kept), list(decision.waits)
        deleted = []
        for name in decision.delete:
            if method == "endpoint":
                await self._endpoint_delete(context, name)
            else:
                await self._call(
                    metadata, "delete_app", **_owner(metadata), AppType=KERNEL_APP_TYPE, AppName=name
                )
            self._schedule = gateway_app_deleted(self._schedule, name)
            deleted.append(name)
        summary = (
            f"deleted KernelGateway app(s) {', '.join(deleted) or 'none'} via {method}"
            + (f"; kept {', '.join(kept)}" if kept else "")
        )
        if waits:
            raise ActionDeferred(summary, min(waits))
        return summary

    async def _list_apps(
        self, context: ActionContext, metadata: dict[str, Any]
    ) -> tuple[str, list[StudioApp]]:
        """The method in use and the apps it lists."""
        if self.method != "boto3":
            # Studio Classic serves its app endpoint on this server; preferred: it needs no IAM.
            apps = await self._endpoint_apps(context, required=self.method == "endpoint")
            if apps is not None:
                return "endpoint", apps
        return "boto3", await self._api_apps(metadata)

    # ---- Studio's app endpoint on this server ------------------------------------------------

    def _endpoint_request(self, context: ActionContext, path: str, method: str) -> HTTPRequest:
        serverapp = context.serverapp
        # A request to ourselves: the server's own token, and a matching XSRF cookie and header
        # for servers that run without a token (Studio Classic's).
        headers = request_headers(getattr(serverapp.identity_provider, "token", "") or "")
        # no_track_activity: the action's own requests must never count as activity.
        return HTTPRequest(
            self_url(serverapp) + path + "?no_track_activity=1",
            method=method,
            headers=headers,
            allow_nonstandard_methods=True,
            request_timeout=REQUEST_TIMEOUT_SECONDS,
            validate_cert=False,  # our own server, possibly with a self-signed certificate
        )

    async def _endpoint_apps(self, context: ActionContext, required: bool) -> list[StudioApp] | None:
        """Apps listed by Studio's endpoint; None when it does not answer and is not `required`."""
        try:
            response = await AsyncHTTPClient().fetch(
                self._endpoint_request(context, "sagemaker/api/apps", "GET"), raise_error=False
            )
            problem = None if response.code == 200 else f"answered HTTP {response.code}"
        except Exception as error:  # unreachable or timed out: tornado raises these regardless
            problem = f"failed: {error!r}"
        if problem:
            if not required:
                context.log.info("auto-shutdown: Studio's app endpoint %s; using the SageMaker API", problem)
                return None
            raise StudioRequestFailed(f"GET sagemaker/api/apps {problem}")
        return [_from_endpoint(record) for record in json.loads(response.body)]

    async def _endpoint_delete(self, context: ActionContext, app_name: str) -> None:
        path = f"sagemaker/api/apps/{quote(app_name, safe='')}"
        response = await AsyncHTTPClient().fetch(
            self._endpoint_request(context, path, "DELETE"), raise_error=False
        )
        if response.code not in (200, 202, 204):
            raise StudioRequestFailed(f"DELETE {path} answered HTTP {response.code}")

    # ---- the SageMaker API ---------------------------------------------------------------

    async def _api_apps(self, metadata: dict[str, Any]) -> list[StudioApp]:
        request: dict[str, Any] = {"DomainIdEquals": metadata["DomainId"]}
        if metadata.get("UserProfileName"):
            request["UserProfileNameEquals"] = metadata["UserProfileName"]
        apps: list[StudioApp] = []
        while True:
            page = await self._call(metadata, "list_apps", **request)
            apps.extend(_from_api(record) for record in page.get("Apps", []))
            if not page.get("NextToken"):
                return apps
            request["NextToken"] = page["NextToken"]


def _owner(metadata: dict[str, Any]) -> dict[str, str]:
    owner = {"DomainId": metadata["DomainId"]}
    if metadata.get("SpaceName"):
        owner["SpaceName"] = metadata["SpaceName"]
    elif metadata.get("UserProfileName"):
        owner["UserProfileName"] = metadata["UserProfileName"]
    return owner


async def _apps_in_use(context: ActionContext, apps: list[StudioApp]) -> set[str]:
    """Names of apps with a live kernel or image terminal on this server.

    Every app counts as in use when a kernel cannot be attributed to one: deleting an app under a
    running kernel loses work, keeping it costs a little more.
    """
    serverapp = context.serverapp
    kernel_manager = serverapp.kernel_manager
    every_app = {app.name for app in apps}
    in_use: set[str] = set()
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        model = kernel_manager.kernel_model(kernel_id)
        if asyncio.iscoroutine(model):
            model = await model
        app_name = (model or {}).get("app_name")
        if not app_name:
            context.log.info(
                "auto-shutdown: kernel %s names no Studio app; keeping every app", kernel_id
            )
            return every_app
        in_use.add(str(app_name))
    settings = serverapp.web_app.settings
    terminal_manager = settings.get("terminal_manager") if settings.get("terminals_available") else None
    if terminal_manager is not None:
        for terminal in terminal_manager.list():
            owner = image_terminal_owner(str(terminal.get("name", "")))
            if owner is None:
                continue
            image_arn, instance_type = owner
            in_use.update(
                app.name for app in apps if image_arn in app.image_arns and app.instance_type == instance_type
            )
    return in_use


def _boto3_client(region: str | None) -> Any:
    try:
        import boto3
    except ImportError as error:
        raise StudioRequestFailed(
            "the SageMaker API needs boto3: pip install 'jupyter_autoshutdown[sagemaker]'"
        ) from error
    return boto3.client("sagemaker", region_name=region)
