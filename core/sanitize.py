"""Text from outside, made safe to read, store and show: no lone surrogates, controls, invisibles or
chat-template control tokens."""

from __future__ import annotations

import re
import unicodedata

NAME_CHARS = 64  # a display name longer than this is cut

# Characters that are never kept: C0/C1 controls (line breaks and tabs are handled apart), soft
# hyphen, the combining grapheme joiner, Arabic letter mark, Hangul and Khmer fillers used as blank
# names, Mongolian vowel separator, zero-width space, LRM/RLM, bidi embeddings, overrides and
# isolates, invisible operators, deprecated format controls, the BOM, interlinear annotation,
# noncharacters, shorthand and musical format controls, and the tag block.
_DROP = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200e\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufeff\uffa0\ufff0-\ufffb\ufdd0-\ufdef\ufffe\uffff"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e007f"
    "]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
# kept only where they do a job: joiners inside emoji sequences and the scripts that need them,
# variation selectors after a symbol, keycap base or (the ideographic ones) a CJK character
_JOINERS = re.compile("[\u200c\u200d\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_LINES = re.compile("\r\n?|[\u2028\u2029\x85]")
# Control tokens of the chat templates a model may be served with; typed by a user they would open
# or close a turn of another role. None contains a blank, so a blank put where one was cut cannot
# complete a new one (see _untokened). Every alternative is bounded: one pass is linear.
_TOKENS = re.compile(
    r"<[|\uff5c][^\s|\uff5c<>]{1,64}[|\uff5c]>"  # ChatML, InternLM2, Llama 3, Qwen, Phi, GLM: <|...|>; DeepSeek <｜...｜>
    r"|\[/?(?:INST|SYS|SYSTEM_PROMPT|TOOL_CALLS|AVAILABLE_TOOLS|TOOL_RESULTS|TOOL_CONTENT|THINK|IMG(?:_BREAK|_END)?)\]"
    r"|\[[gs]?MASK\]|<</?SYS>>"  # Mistral above; GLM's masks and Llama 2's system markers
    r"|</?(?:s|bos|eos|unk|pad|sop|eop|eoh|eoa|eosys|think|tool_call|tool_response|tools)>"
    r"|<(?:start|end)_of_(?:turn|image|audio)>|<(?:reserved|unused)_?\d{1,4}>",  # Gemma; Baichuan's role tokens
    re.IGNORECASE,
)
_TOKEN_START = re.compile(r"[<\[]")
_SPACES = re.compile(r"\s+")


def _pair_surrogates(text: str) -> str:
    """Join surrogate pairs into the character they encode; lone halves are dropped."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")


def _emoji_like(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or "\U0001f3fb" <= ch <= "\U0001f3ff" or ch == "\ufe0f"


def _joining_script(ch: str) -> bool:
    """Arabic, Syriac, Persian and Indic letters, where ZWNJ/ZWJ change how a word is written."""
    return ("\u0600" <= ch <= "\u08ff" or "\u0900" <= ch <= "\u0dff" or "\ufb50" <= ch <= "\ufdff"
            or "\ufe70" <= ch <= "\ufefc")


def _cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f"


def _keep_joiner(text: str, i: int) -> bool:
    ch = text[i]
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if not before:
        return False
    if "\ufe00" <= ch <= "\ufe0f":
        return _emoji_like(before) or before in "0123456789#*"
    if ch >= "\U000e0100":
        return _cjk(before)
    if ch == "\u200d" and _emoji_like(before) and after and _emoji_like(after):
        return True
    return bool(after) and _joining_script(before) and _joining_script(after)


def _joiners(text: str) -> str:
    if not _JOINERS.search(text):
        return text
    return "".join(ch for i, ch in enumerate(text) if not _JOINERS.fullmatch(ch) or _keep_joiner(text, i))


def _untokened(text: str) -> str:
    """The text without chat-template control tokens, in two passes at most (linear time).

    Cutting a token can join its neighbours into a new one (`<|im_<|x|>start|>`): then every token
    is replaced by a blank instead, which no token can span.
    """
    if not _TOKEN_START.search(text):
        return text
    cut = _TOKENS.sub("", text)
    return cut if cut == text or not _TOKENS.search(cut) else _TOKENS.sub(" ", text)


def clean_text(text: str) -> str:
    """Drop lone surrogates, controls, bidi and tag characters, other invisibles and chat-template
    control tokens; keep line breaks.

    Tabs become spaces and every line-break form becomes "\\n". Idempotent, linear in the text.
    """
    if _SURROGATE.search(text):
        text = _pair_surrogates(text)
    text = _LINES.sub("\n", text).replace("\t", " ")
    # tokens last: an invisible inside a token (`<|im_\u200bstart|>`) must not hide it
    return _untokened(_joiners(_DROP.sub("", text)))


def clean_name(name: str, limit: int = NAME_CHARS) -> str:
    """A display name on one line: cleaned, blank runs collapsed to one space, cut at `limit`."""
    return clean_text(_SPACES.sub(" ", clean_text(name)).strip()[:limit]).strip()


def clean_input(text: str, limit: int) -> str:
    """A message for the pipeline: cleaned, at most one blank line in a row, cut at `limit` characters."""
    text = re.sub(r"\n{3,}", "\n\n", clean_text(text)).strip()
    return text if len(text) <= limit else clean_text(text[:limit]).rstrip() + "……"

