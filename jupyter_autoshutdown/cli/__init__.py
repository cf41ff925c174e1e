"""The command line, `jupyter autoshutdown`: talks to a running server over its REST API
(status, set, check, keepalive, fleet) and resets a stopped one's saved state.

Runs outside the server: it imports `core` only (settings, auth), never the server's stages.
`jupyter_autoshutdown.client` is its old address, kept for scripts that call it by name.
"""
