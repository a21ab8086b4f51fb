"""The one gate for names that come from outside: landing folders, S3 prefixes, file names, CLI arguments.

A product key becomes a Dagster partition key, a directory name, an S3 key segment and a SQL-visible value,
so it is held to a small documented alphabet: `PRODUCT_KEY_RULE`. Anything else is refused with a reason
code; an operator who must accept a folder named otherwise maps it to a valid key (`product_aliases`).
File names are not product keys (a help desk may call a file anything), but they are single path
components: no separators, no `.`/`..`, valid UTF-8, bounded length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

MAX_PRODUCT_KEY_LENGTH = 40
PRODUCT_KEY_RULE = (f"1-{MAX_PRODUCT_KEY_LENGTH} characters: lowercase ASCII letters, digits, '-' and '_', "
                    "starting with a letter or digit")
_PRODUCT_KEY = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_PRODUCT_KEY_LENGTH - 1}}}")
MAX_FILE_NAME_BYTES = 255


class InvalidName(ValueError):
    """An outside name that may not be used; `reason` is a stable code for counts and cursors."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _as_text(name: str | bytes) -> str:
    """Names as the OS or S3 gave them; bytes or surrogate-escaped str that are not UTF-8 are refused."""
    raw = name if isinstance(name, bytes) else os.fsencode(name) if isinstance(name, str) else None
    if raw is None:
        raise InvalidName("not_a_string", f"{type(name).__name__}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName("not_utf8", "the name is not valid UTF-8") from None


def product_key(name: str | bytes, aliases: Mapping[str, str] | None = None) -> str:
    """`name` as a product key, through `aliases` first; raises InvalidName. The only way a name from
    outside becomes a partition key or a path segment."""
    text = _as_text(name)
    if aliases and text in aliases:
        text = aliases[text]
    if not text:
        raise InvalidName("empty", "an empty name")
    if len(text) > MAX_PRODUCT_KEY_LENGTH:
        raise InvalidName("too_long", f"{len(text)} characters; at most {MAX_PRODUCT_KEY_LENGTH}")
    if not _PRODUCT_KEY.fullmatch(text):
        raise InvalidName("invalid_characters", f"a product key has {PRODUCT_KEY_RULE}")
    return text


def product_key_problem(name: str | bytes, aliases: Mapping[str, str] | None = None) -> str | None:
    """The reason code `name` is refused, or None when it is a valid product key."""
    try:
        product_key(name, aliases)
    except InvalidName as err:
        return err.reason
    return None


def file_name(name: str | bytes) -> str:
    """`name` as one path component that may be created or read inside a folder tuneline owns."""
    text = _as_text(name)
    if text in ("", ".", ".."):
        raise InvalidName("reserved", "empty, '.' or '..'")
    if "/" in text or "\\" in text or "\x00" in text:
        raise InvalidName("separator", "a file name holds no path separator or NUL")
    if len(text.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise InvalidName("too_long", f"over {MAX_FILE_NAME_BYTES} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InvalidName("control_character", "a file name holds no control characters")
    return text


MAX_DISPLAY_NAME_LENGTH = 60
_DISPLAY_NAME = re.compile(r"[\w][\w .,&'()/-]*", re.UNICODE)


def product_display_name(product: str, display_names: Mapping[str, str] | None = None) -> str:
    """How a product is named in a prompt: the configured display name, else the key in words
    ("gift_cards" -> "Gift cards"). A display name enters every training example's system prompt, so it is
    held to words and light punctuation on one line (no braces, quotes or chat-template markup)."""
    key = product_key(product)
    text = (display_names or {}).get(key) or key.replace("_", " ").replace("-", " ").capitalize()
    if len(text) > MAX_DISPLAY_NAME_LENGTH or not _DISPLAY_NAME.fullmatch(text):
        raise InvalidName("invalid_display_name", f"a display name is at most {MAX_DISPLAY_NAME_LENGTH} characters "
                                                  "of letters, digits, spaces and . , & ' ( ) / -")
    return text
