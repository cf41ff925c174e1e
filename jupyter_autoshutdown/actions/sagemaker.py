"""The `sagemaker` action: stop what this server keeps billing on SageMaker.

SageMaker describes what this server runs in at `/opt/ml/metadata/resource-metadata.json`: for a
Studio app `DomainId`, `UserProfileName` or `SpaceName`, `AppType`, `ResourceName`, `ResourceArn`;
for a notebook instance `ResourceArn` (``arn:aws:sagemaker:<region>:<account>:notebook-instance/<name>``)
and `ResourceName`, with no DomainId.

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

- A notebook instance: the action stops the instance itself (StopNotebookInstance, needs
  `sagemaker:StopNotebookInstance`), as "Stop" does in the console. Its ML storage volume (and so
  everything under /home/ec2-user/SageMaker) is kept; the instance can be started again.

Deleting a Studio app stops its instance; the user's home directory (EFS or the space's EBS volume)
is kept. Every refused call (AccessDenied, an API that cannot be reached, no credentials, no boto3)
fails with one sentence: what was refused, what it needs, what happens meanwhile (`refusal`).
boto3 is an optional extra (`pip install jupyter_autoshutdown[sagemaker]`) and its calls
run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

# The package imports this module lazily (in load_action), so the package is loaded by now.
from ..core.auth import request_headers
from ..decide.policy import GatewayApps, gateway_app_deleted, kernel_gateway_apps
from .base import (
    NOTEBOOK_INSTANCE,
    STUDIO_CLASSIC,
    STUDIO_SPACE,
    ActionDeferred,
    read_sagemaker_metadata,
    region_of,
    sagemaker_kind,
)

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
        # Read at run time: a lifecycle script may install us before SageMaker writes the file.
        metadata = read_sagemaker_metadata(str(self.metadata_path))
        if metadata is None:
            raise StudioRequestFailed(
                f"cannot read SageMaker metadata {self.metadata_path}: the 'sagemaker' action only "
                "works in a SageMaker Studio app or on a notebook instance"
            )
        if sagemaker_kind(metadata) is None:
            raise StudioRequestFailed(
                f"{self.metadata_path} has no DomainId and no notebook-instance ARN: not a SageMaker "
                "Studio app or notebook instance"
            )
        return metadata

    def _known_metadata(self) -> dict[str, Any] | None:
        """The metadata, read once it exists (looked for again every METADATA_RETRY_SECONDS)."""
        if self._cached_metadata is None and time.monotonic() >= self._metadata_retry_at:
            try:
                self._cached_metadata = self.metadata()
            except StudioRequestFailed:
                self._metadata_retry_at = time.monotonic() + METADATA_RETRY_SECONDS
        return self._cached_metadata

    def own_schedule(self) -> str | None:
        """Studio Classic's KernelGateway apps follow their own kernels (see the module's doc)."""
        return CLASSIC_SCHEDULE if sagemaker_kind(self._known_metadata()) == STUDIO_CLASSIC else None

    def describe(self) -> str:
        """What the action stops, as the rest of a sentence (the front end's app line)."""
        metadata = self._known_metadata()
        kind = sagemaker_kind(metadata)
        if kind == NOTEBOOK_INSTANCE:
            return "this SageMaker notebook instance stops (its ML storage volume is kept)"
        if kind == STUDIO_SPACE:
            app_type = (metadata or {}).get("AppType", "JupyterLab")
            return f"this Studio space's {app_type} app stops (the space's storage is kept)"
        if kind == STUDIO_CLASSIC:
            return "idle KernelGateway apps are deleted (your files stay)"
        return "this SageMaker Studio app or notebook instance stops (your files stay)"

    def _meanwhile(self, metadata: dict[str, Any]) -> str:
        kind = sagemaker_kind(metadata)
        if kind == NOTEBOOK_INSTANCE:
            what = "the notebook instance keeps running"
        elif kind == STUDIO_SPACE:
            what = f"this space's {metadata.get('AppType', 'JupyterLab')} app keeps running"
        else:
            what = "the KernelGateway apps keep running"
        return f"{what} (and billing) and auto-shutdown tries again with backoff"

    async def _call(self, metadata: dict[str, Any], operation: str, **request: Any) -> Any:
        """One SageMaker API call, in a worker thread: boto3 blocks (and so does making a client).
        A refusal becomes StudioRequestFailed with the sentence `refusal` makes."""

        def call() -> Any:
            if self._client is None:
                self._client = self.client_factory(region_of(metadata))
            return getattr(self._client, operation)(**request)

        try:
            return await asyncio.to_thread(call)
        except Exception as error:
            raise StudioRequestFailed(refusal(operation, error, self._meanwhile(metadata))) from error

    # ---- run -----------------------------------------------------------------------------

    async def run(self, context: ActionContext) -> str:
        metadata = self._cached_metadata = self.metadata()
        kind = sagemaker_kind(metadata)
        if kind == NOTEBOOK_INSTANCE:
            return await self._stop_notebook_instance(metadata)
        if kind == STUDIO_CLASSIC:
            return await self._stop_kernel_gateway_apps(context, metadata)
        return await self._stop_own_app(metadata)

    async def _stop_notebook_instance(self, metadata: dict[str, Any]) -> str:
        name = str(metadata.get("ResourceName") or str(metadata["ResourceArn"]).rsplit("/", 1)[-1])
        await self._call(metadata, "stop_notebook_instance", NotebookInstanceName=name)
        return f"stopping this notebook instance '{name}' (its ML storage volume is kept)"

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
    import boto3  # optional: a missing boto3 is explained by `refusal`

    return boto3.client("sagemaker", region_name=region)


def _api_name(operation: str) -> str:
    """boto3's method name as the API (and IAM) names it: stop_notebook_instance -> StopNotebookInstance."""
    return "".join(part.capitalize() for part in operation.split("_"))


def refusal(operation: str, error: BaseException, meanwhile: str) -> str:
    """One sentence for a failed SageMaker call: what was refused, what it needs, what happens
    meanwhile. botocore's exceptions are recognised by name: boto3 is optional."""
    api = _api_name(operation)
    names = {cls.__name__ for cls in type(error).__mro__}
    response = getattr(error, "response", None)  # botocore's ClientError: {"Error": {"Code", "Message"}}
    details = (response.get("Error") or {}) if isinstance(response, dict) else {}
    code = str(details.get("Code", ""))
    if isinstance(error, ImportError):
        return (f"SageMaker {api} was not called: the SageMaker API needs boto3, which is not installed "
                f"(pip install 'jupyter_autoshutdown[sagemaker]'); {meanwhile}.")
    if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return (f"SageMaker refused {api} ({code}): the execution role needs the IAM permission "
                f"sagemaker:{api}; {meanwhile}.")
    if names & {"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                 "ReadTimeoutError"}:
        return (f"SageMaker {api} could not reach the SageMaker API ({error}): without internet access "
                "the VPC needs an interface endpoint for com.amazonaws.<region>.api.sagemaker (or a NAT "
                f"gateway); {meanwhile}.")
    if names & {"NoCredentialsError", "PartialCredentialsError", "NoRegionError"}:
        return (f"SageMaker {api} was not called: {error} (the execution role's credentials and region "
                f"come from the instance's environment); {meanwhile}.")
    if code:
        message = str(details.get("Message", "")) or str(error)
        return f"SageMaker refused {api} ({code}: {message}); {meanwhile}."
    return f"SageMaker {api} failed ({error!r}); {meanwhile}."
