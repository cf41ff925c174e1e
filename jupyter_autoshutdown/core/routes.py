"""The REST routes, under the server's base URL: one list for the handlers that serve them and
the command line that calls them."""

#: aws-samples' sagemaker-studio-autoshutdown routes, kept for the scripts written for it.
SAGEMAKER_ROUTE = "sagemaker-studio-autoshutdown/idle_checker"
SAGEMAKER_SETTINGS_ROUTE = "sagemaker-studio-autoshutdown/settings"
#: This extension's own API.
SETTINGS_ROUTE = "autoshutdown/api/settings"
STATUS_ROUTE = "autoshutdown/api/status"
KEEPALIVE_ROUTE = "autoshutdown/api/keepalive"
ACTIVITY_ROUTE = "autoshutdown/api/activity"
DOCUMENTS_ROUTE = "autoshutdown/api/documents"
