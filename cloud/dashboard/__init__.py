"""The web dashboard: server-rendered pages behind the same login, permissions and scope as the
API. Charts are drawn on the server (matplotlib, SVG); live alert updates come from the API's
server-sent-events stream."""
