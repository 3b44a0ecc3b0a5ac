"""An HTTP component in Python: gatewayd calls handle_request for every request
routed to it (see [[trigger.http]] in spin.toml). componentize-py bundles this
file, the Spin SDK and CPython into app.wasm."""

from spin_sdk import http
from spin_sdk.http import Request, Response


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        return Response(
            200,
            {"content-type": "text/plain"},
            b"Hello from %%project-name%%!\n",
        )
