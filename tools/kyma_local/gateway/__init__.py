"""A local API Gateway (REST API, Lambda proxy integration) on loopback.

It builds the proxy event AWS would send, runs the REQUEST authorizer (with
its cache), then the function, and maps the result back to HTTP byte for
byte.  Routes, binary media types, the authorizer, throttling and the gateway
responses all come from template.yaml.

AWS behaviour reproduced here (see README "Local stack" for sources):
- a route that matches no resource → MISSING_AUTHENTICATION_TOKEN;
  a specific method wins over ANY on the same resource;
- identity header missing → 401 without calling the authorizer; the
  authorizer raising "Unauthorized" → UNAUTHORIZED; an explicit or implicit
  deny → ACCESS_DENIED; any other authorizer failure → AUTHORIZER_CONFIGURATION_ERROR;
  answers cached per identity-header value for ReauthorizeEvery seconds;
- request bodies whose Content-Type matches BinaryMediaTypes arrive base64;
  a base64 Lambda response is decoded only if the request's first Accept type
  matches BinaryMediaTypes;
- payload limits: 10 MB request (REQUEST_TOO_LARGE), 6 MB invocation event
  including the base64 body (answered like the 10 MB case), 6 MB response and
  function errors / timeouts (502 / 504, DEFAULT_5XX);
- per-method throttling from MethodSettings (THROTTLED, 429), ResourcePath
  decoded as CloudFormation encodes it (/~1v1~1audio~1speech);
- a request without Content-Type is taken as application/json;
- request line + headers over 10,240 bytes, malformed framing and http.server's
  own rejections answer in the DEFAULT_4XX envelope; a body that ends early
  (client gone) reaches no function;
- response streaming (ResponseTransferMode: RESPONSE_STREAM) to a Lambda Web
  Adapter app: chunked, never base64, TimeoutInMillis and the function timeout
  cut the stream, 5 min idle timeout, 10 MB unthrottled then 2 MB/s.

Modules: server (HTTP framing), api (the request path), routes, throttle,
authorizer, policy, events (the proxy event), media (binary media types),
proxy (buffered integration), streaming (streamed integration), responses
(gateway responses), limits.
"""

from kyma_local.gateway.api import LocalApiGateway
from kyma_local.gateway.events import build_event
from kyma_local.gateway.limits import CONTROL_PREFIX, MAX_INVOKE_PAYLOAD_BYTES, MAX_REQUEST_BYTES, json_size
from kyma_local.gateway.responses import HttpResponse
from kyma_local.gateway.server import make_server

__all__ = ["CONTROL_PREFIX", "MAX_INVOKE_PAYLOAD_BYTES", "MAX_REQUEST_BYTES", "HttpResponse", "LocalApiGateway",
           "build_event", "json_size", "make_server"]
