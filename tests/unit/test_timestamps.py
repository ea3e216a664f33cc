"""Timings placed on the caller's text, captions cut into readable cues, and MiniMax's subtitle
shape read strictly (no network: the pieces of kyma.speech.timestamps, kyma.speech.captions and
kyma.providers.minimax.subtitles on their own)."""

from __future__ import annotations

import io
import itertools

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from kyma.edge import errors
from kyma.providers import Segment, TimedWord
from kyma.providers.minimax.subtitles import ShapeError, segments_of_event, segments_of_file
from kyma.speech import captions
from kyma.speech.timestamps import Aligner, duration_ms


def segment_of(text: str, start: int, begin_ms: int = 0, per_char: int = 50) -> Segment:
    """A segment as MiniMax documents it: the words of text, each timed by its characters."""
    words, offset = [], 0
    for word in text.split():
        at = text.index(word, offset)
        offset = at + len(word)
        words.append(TimedWord(word, begin_ms + at * per_char, begin_ms + offset * per_char,
                               start + at, start + offset))
    return Segment(text, begin_ms, begin_ms + len(text) * per_char, start, start + len(text), tuple(words))


# ── placing timings on the input ────────────────────────────────────────
def test_words_are_found_where_they_are_even_if_minimax_counts_offsets_otherwise():
    text = "Héllo 🎉 wörld. Next one."
    aligner = Aligner(text, words=True)
    # MiniMax's own offsets are off (say UTF-16): the words are still placed by their text
    first = Segment("Héllo 🎉 wörld.", 0, 900, 0, 15, (TimedWord("Héllo", 0, 300, 0, 5),
                                                        TimedWord("🎉", 300, 400, 6, 8),
                                                        TimedWord("wörld.", 400, 900, 9, 15)))
    aligner.add(first)
    aligner.add(segment_of("Next one.", 16, begin_ms=950))
    assert [text[w["char_start"]:w["char_end"]] for w in aligner.words] == text.split()
    assert [s["text"] for s in aligner.sentences] == ["Héllo 🎉 wörld.", "Next one."]


def test_pause_markers_between_words_do_not_throw_the_words_off():
    text = "Wait <#1.5#> for it."
    aligner = Aligner(text, words=True)
    aligner.add(Segment(text, 0, 3000, None, None, (TimedWord("Wait", 0, 300), TimedWord("for", 1800, 2000),
                                                   TimedWord("it.", 2000, 2300))))
    assert [w["text"] for w in aligner.words] == ["Wait", "for", "it."]
    assert aligner.words[1]["char_start"] == text.index("for")


def test_a_word_not_in_the_input_without_usable_offsets_is_a_provider_error():
    aligner = Aligner("Hello world.", words=True)
    with pytest.raises(errors.ProviderError):
        aligner.add(Segment("Hello world.", 0, 500, None, None, (TimedWord("Goodbye", 0, 200),)))


def test_a_replaced_word_is_placed_by_minimax_offsets_when_its_text_differs():
    aligner = Aligner("Kyma rocks.", words=True)
    aligner.add(Segment("Kyma rocks.", 0, 500, 0, 11, (TimedWord("KEE-ma", 0, 200, 0, 4),
                                                         TimedWord("rocks.", 200, 500, 5, 11))))
    assert [w["text"] for w in aligner.words] == ["Kyma", "rocks."]


def test_times_running_backwards_across_segments_are_a_provider_error():
    aligner = Aligner("One. Two.", words=True)
    aligner.add(segment_of("One.", 0, begin_ms=1000))
    with pytest.raises(errors.ProviderError):
        aligner.add(segment_of("Two.", 5, begin_ms=10))


def test_duration_is_measured_from_pcm_and_flac_bytes():
    assert duration_ms(b"\0" * 32000 * 2 * 3, "pcm", 32000, fallback=1) == 3000
    info = (16 << 48) | (16 << 32)                # min/max block size, then frame sizes 0
    packed = (44100 << 44) | (0 << 41) | (15 << 36) | 88200     # 44.1 kHz, mono, 16 bit, 2 s
    flac = b"fLaC" + b"\0\0\0\x22" + info.to_bytes(10, "big") + packed.to_bytes(8, "big") + bytes(16)
    assert duration_ms(flac, "flac", 44100, fallback=1) == 2000
    assert duration_ms(b"not audio", "mp3", 32000, fallback=1234) == 1234


