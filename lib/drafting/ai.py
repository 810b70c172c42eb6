"""The language-model drafter: first drafts from OpenAI or any OpenAI-compatible
server (a local model server, say), chosen by base URL.

Why it is built this way:

- The official ``openai`` client speaks the wire format; its own retries are off
  (``max_retries=0``) so Steward decides: 429, 5xx and timeouts are retried with
  backoff that honours ``retry-after`` (bounded, with an injectable sleep), while a
  429 ``insufficient_quota`` is a billing problem and is never retried.
- A finite timeout is always in force (case C14): the client gets the config's
  timeout, which is never empty, null or infinite.
- Requests run on a thread pool (``concurrency``, default 8); one donor's failure
  is reported on its row and the rest go on. Errors that would hit every donor the
  same way (bad key, no quota, unknown model) stop the remaining calls at once.
- Structured output first (``json_schema``); a server without it gets JSON mode,
  then a plain request whose reply is parsed tolerantly.
- Every answer is cached (:mod:`lib.drafting.cache`): drafting an unchanged row
  again makes no model call.

Settings come from :mod:`lib.drafting.model_settings` (secrets, or else the Connect
page).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import openai
from sqlalchemy import Engine

from lib.drafting.base import CampaignBrief, DraftResult, ProgressCallback
from lib.drafting.cache import cache_key, cached_drafts, remember_drafts
from lib.drafting.model_settings import ModelConfig, model_config
from lib.drafting.prompt import RESPONSE_SCHEMA, build_messages, parse_reply
from lib.errors import DraftError
from lib.models import Donor

log = logging.getLogger(__name__)

# Backoff without retry-after: the SDK's own range (limits.md: 0.5 s to 8 s).
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 8.0
# Limit: longer waits asked by retry-after are not sat out inside a drafting run;
# the row fails with "draft again later".
MAX_RETRY_AFTER_S = 60.0

TIMED_OUT = "draft timed out – retry"  # case C14, shown on the donor's row
QUOTA_MESSAGE = (
    "The model account has no credit left (429 insufficient_quota): this is a "
    "billing problem, not a rate limit. Add credit or change the key on the "
    "Connect page, then draft again."
)

_FORMATS = ("json_schema", "json_object", "prompt")


@dataclass
class ModelUsage:
    """What a drafter has used so far: requests sent (retries included), drafts
    answered from the cache, and tokens as the server counted them."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ModelDrafter:
    """Writes first drafts with a chat-completions model; never sends anything."""

    def __init__(
        self,
        config: ModelConfig,
        engine: Engine | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.name = f"model:{config.model}"[:60]
        self._engine = engine
        self._sleep = sleep
        self._client = openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )
        self._lock = threading.Lock()
        self.usage = ModelUsage()
        self._format = _FORMATS[0]
        self._stopped: str | None = None

    # -- the Drafter interface -------------------------------------------------------

    def draft_many(
        self,
        donors: Sequence[Donor],
        brief: CampaignBrief,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[DraftResult]:
        """One result per donor in input order: unchanged donors from the cache
        (one query, no model call), the others drafted ``concurrency`` at a time.
        After a cancel, the donors already drafted are returned."""
        self._stopped = None
        is_cancelled = cancelled or (lambda: False)
        total, failed = len(donors), 0
        keys = [self._cache_key(donor, brief) for donor in donors]
        results = self._from_cache(donors, keys)
        if progress is not None and results:
            progress(len(results), failed, total)
        todo = [index for index in range(total) if index not in results]

        def work(index: int) -> tuple[int, DraftResult | None]:
            if is_cancelled():
                return index, None
            return index, self._draft(donors[index], brief)

        workers = max(1, min(self.config.concurrency, len(todo)))
        # Replies are cached here, a few per transaction, so no worker waits on a
        # database write.
        to_cache: list[tuple[str, DraftResult]] = []
        with ThreadPoolExecutor(workers, thread_name_prefix="model-draft") as pool:
            futures = [pool.submit(work, index) for index in todo]
            try:
                for future in as_completed(futures):
                    if future.cancelled():
                        continue
                    index, result = future.result()
                    if result is None:
                        continue
                    results[index] = result
                    failed += bool(result.error)
                    to_cache.append((keys[index], result))
                    if len(to_cache) >= workers:
                        self._remember(to_cache)
                    if progress is not None:
                        progress(len(results), failed, total)
                    if is_cancelled():
                        for pending in futures:
                            pending.cancel()
            finally:
                self._remember(to_cache)
        return [results[i] for i in sorted(results)]

    def _remember(self, entries: list[tuple[str, DraftResult]]) -> None:
        if self._engine is not None and entries:
            remember_drafts(self._engine, entries, self.config.model)
        entries.clear()

    def _cache_key(self, donor: Donor, brief: CampaignBrief) -> str:
        if self._engine is None:
            return ""
        settings = {"temperature": self.config.temperature}
        return cache_key(donor, brief, self.config.model, settings)

    def _from_cache(
        self, donors: Sequence[Donor], keys: list[str]
    ) -> dict[int, DraftResult]:
        if self._engine is None:
            return {}
        found = cached_drafts(self._engine, keys)
        hits = {
            index: DraftResult(
                donor_id=int(donors[index].id or 0),
                subject=found[key][0],
                body=found[key][1],
                facts=found[key][2],
                cached=True,
            )
            for index, key in enumerate(keys)
            if key in found
        }
        with self._lock:
            self.usage.cached += len(hits)
        return hits

    def _draft(self, donor: Donor, brief: CampaignBrief) -> DraftResult:
        donor_id = int(donor.id or 0)
        try:
            if self._stopped:
                raise DraftError(self._stopped)
            completion = self._complete(build_messages(donor, brief))
            subject, body, facts = _read_completion(completion)
        except DraftError as exc:
            return DraftResult(donor_id=donor_id, error=exc.message)
        usage = completion.usage
        result = DraftResult(
            donor_id=donor_id,
            subject=subject,
            body=body,
            facts=facts,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )
        with self._lock:
            self.usage.prompt_tokens += result.prompt_tokens
            self.usage.completion_tokens += result.completion_tokens
        return result

    def test_connection(self) -> str:
        """Ask the model for a one-word answer; say who answered and how fast.

        Raises DraftError with what failed and what to do.
        """
        started = time.monotonic()
        messages = [{"role": "user", "content": "Reply with the single word OK."}]
        try:
            completion = self._call(messages, "prompt")
        except openai.OpenAIError as exc:
            raise DraftError(_explain(exc, self.config)[0]) from exc
        elapsed = (time.monotonic() - started) * 1000
        return (
            f"{completion.model or self.config.model} at {self.config.server} "
            f"answered in {elapsed:.0f} ms."
        )

    # -- one request, with retries ---------------------------------------------------

    def _complete(self, messages: list[dict[str, str]]) -> Any:
        attempt = 0
        while True:
            mode = self._format
            try:
                return self._call(messages, mode)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if mode != _FORMATS[-1] and _about_response_format(exc):
                    self._next_format(mode)
                    continue
                raise DraftError(_explain(exc, self.config)[0]) from exc
            except openai.OpenAIError as exc:
                message, retry, stop_all, wait = _explain(exc, self.config)
                if stop_all:
                    with self._lock:
                        self._stopped = message
                if not retry or attempt >= self.config.max_retries:
                    raise DraftError(message) from exc
            attempt += 1
            if wait is None:
                wait = min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** (attempt - 1))
                wait *= random.uniform(0.5, 1.0)  # spread the workers' retries
            elif wait > MAX_RETRY_AFTER_S:
                raise DraftError(
                    f"The model server asks to wait {wait:.0f} s before the next "
                    "request; draft these donors again later."
                )
            self._sleep(max(0.0, wait))

    def _next_format(self, failed: str) -> None:
        with self._lock:
            if self._format == failed:
                self._format = _FORMATS[_FORMATS.index(failed) + 1]
                log.info(
                    "model server refused %s output; using %s", failed, self._format
                )

    def _call(self, messages: list[dict[str, str]], mode: str) -> Any:
        extra: dict[str, Any] = {}
        if mode == "json_schema":
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "donor_email_draft",
                    "schema": RESPONSE_SCHEMA,
                    "strict": True,
                },
            }
        elif mode == "json_object":
            extra["response_format"] = {"type": "json_object"}
        with self._lock:
            self.usage.calls += 1
        started = time.monotonic()
        status = "error"
        try:
            completion = self._client.chat.completions.create(
                model=self.config.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.config.temperature,
                **extra,
            )
            status = "200"
            return completion
        except openai.APIStatusError as exc:
            status = str(exc.status_code)
            raise
        except openai.APITimeoutError:
            status = "timeout"
            raise
        finally:
            log.info(
                "model %s chat.completions %s %s %.0f ms",
                self.config.server,
                mode,
                status,
                (time.monotonic() - started) * 1000,
            )


