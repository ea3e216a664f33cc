"""The public routes and their methods (template.yaml defines the same; a test checks)."""

ROUTES: dict[str, tuple[str, ...]] = {
    "/v1/credits/balance": ("GET",),
    "/v1/audio/voice-clone": ("POST",),
    "/v1/audio/speech": ("POST",),
    "/v1/audio/voice-clone/uploads": ("POST",),
}
