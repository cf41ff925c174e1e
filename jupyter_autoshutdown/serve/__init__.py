"""Stage 4, serve: the REST API over the service, for people, scripts and the front end.

Owns the handlers (`handlers`), their base mixin that hands them the typed service (`mixin`),
the service object itself (`service`) and the JSON models they send (`status`). Handlers
validate, call the service and serialise the latest published pass; they never cull anything,
and a GET changes nothing.

Imports: `core`, `observe`, `decide`, `act`, `actions`; never `app` (the service is handed in).
"""
