"""The edge: proxy events in and responses out, the web app behind the Web Adapter, JSON and
multipart bodies, the error vocabulary and envelope, the published OpenAPI document.
It knows no domain."""
