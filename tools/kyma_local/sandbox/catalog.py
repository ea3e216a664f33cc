"""The sandbox's system voices: real MiniMax system voice ids, as `get_voice` lists them.

The ids are MiniMax's own (they appear in MiniMax's API reference examples
and in its voice list), including ones with spaces and full-width
parentheses such as ``Cantonese_ProfessionalHost（F)`` -- exactly the ids a
client must pass through unchanged.  Names follow MiniMax's English labels;
the descriptions are short paraphrases written for the sandbox.

Entry shape (``get_voice``, ``voice_type: system``)::

    {"voice_id": "...", "voice_name": "...", "description": ["..."], "created_time": "1970-01-01"}
"""

from __future__ import annotations

from typing import Any

_VOICES: tuple[tuple[str, str, str], ...] = (
    # English
    ("English_expressive_narrator", "Expressive Narrator", "An expressive adult narrator for storytelling."),
    ("English_Graceful_Lady", "Graceful Lady", "A graceful, composed female voice."),
    ("English_Trustworthy_Man", "Trustworthy Man", "A steady male voice that sounds reliable."),
    ("English_Aussie_Bloke", "Aussie Bloke", "A relaxed male voice with an Australian accent."),
    ("English_Whispering_girl", "Whispering girl", "A soft, whispering young female voice."),
    ("English_Diligent_Man", "Diligent Man", "A focused, earnest male voice."),
    ("English_Gentle-voiced_man", "Gentle-voiced man", "A calm, gentle male voice."),
    ("English_CaptivatingStoryteller", "Captivating Storyteller", "A warm storyteller for long narration."),
    ("Charming_Lady", "Charming Lady", "A bright, charming female voice."),
    ("Sweet_Girl", "Sweet Girl", "A sweet young female voice."),
    ("Arnold", "Arnold", "A deep, powerful male character voice."),
    ("Serene_Woman", "Serene Woman", "A quiet, serene female voice."),
    # Chinese (Mandarin)
    ("Chinese (Mandarin)_Reliable_Executive", "Steady Executive",
     "A steady, reliable male executive voice in standard Mandarin."),
    ("Chinese (Mandarin)_News_Anchor", "News Anchor (Female)",
     "A professional female news anchor voice in standard Mandarin."),
    ("Chinese (Mandarin)_Warm_Girl", "Warm Girl", "A warm young female voice in Mandarin."),
    ("Chinese (Mandarin)_Lyrical_Voice", "Lyrical Voice", "A lyrical male voice in Mandarin."),
    ("Chinese (Mandarin)_Gentleman", "Gentleman", "A mellow male voice in Mandarin."),
    # Cantonese
    ("Cantonese_ProfessionalHost（F)", "Professional Host (F)", "A professional female host in Cantonese."),
    ("Cantonese_ProfessionalHost（M)", "Professional Host (M)", "A professional male host in Cantonese."),
    ("Cantonese_GentleLady", "Gentle Lady", "A gentle female voice in Cantonese."),
    ("Cantonese_CuteGirl", "Cute Girl", "A lively young female voice in Cantonese."),
    # Other languages
    ("Japanese_IntellectualSenior", "Intellectual Senior", "A thoughtful older male voice in Japanese."),
    ("Japanese_DecisivePrincess", "Decisive Princess", "A confident female voice in Japanese."),
    ("Korean_SweetGirl", "Sweet Girl", "A sweet young female voice in Korean."),
    ("Korean_CalmLady", "Calm Lady", "A calm female voice in Korean."),
    ("Spanish_SereneWoman", "Serene Woman", "A serene female voice in Spanish."),
    ("Spanish_CaptivatingStoryteller", "Captivating Storyteller", "A storyteller's male voice in Spanish."),
    ("Portuguese_SentimentalLady", "Sentimental Lady", "A tender female voice in Portuguese."),
)

SYSTEM_VOICE_IDS = frozenset(voice_id for voice_id, _, _ in _VOICES)


def system_voices() -> list[dict[str, Any]]:
    """The catalog as `get_voice` returns it (a fresh copy each time)."""
    return [{"voice_id": voice_id, "voice_name": name, "description": [description],
             "created_time": "1970-01-01"} for voice_id, name, description in _VOICES]


def is_system_voice(voice_id: str) -> bool:
    return voice_id in SYSTEM_VOICE_IDS
