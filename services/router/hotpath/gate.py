"""What a read request must pass before admission: not a crash repeat, an allowed reply topic, limits."""

from __future__ import annotations

from services.router.domain.admission import reply_topic_refusal
from services.router.domain.registry import Registry
from services.router.domain.repeats import Repeats
from services.router.domain.requests import Pending
from services.router.settings import RouterSettings
from shared.events import ALL_TOPICS, INFERENCE_RESULTS

# Results may never be written to the platform's own topics, except the shared results topic.
RESERVED_TOPICS = {t.name for t in ALL_TOPICS} - {INFERENCE_RESULTS.name}


class Gate:
    """The router's entry checks, from its settings; `repeats` holds what a crashed owner answered."""

    def __init__(self, settings: RouterSettings) -> None:
        self.settings = settings
        self.reserved = RESERVED_TOPICS | {settings.requests_topic}
        self.repeats = Repeats()

    def reply_refusal(self, topic: str | None) -> str | None:
        """Why results may not go to the request's reply topic (None: they may, or it has none)."""
        if topic is None:
            return None
        s = self.settings
        return reply_topic_refusal(topic, s.reply_topic_prefixes, set(s.reply_topics), self.reserved)

    def is_result_topic(self, topic: str) -> bool:
        """True for a topic results may be written to (the shared one, or an allowed reply topic)."""
        return topic == INFERENCE_RESULTS.name or self.reply_refusal(topic) is None

    def size_refusal(self, request: Pending) -> str | None:
        """Why the prompt is too large (None: it is not)."""
        size = len(request.prompt.encode())
        limit = self.settings.max_prompt_bytes
        return f"prompt of {size} bytes exceeds the limit of {limit}" if size > limit else None

    def repeated(self, partition: tuple[str, int], offset: int, request_id: str | None) -> bool:
        """True when a crashed owner already answered this request (found when reading results back)."""
        return (
            bool(self.repeats.check_until)
            and request_id is not None
            and self.repeats.seen(partition, offset, request_id)
        )


def max_tokens(limits_by_name: dict[str, int], registry: Registry, model_id: str) -> int | None:
    """The strictest max_tokens limit among the Triton models serving `model_id` (None: unknown)."""
    names = {registry.triton_name(s, model_id) for s in registry.by_model.get(model_id, ())} | {model_id}
    return min((limits_by_name[n] for n in names if n in limits_by_name), default=None)
