"""What the model server is: its kind, its context size, token counts in its own tokenizer, and
whether it can see images.

Counts come from the server where it can tokenize (lmdeploy `/v1/encode`, vLLM `/tokenize`,
llama.cpp `/tokenize`, llama-cpp-python `/extras/tokenize/count`); else the built-in estimate is
calibrated from the `usage` the server reports. An image counts as `[llm] image_tokens`.

Vision (`[llm] vision = "auto"`): llama.cpp's server says so in `/props` (`modalities.vision`);
a model card that lists image input says so; lmdeploy and cloud APIs are judged by the model's
name (`VISION_MODELS`); vLLM and llama-cpp-python don't tell, so they are taken as blind.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from core.config import LLMConfig
from core.text import char_classes

log = logging.getLogger(__name__)
Kind = Literal["lmdeploy", "vllm", "llamacpp", "openai"]
ASSUMED_CONTEXT = 4096
MESSAGE_OVERHEAD = 8  # role markers and separators a chat template adds per message
# model names of vision-language models (cloud APIs and lmdeploy's VL families)
VISION_MODELS = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-5|claude|gemini|qwen[\d.]*-?vl|internvl|llava|minicpm-?v|glm-4(\.\d+)?v"
    r"|cogvlm|deepseek-vl|[-_]vl\b|vision",
    re.IGNORECASE,
)
# calibration samples (written for this purpose): one Chinese, one English
_SAMPLE_ZH = (
    "旅人在山路上走了三天，终于在黄昏时看见了村口的灯火。村里的人说，今年麦子收成很好，"
    "狼神还在仓里睡着。他买了一袋苹果，又向酒馆老板打听北方的道路，老板笑着说雪快要来了。"
)
_SAMPLE_EN = (
    "The traveller walked the mountain road for three days and at dusk saw the lights of the "
    "village. People said the wheat harvest was good this year, and that the wolf still slept in "
    "the granary. He bought a bag of apples and asked the innkeeper about the northern roads."
)


@dataclass
class ServerProfile:
    """The server as the bot knows it; filled in by `probe_server`, refined by what it reports."""

    kind: Kind = "vllm"
    context: int = ASSUMED_CONTEXT
    context_source: str = "assumed"  # "config", "server", "learned" (from an overflow error), "assumed"
    models: list[str] = field(default_factory=list)
    tokenizer: str = ""  # the endpoint that counts tokens, "" when none
    per_cjk: float = 1.0  # tokens per CJK character
    per_other: float = 1.0  # tokens per 4 other characters
    margin: float = 1.1  # headroom on estimates until the server has been asked
    reachable: bool = False
    vision: bool = False  # the server takes image_url content parts
    image_tokens: int = 768  # the estimate for one image (our counter can't tokenize pictures)

    @classmethod
    def configured(cls, cfg: LLMConfig) -> ServerProfile:
        """What the config says, before the server is asked."""
        profile = cls(kind=_configured_kind(cfg), image_tokens=cfg.image_tokens)
        if isinstance(cfg.vision, bool):
            profile.vision = cfg.vision
        else:
            profile.vision = profile.kind == "openai" and bool(VISION_MODELS.search(cfg.model))
        if cfg.context_tokens != "auto":
            profile.context, profile.context_source = int(cfg.context_tokens), "config"
        return profile

    def count(self, text: str) -> int:
        """Tokens the server will see for `text` (calibrated estimate, rounded up)."""
        cjk, other = char_classes(text)
        return math.ceil((cjk * self.per_cjk + other / 4 * self.per_other) * self.margin)

    def count_message(self, text: str, images: int = 0) -> int:
        """Tokens for one chat message with `images` pictures, template overhead included."""
        return self.count(text) + MESSAGE_OVERHEAD + images * self.image_tokens

    def learn_context(self, limit: int) -> None:
        """The server named its context size (in an overflow error)."""
        if limit > 0 and (self.context_source != "config" or limit < self.context):
            if limit != self.context:
                log.warning("the model server's context is %d tokens (was taken as %d)", limit, self.context)
            self.context, self.context_source = limit, "learned"

    def learn_ratio(self, estimated: int, real: int) -> None:
        """The server counted `real` tokens where the estimate said `estimated`: scale up if needed."""
        if estimated > 0 and real > estimated:
            factor = real / estimated
            self.per_cjk *= factor
            self.per_other *= factor

    def describe(self) -> str:
        """One line for logs and doctor."""
        counting = f"tokens counted by {self.tokenizer}" if self.tokenizer else "tokens estimated"
        sight = ", sees images" if self.vision else ""
        return f"{self.kind} server, context {self.context} tokens ({self.context_source}), {counting}{sight}"


def _configured_kind(cfg: LLMConfig) -> Kind:
    if cfg.server != "auto":
        return cfg.server
    host = urlsplit(cfg.base_url).hostname or ""
    return "openai" if host.endswith(("openai.com", "openai.azure.com")) else "vllm"


def _root(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def kind_of(owned_by: str, cfg: LLMConfig) -> Kind:
    """The server kind from what /v1/models reports (or the configured one)."""
    if cfg.server != "auto":
        return cfg.server
    owner = owned_by.lower()
    if owner == "lmdeploy":
        return "lmdeploy"
    if owner in ("llamacpp", "me"):  # llama.cpp's server; llama-cpp-python's server
        return "llamacpp"
    if owner in ("openai", "system", "openai-internal"):
        return "openai"
    return _configured_kind(cfg)


async def probe_server(http: httpx.AsyncClient, cfg: LLMConfig, profile: ServerProfile) -> None:
    """Fill `profile` from the server: kind, models, context size and a token counter."""
    try:
        resp = await http.get("models")
        resp.raise_for_status()
        cards = [c for c in resp.json().get("data", []) if isinstance(c, dict)]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        log.info("model server not reachable yet (%s); using configured settings", type(exc).__name__)
        return
    profile.reachable = True
    profile.models = [str(c.get("id")) for c in cards if c.get("id")]
    card = next((c for c in cards if c.get("id") == cfg.model), cards[0] if cards else {})
    profile.kind = kind_of(str(card.get("owned_by", "")), cfg)
    asks = cfg.vision == "auto" or cfg.context_tokens == "auto"
    props = await _props(http, cfg.base_url) if profile.kind == "llamacpp" and asks else {}
    if cfg.vision == "auto":
        profile.vision = vision_of(profile.kind, card, props)
    if cfg.context_tokens == "auto":
        size = _server_context(card, props)
        if size:
            profile.context, profile.context_source = size, "server"
        else:
            log.warning(
                "the model server does not report its context size; assuming %d tokens "
                "(set [llm] context_tokens to the server's context, e.g. lmdeploy's --session-len)",
                profile.context,
            )
    model = cfg.model or (profile.models[0] if profile.models else "")
    for endpoint in _tokenizers(profile.kind):
        en = await count_with(http, endpoint, _SAMPLE_EN, model, cfg.base_url)
        zh = await count_with(http, endpoint, _SAMPLE_ZH, model, cfg.base_url) if en else None
        if zh and en:
            profile.per_other = max(0.2, en / (char_classes(_SAMPLE_EN)[1] / 4))
            cjk, other = char_classes(_SAMPLE_ZH)
            profile.per_cjk = max(0.2, (zh - other / 4 * profile.per_other) / cjk)
            profile.tokenizer, profile.margin = endpoint, 1.05
            break
    log.info("model server: %s", profile.describe())


async def _props(http: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    """llama.cpp's GET /props ({} where there is none: llama-cpp-python, an older server)."""
    try:
        resp = await http.get(_root(base_url) + "/props")
        props = resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    return props if isinstance(props, dict) else {}


