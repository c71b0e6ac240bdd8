"""Texts of any length are segmented in bounded windows: one huge line never reaches a splitter whole."""

from __future__ import annotations

import unicodedata

from kb.text.chunking import chunk_text, iter_chunks
from kb.text.sentences import SENTENCE_WINDOW_CHARS, split_sentences, text_windows

THAI_CLAUSE = "ลูกค้าต้องได้รับการแจ้งเตือนก่อนการเปลี่ยนแปลงทุกครั้ง"


def word_counter(texts: list[str]) -> list[int]:
    return [2 + len(t.split()) for t in texts]


def test_windows_cover_the_range_end_at_spaces_and_stay_under_the_limit():
    text = " ".join([THAI_CLAUSE] * 400)  # one line, ~20,000 characters
    windows = list(text_windows(text, 0, len(text), 1_000))
    assert windows[0][0] == 0 and windows[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert all(0 < end - start <= 1_000 for start, end in windows)
    assert all(text[end - 1] == " " for _, end in windows[:-1]), "a window ends at a space when there is one"


def test_a_text_without_any_break_is_cut_between_letters_never_before_a_mark():
    text = THAI_CLAUSE.replace(" ", "") * 100
    windows = list(text_windows(text, 0, len(text), 777))
    assert len(windows) > 1
    for _, end in windows[:-1]:
        assert not unicodedata.category(text[end]).startswith("M"), "a vowel or tone mark left its letter"


def test_a_huge_thai_line_is_split_a_window_at_a_time():
    # No space or punctuation at all: crfcut would return it as one "sentence" of 20,000 characters.
    text = THAI_CLAUSE.replace(" ", "") * 400
    spans = split_sentences(text, "th")
    assert len(spans) >= len(text) // SENTENCE_WINDOW_CHARS
    assert all(end - start <= SENTENCE_WINDOW_CHARS for start, end in spans)
    assert "".join(text[s:e] for s, e in spans) == text
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_windowed_chunks_are_the_plain_ones_for_a_short_text_and_valid_for_a_long_one():
    short = "First sentence here. Second one follows. " * 20
    assert list(iter_chunks(short, word_counter, max_tokens=30)) == chunk_text(short, word_counter, max_tokens=30)
    long = "One sentence of a few words. " * 2_000
    chunks = list(iter_chunks(long, word_counter, max_tokens=30, window_chars=3_000))
    assert all(0 <= c.start < c.end <= len(long) and c.token_count <= 30 for c in chunks)
    assert all(a.start < b.start for a, b in zip(chunks, chunks[1:], strict=False))
    for chunk in chunks:
        assert all(chunk.start <= s < e <= chunk.end for s, e in chunk.sentences)
        assert long[chunk.start : chunk.end].startswith("One") and long[chunk.start : chunk.end].endswith(".")
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(i in covered or long[i].isspace() for i in range(len(long)))