# ── captions ────────────────────────────────────────────────────────────
def timed(text: str) -> tuple[list[dict], list[dict]]:
    aligner = Aligner(text, words=True)
    offset, ms = 0, 0
    for sentence in [s for s in text.replace("! ", "!|").replace(". ", ".|").split("|") if s]:
        start = text.index(sentence, offset)
        aligner.add(segment_of(sentence, start, begin_ms=ms))
        offset, ms = start + len(sentence), ms + len(sentence) * 50 + 100
    return aligner.sentences, aligner.words


def test_a_long_sentence_becomes_several_cues_of_two_lines_of_at_most_42_characters():
    text = ("This sentence is much too long to fit on one caption, so it is cut at word boundaries into "
            "cues of two lines each, timed by their own words. Short one!")
    sentences, words = timed(text)
    cues = list(srt.parse(captions.build(text, sentences, words, "srt")))
    assert len(cues) > len(sentences)
    assert all(len(c.content.split("\n")) <= 2 and all(len(line) <= 42 for line in c.content.split("\n"))
               for c in cues)
    assert " ".join(c.content.replace("\n", " ") for c in cues) == text
    assert all(a.end <= b.start for a, b in itertools.pairwise(cues))
    assert cues[-1].content == "Short one!"


def test_vtt_escapes_markup_and_both_formats_parse():
    text = "Fish & chips <b>now</b>. Then more."
    sentences, words = timed(text)
    vtt = captions.build(text, sentences, words, "vtt")
    assert vtt.startswith("WEBVTT") and "&amp;" in vtt and "<b>" not in vtt
    parsed = webvtt.from_buffer(io.StringIO(vtt))
    assert len(parsed.captions) == 2


@given(st.lists(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=60),
                min_size=1, max_size=40))
def test_any_sentence_of_any_words_fits_the_cue_rules(tokens):
    text = " ".join(tokens) + "."
    aligner = Aligner(text, words=False)
    aligner.add(Segment(text, 0, 10_000, 0, len(text)))
    cues = list(srt.parse(captions.build(text, aligner.sentences, None, "srt")))
    assert all(len(line) <= 42 for c in cues for line in c.content.split("\n"))
    assert all(len(c.content.split("\n")) <= 2 for c in cues)
    assert "".join(c.content.replace("\n", "").replace(" ", "") for c in cues) == text.replace(" ", "")


# ── MiniMax's subtitle shape, read strictly ─────────────────────────────
GOOD = {"text": "Hi there.", "pronounce_text": "Hi there.", "time_begin": 0, "time_end": 700, "text_begin": 0,
        "text_end": 9, "is_final_segment": True,
        "timestamped_words": [{"word": "Hi", "word_begin": 0, "word_end": 2, "time_begin": 0, "time_end": 200},
                              {"word": "there.", "word_begin": 3, "word_end": 9, "time_begin": 250,
                               "time_end": 700}]}


def test_the_documented_shape_is_read():
    (segment,) = segments_of_file([GOOD], words=True)
    assert segment.words[1] == TimedWord("there.", 250, 700, 3, 9)
    assert segments_of_event(GOOD, words=False)[0].words == ()


@pytest.mark.parametrize("broken", [
    {"segments": [GOOD]},                                   # not an array
    [{**GOOD, "time_begin": "0"}],                          # a time as a string
    [{**GOOD, "time_end": -1}],
    [{**GOOD, "time_begin": 800}],                          # ends before it begins
    [{k: v for k, v in GOOD.items() if k != "text"}],
    [{k: v for k, v in GOOD.items() if k != "timestamped_words"}],
    [{**GOOD, "timestamped_words": [{"text": "Hi", "time_begin": 0, "time_end": 1}]}],
    [{**GOOD, "text_begin": 1.5}],
    [{**GOOD, "time_begin": 500}, {**GOOD, "time_begin": 100}],   # segments run backwards
    [{**GOOD, "time_end": float("inf")}],
])
def test_anything_else_is_a_shape_error(broken):
    with pytest.raises(ShapeError):
        segments_of_file(broken, words=True)