def _server_context(card: dict[str, Any], props: dict[str, Any]) -> int:
    for key in ("max_model_len", "context_length", "context_window"):  # vLLM and others
        if isinstance(card.get(key), int):
            return int(card[key])
    try:
        settings = props.get("default_generation_settings") or {}
        n_ctx = settings.get("n_ctx") or props.get("n_ctx")
        return int(n_ctx) if n_ctx else 0
    except (ValueError, TypeError, AttributeError):
        return 0


def vision_of(kind: Kind, card: dict[str, Any], props: dict[str, Any]) -> bool:
    """Whether the server can see images, from its /v1/models card and (llama.cpp) its /props."""
    said = _card_vision(card)
    if said is not None:
        return said
    modalities = props.get("modalities")
    if isinstance(modalities, dict) and isinstance(modalities.get("vision"), bool):
        return bool(modalities["vision"])
    if kind in ("openai", "lmdeploy"):  # a VL model is named so; lmdeploy loads its vision tower with it
        names = " ".join(str(card.get(k, "")) for k in ("id", "root"))
        return bool(VISION_MODELS.search(names))
    return False  # vLLM, llama-cpp-python: nothing tells (set [llm] vision = true)


def _card_vision(card: dict[str, Any]) -> bool | None:
    """What a model card says about image input, or None when it says nothing."""
    arch = card.get("architecture")
    for listed in (
        card.get("input_modalities"),
        card.get("modalities"),
        arch.get("input_modalities") if isinstance(arch, dict) else None,
    ):
        if isinstance(listed, list):
            return "image" in listed or "vision" in listed
    caps = card.get("capabilities")
    if isinstance(caps, dict) and isinstance(caps.get("vision"), bool):
        return bool(caps["vision"])
    if isinstance(caps, list):
        return "vision" in caps
    return None


def _tokenizers(kind: Kind) -> list[str]:
    return {
        "lmdeploy": ["/v1/encode"],
        "vllm": ["/tokenize"],
        "llamacpp": ["/extras/tokenize/count", "/tokenize"],
        "openai": [],
    }[kind]


async def count_with(http: httpx.AsyncClient, endpoint: str, text: str, model: str, base_url: str) -> int | None:
    """Tokens in `text` as the server's tokenizer counts them, or None when the endpoint can't say."""
    bodies: dict[str, dict[str, Any]] = {
        "/v1/encode": {"input": text, "do_preprocess": False, "add_bos": False},
        "/tokenize": {"prompt": text, "content": text, "model": model, "add_special_tokens": False},
        "/extras/tokenize/count": {"input": text},
    }
    try:
        resp = await http.post(_root(base_url) + endpoint, json=bodies[endpoint], timeout=10.0)
        if resp.status_code != 200:
            return None
        data = resp.json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    for key in ("count", "length"):
        if isinstance(data.get(key), int):
            return int(data[key])
    for key in ("tokens", "input_ids"):
        if isinstance(data.get(key), list):
            return len(data[key])
    return None
