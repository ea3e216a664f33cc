"""`make sample`: write reference.mp3, a 15-second clip to try voice cloning locally.

It is a synthetic hum (gliding tones with pauses), not speech.  The sandbox
provider accepts any reference that passes the checks.  To clone a real
voice on MiniMax, record 10 s to 5 min of clear speech instead (MP3, WAV or
M4A); a phone voice memo works.
"""

from __future__ import annotations

import math
import sys
from array import array
from pathlib import Path

RATE = 22050
SECONDS = 15


def reference_mp3(seconds: int = SECONDS) -> bytes:
    import lameenc

    samples = array("h")
    for i in range(RATE * seconds):
        t = i / RATE
        syllable = (t * 3.1) % 1.0                      # ~3 "syllables" per second
        envelope = math.sin(math.pi * syllable) ** 2 if (t % 2.4) < 2.0 else 0.0   # pauses
        pitch = 140 + 40 * math.sin(2 * math.pi * 0.4 * t)                          # intonation
        value = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
        samples.append(int(9000 * envelope * value))
    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(1)
    encoder.set_bit_rate(64)
    encoder.set_quality(5)
    return bytes(encoder.encode(samples.tobytes()) + encoder.flush())


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "reference.mp3")
    path.write_bytes(reference_mp3())
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {SECONDS} s)")


if __name__ == "__main__":
    main()
