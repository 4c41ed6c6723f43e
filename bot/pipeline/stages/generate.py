"""Stage 5, generate: the model, streamed and checked, with timeouts; the offline responder when it can't answer.

Time a message spends waiting for a model slot is the bot's own queue, never the server's fault: the
first-token timeout and the deadline count from the moment the request is sent. A message whose wait
reaches `[bot] max_queue_seconds` is answered with an example line instead (shed: counted and logged).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bot import metrics
from bot.checks.defects import Defect, DefectScan, conversation_language, known_words
from bot.checks.hygiene import Hidden, ReplyCheck, whole_sentences
from bot.pipeline.exchange import Exchange
from bot.pipeline.offline import Offline
from core.config import LLMConfig
from core.llm import ChatModel, ContextOverflow, LLMError
from persona.card import Persona

log = logging.getLogger(__name__)
Recompose = Callable[[Exchange], Awaitable[Exchange]]


@dataclass
class Attempt:
    """How one model request went."""

    text: str = ""
    shown: bool = False
    error: LLMError | None = None
    timed_out: str = ""  # "first token" or "deadline" or "stall"
    shed: bool = False  # still waiting for a slot at the queue limit
    skipped: bool = False  # the breaker opened while it waited for a slot
    partial: bool = False
    unusable: str = ""  # why the text was thrown away
    defect: Defect | None = None  # the first broken part found (the text is what came before it)


class _BreakerOpen(Exception):
    """The breaker opened while the request waited for its slot: it is not sent."""


class Generate:
    """Streams the model's reply into ex.draft; falls back to offline lines on failure.

    The circuit breaker opens only for the server's own faults (refused, 5xx, timeouts after the
    request was sent, broken streams), never for a request that was too long or malformed, nor for
    time spent in the bot's own queue.
    """

    def __init__(
        self,
        cfg: LLMConfig,
        model: ChatModel,
        offline: Offline,
        clock: Callable[[], float] = time.monotonic,
        recompose: Recompose | None = None,
        reply_cap: Callable[[], int] | None = None,
        max_queue_seconds: float = 180.0,
    ):
        self.cfg = cfg
        self.model = model
        self.offline = offline
        self.clock = clock
        self.recompose = recompose
        self.reply_cap = reply_cap or (lambda: cfg.max_tokens)
        self.max_queue_seconds = max_queue_seconds
        self._down_until = float("-inf")
        self._hidden: dict[str, tuple[Persona, Hidden]] = {}

    def hidden(self, persona: Persona) -> Hidden:
        """The persona's hidden texts, indexed once."""
        cached = self._hidden.get(persona.id)
        if cached is None or cached[0] is not persona:
            cached = self._hidden[persona.id] = (persona, Hidden(persona))
        return cached[1]

    async def __call__(self, ex: Exchange) -> Exchange:
        """Fill ex.draft and ex.mode."""
        overflowed = regenerated = False
        defect: Defect | None = None
        while True:
            if self.clock() < self._down_until:
                return await self._offline(ex, "fallback")
            if ex.arrived and self.clock() - ex.arrived >= self.max_queue_seconds:
                return await self._shed(ex)  # waited its limit behind its conversation's earlier messages
            attempt = await self._attempt(ex, self.model, steady=regenerated, after=defect)
            if attempt.shed:
                return await self._shed(ex)
            if attempt.skipped:
                return await self._offline(ex, "fallback")
            if isinstance(attempt.error, ContextOverflow) and not overflowed and self.recompose:
                metrics.model_error(attempt.error)
                overflowed = True
                self._learn_overflow(attempt.error, ex)
                ex = await self.recompose(ex)
                continue
            if attempt.error is not None and not attempt.shown and any(m.images for m in ex.prompt):
                # a server that cannot take pictures (vision set on by mistake) fails the request: it is
                # the pictures' fault, not the server's; ask again without them and stop sending them
                log.warning("the model failed a prompt with pictures (%s); asking again without them and "
                            "sending no more pictures (check [llm] vision)", _reason(attempt))
                self.model.profile.vision = False
                ex = replace(ex, prompt=tuple(replace(m, images=()) for m in ex.prompt), images=())
                continue
            if attempt.error is not None or attempt.timed_out:
                metrics.model_error(attempt.error, attempt.timed_out)
                if attempt.partial:
                    log.warning("model stopped mid-reply (%s); keeping the whole sentences", _reason(attempt))
                    return replace(ex, draft=attempt.text, mode="model", partial=True)
                if attempt.error is None or attempt.error.server_fault:
                    self._open_breaker(attempt)
                else:
                    log.warning("model refused the request (%s); answering offline", _reason(attempt))
                return await self._offline(ex, "fallback")
            self._down_until = float("-inf")
            metrics.breaker_closed()
            key = ex.incoming.conversation.key
            if attempt.text:
                if attempt.defect is not None:
                    _repaired(key, attempt.defect, "cut")
                log.info("reply by model %s (%d chars)", self.model.name, len(attempt.text))
                return replace(ex, draft=attempt.text, mode="model")
            if regenerated or attempt.shown:
                if attempt.defect is not None:
                    _repaired(key, attempt.defect, "offline")
                log.warning("model reply unusable (%s) twice; answering with an example line", attempt.unusable)
                return replace(await self._offline(ex, "fallback", shown=attempt.shown), heard=True)
            regenerated, defect = True, attempt.defect
            if attempt.defect is not None:
                _repaired(key, attempt.defect, "retried")
            log.info("model reply unusable (%s); asking once more with steadier sampling", attempt.unusable)

    def max_tokens(self, ex: Exchange) -> int:
        """The reply cap: room for the card's longest reply here (as Chinese, the costliest), within the configured cap."""
        most = ex.persona.length(not ex.incoming.is_direct).max
        return max(16, min(self.reply_cap(), int(self.model.profile.count("字" * most) * 1.2) + 8))

    def _scan(self, ex: Exchange, speakers: list[str]) -> DefectScan:
        persona = ex.persona
        said = [t.text for t in ex.history[-6:] if t.role == "user"]
        language = conversation_language(ex.text, said, bool(ex.incoming.unprompted), persona.card.language)
        known = known_words([ex.text, *said, *speakers, persona.name, *persona.card.nickname, *persona.card.aliases])
        return DefectScan(language, persona.length(not ex.incoming.is_direct, language).max, known)

    async def _attempt(self, ex: Exchange, model: ChatModel, steady: bool = False, after: Defect | None = None) -> Attempt:
        """One request; `after`: the defect of the try before (a reply in the wrong language is held to the script)."""
        speakers = [ex.incoming.display_name, ex.persona.card.user_alias, "用户", "User", "user"]
        speakers += [t.name for t in ex.history if t.role == "user"]
        speakers += [t.name for r in ex.recalled for t in (r.before, r.turn, r.after) if t and t.role == "user"]
        scan = self._scan(ex, speakers)
        # an English reply of a Chinese card, or one that slipped into Chinese, keeps to Latin script
        script = "en" if scan.language == "en" and (not ex.persona.card.language.startswith("en")
                                                     or (after is not None and after.kind == "language")) else ""
        check = ReplyCheck(ex.persona, self.hidden(ex.persona), ex.text, speakers, scan)
        attempt = Attempt()
        arrived = ex.arrived or self.clock()
        sent_at: float | None = None
        got_first = False

        def sent() -> None:
            """The request has its slot: from now on the server is timed; the message waits no more."""
            nonlocal sent_at
            if self.clock() < self._down_until:
                raise _BreakerOpen
            sent_at = self.clock()
            metrics.queued(sent_at - arrived)
            limit.reschedule(_loop_time(sent_at + self.cfg.first_token_timeout, self.clock))
            if ex.on_sent is not None:
                ex.on_sent()

        stream = model.stream(
            ex.prompt, max_tokens=self.max_tokens(ex), queue=ex.incoming.conversation.key, on_sent=sent, steady=steady,
            script=script,
        )
        try:
            async with asyncio.timeout(None) as limit:
                limit.reschedule(_loop_time(arrived + self.max_queue_seconds, self.clock))
                async for delta in stream:
                    if sent_at is None:  # a model that never said when it sent: it has, by now
                        sent()
                    assert sent_at is not None
                    if not got_first:
                        got_first = True
                        metrics.first_token(self.clock() - arrived)
                    stall_by = min(sent_at + self.cfg.deadline, self.clock() + self.cfg.request_timeout)
                    if stall_by <= self.clock():  # past the deadline (a stream read from its buffer need not pause)
                        raise TimeoutError
                    limit.reschedule(_loop_time(stall_by, self.clock))
                    shown = check.feed(delta)
                    if shown and ex.sink:
                        attempt.shown = True
                        await ex.sink(shown)
                    if check.stopped:
                        break
        except TimeoutError:
            if sent_at is None:
                attempt.shed = True
            else:
                attempt.timed_out = "stall or deadline" if got_first else "no first token in time"
        except _BreakerOpen:
            attempt.skipped = True
        except LLMError as exc:
            attempt.error = exc
        finally:
            await stream.aclose()  # closes the HTTP request, so the server stops generating
        if attempt.shed or attempt.skipped:
            return attempt
        if attempt.error is None and not attempt.timed_out:
            rest = check.finish()
            if rest and ex.sink:
                attempt.shown = True
                await ex.sink(rest)
            attempt.text, attempt.defect = check.result(), check.defect
            if attempt.defect is not None and not whole_sentences(attempt.text):
                attempt.text = ""  # no clean whole sentence before the defect (a shown fragment stays shown)
            attempt.unusable = "" if attempt.text else check.why()
            metrics.check_cost(check.cost)
            return attempt
        kept = whole_sentences(check.result()) if not check.leaked else ""
        if kept:
            attempt.text, attempt.partial = kept, True
            if ex.sink and len(kept) > check.released:
                attempt.shown = True
                await ex.sink(kept[check.released :])
        return attempt

    def _learn_overflow(self, err: ContextOverflow, ex: Exchange) -> None:
        profile = self.model.profile
        sent = sum(profile.count_message(m.content, len(m.images)) for m in ex.prompt)
        if err.limit:
            profile.learn_context(err.limit)
        if err.requested:
            profile.learn_ratio(sent, err.requested)
        if not (err.limit or err.requested):
            profile.margin *= 1.25  # the server gave no numbers: shrink by a quarter
        log.warning(
            "prompt too long for the server (%s > %d tokens); shrinking it and retrying once",
            err.requested or f"about {sent}", profile.context,
        )

    @property
    def breaker_open(self) -> bool:
        """The model is skipped after a failure, until `retry_after` has passed."""
        return self.clock() < self._down_until

    def _open_breaker(self, attempt: Attempt) -> None:
        """Skip the model for `retry_after`; a failure while it is open already only extends it."""
        was_open = self.clock() < self._down_until
        self._down_until = self.clock() + self.cfg.retry_after
        metrics.breaker_opened(self.cfg.retry_after, counted=not was_open)
        if was_open:
            log.info("model failed (%s) while answering offline", _reason(attempt))
        else:
            log.warning("model failed (%s); answering offline for %.0fs", _reason(attempt), self.cfg.retry_after)

    async def _shed(self, ex: Exchange) -> Exchange:
        """The message waited `max_queue_seconds` without getting to the model: an example line answers."""
        waited = self.clock() - (ex.arrived or self.clock())
        metrics.shed()
        log.warning("%s: message %s waited %.1f s for the model (max_queue_seconds %g); answered with an example line",
                    ex.incoming.conversation.key, ex.incoming.message_id or "-", waited, self.max_queue_seconds)
        return await self._offline(ex, "fallback")

    async def _offline(self, ex: Exchange, mode: str, shown: bool = False) -> Exchange:
        return await self.offline.answer(ex, "fallback", shown)


def _repaired(key: str, defect: Defect, outcome: str) -> None:
    """Count and log what was done with a broken reply (never its text)."""
    metrics.reply_defect(defect.kind, outcome)
    log.info("%s: model reply had a %s defect; %s", key, defect.kind,
             {"cut": "kept its clean sentences", "retried": "asking once more with steadier sampling",
              "offline": "answering with an in-character line"}[outcome])


def _reason(attempt: Attempt) -> str:
    return attempt.timed_out or str(attempt.error)


def _loop_time(when: float, clock: Callable[[], float]) -> float:
    """A time on `clock` as a time on the event loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + max(0.0, when - clock())
