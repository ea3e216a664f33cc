"""The sandbox provider: stands in for MiniMax in the local stack (no key configured).

Clone succeeds for any reference that passed the service's checks.  Speech
returns real, playable audio (see `synthesize`).  It never claims to be
MiniMax: responses carry `X-Kyma-Provider: sandbox`.
"""

from __future__ import annotations

import time

from kyma.errors import ProviderError
from kyma.providers import SynthesisRequest, SynthesisResult


class SandboxProvider:
    name = "sandbox"

    def __init__(self) -> None:
        self.voices: set[str] = set()

    def clone_voice(self, audio: bytes, filename: str, voice_id: str, *, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise ProviderError("The sandbox provider ran out of time.")
        if voice_id in self.voices:
            raise ProviderError("Voice clone failed: duplicate voice id.", retryable=False)
        self.voices.add(voice_id)

    def synthesize(self, request: SynthesisRequest, *, deadline: float) -> SynthesisResult:
        from kyma.providers.sandbox_audio import render

        if time.monotonic() >= deadline:
            raise ProviderError("The sandbox provider ran out of time.")
        return SynthesisResult(render(request), request.audio_format, trace_id=None,
                               extra_info={"provider": "sandbox"})
