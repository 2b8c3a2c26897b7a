"""The control page: the broker's own small web page, served by the running broker on its
loopback listener under ``/ui/`` (:mod:`broker.ui.mount`), opened by ``mcp-broker open`` and the
tray's "Open mcp-oauth-broker…". Server-rendered Flask + Jinja pages with forms that work
without JavaScript; every action goes through the same code as the CLI and the tray (the one
sign-in flow, ``configure``'s own code, the clients registry). How it is kept safe: see
:mod:`broker.ui.guards` and :mod:`broker.ui.sessions`. Nothing here imports pystray."""