def _read_completion(completion: Any) -> tuple[str, str, list[str]]:
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice is not None else None
    if message is not None and getattr(message, "refusal", None):
        raise DraftError(f"The model declined to write this draft: {message.refusal}")
    try:
        return parse_reply(message.content if message is not None else None)
    except ValueError as exc:
        if choice is not None and choice.finish_reason == "length":
            raise DraftError(
                "The model's reply was cut off before the draft was complete; "
                "draft this donor again."
            ) from exc
        raise DraftError(
            f"The model's reply was not valid JSON with a subject and body ({exc}); "
            "draft this donor again, or choose a model that can answer in JSON."
        ) from exc


def _about_response_format(exc: openai.APIStatusError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return any(word in text for word in ("response_format", "json_schema", "json"))


def _retry_after(exc: openai.APIStatusError) -> float | None:
    headers = exc.response.headers
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def _explain(
    exc: openai.OpenAIError, config: ModelConfig
) -> tuple[str, bool, bool, float | None]:
    """(message for the row, retry?, stop every other row?, wait from retry-after)."""
    where = config.server
    if isinstance(exc, openai.APITimeoutError):
        return TIMED_OUT, True, False, None
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"Could not reach the model server at {where}; check the base URL on "
            "the Connect page and that the server is running.",
            True,
            False,
            None,
        )
    if isinstance(exc, openai.RateLimitError):
        if "insufficient_quota" in (str(exc.code), str(exc.type)):
            return QUOTA_MESSAGE, False, True, None
        return (
            f"The model server at {where} is rate limiting requests (429); "
            "draft the remaining donors again in a minute.",
            True,
            False,
            _retry_after(exc),
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return (
            f"The model server at {where} refused the API key "
            f"({exc.status_code}); enter a valid key on the Connect page.",
            False,
            True,
            None,
        )
    if isinstance(exc, openai.NotFoundError):
        return (
            f"The model {config.model!r} was not found at {where} (404); check the "
            "model name and base URL on the Connect page.",
            False,
            True,
            None,
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry = status >= 500 or status in (408, 409)
        return (
            f"The model server at {where} answered {status}: {str(exc.message)[:200]}",
            retry,
            False,
            _retry_after(exc) if retry else None,
        )
    return f"The model request failed: {exc}", False, False, None


def open_model_drafter(services: Any) -> ModelDrafter | None:
    """The model drafter when a model is configured (secrets or Connect page), else
    None so the template drafter is used. Raises ConfigError when the stored key
    cannot be decrypted."""
    config = model_config(services)
    if config is None:
        return None
    return ModelDrafter(config, services.engine)
