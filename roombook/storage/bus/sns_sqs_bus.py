"""EventBus on Amazon SNS + SQS (or anything that speaks their API, e.g. moto), via aiobotocore.

Topology (ensure_topology, idempotent): one SNS topic per event family, `<prefix>booking`,
`<prefix>availability`, `<prefix>room`; one SQS queue per consumer group, `<prefix><queue>`, each
subscribed to the topics of the types it wants with raw message delivery and a filter policy on
the `type` message attribute, and each with a dead-letter queue `<prefix><queue>-dlq` that SQS
moves a message to after `max_receives` receives (RedrivePolicy). The body is the event's JSON.

Consuming: long polling; a message is deleted once its handler returned. A handler that raises,
or a body that is not an event, leaves the message in the queue, visible again after
`retry_delay_s`, until SQS redrives it to the dead-letter queue; the consumer goes on with the
others. Credentials come from the usual AWS chain (environment, profile, instance role).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, Protocol

import msgspec
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from roombook.domain.errors import EventBusy
from roombook.domain.events import Event, decode_event, encode_event
from roombook.storage.bus.event_routing import FAMILIES, QUEUE_TYPES, check_queue, family_of
from roombook.storage.ports import EventHandler

log = logging.getLogger(__name__)

_MAX_BATCH_ENTRIES = 10  # SNS PublishBatch and SQS DeleteMessageBatch limits
_MAX_BATCH_BYTES = 200 * 1024  # under SNS's 256 KiB per batch, with room for attributes
_DLQ_RETENTION_S = 14 * 24 * 3600  # the most SQS keeps a message


class SnsSqsConfig(msgspec.Struct, frozen=True, kw_only=True):
    region: str = "us-east-1"
    endpoint_url: str | None = None  # None: AWS itself; e.g. http://127.0.0.1:5000 for moto
    prefix: str = "roombook-"  # of every topic and queue name, so deployments can share an account
    max_receives: int = 5  # receives before SQS moves a message to the dead-letter queue
    visibility_timeout_s: int = 30  # longer than any handler takes
    retry_delay_s: int = 5  # a failed message becomes visible again after this
    retention_s: int = 4 * 24 * 3600


class AwsClient(Protocol):
    """An aiobotocore client: every operation is a coroutine method that takes the API's parameters
    as keywords and answers the API's response document."""

    def __getattr__(self, operation: str) -> Callable[..., Awaitable[dict[str, Any]]]: ...


class SnsSqsEventBus:
    """EventBus on SNS topics fanned out to SQS queues; see the module docstring."""

    def __init__(self, config: SnsSqsConfig) -> None:
        self.config = config
        self._stack = contextlib.AsyncExitStack()
        self._sns: AwsClient  # both opened by __aenter__
        self._sqs: AwsClient
        self._topic_arns: dict[str, str] = {}
        self._queue_urls: dict[str, str] = {}

    async def __aenter__(self) -> SnsSqsEventBus:
        session = get_session()
        options = {"region_name": self.config.region, "endpoint_url": self.config.endpoint_url}
        self._sns = await self._stack.enter_async_context(session.create_client("sns", **options))
        self._sqs = await self._stack.enter_async_context(session.create_client("sqs", **options))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def sns(self) -> AwsClient:
        """The open SNS client (for operations: inspecting topics and subscriptions)."""
        return self._sns

    @property
    def sqs(self) -> AwsClient:
        """The open SQS client (for operations: reading a dead-letter queue, redriving it)."""
        return self._sqs

    def name(self, queue_or_family: str) -> str:
        return self.config.prefix + queue_or_family

    # -- topology ------------------------------------------------------------------------------

    async def ensure_topology(self, queues: Collection[str] = tuple(QUEUE_TYPES)) -> None:
        for family in FAMILIES:
            await self._topic_arn(family)
        for queue in queues:
            check_queue(queue)
            await self._ensure_queue(queue)

    async def _topic_arn(self, family: str) -> str:
        if family not in self._topic_arns:  # CreateTopic is idempotent and answers the ARN
            self._topic_arns[family] = (await self._sns.create_topic(Name=self.name(family)))["TopicArn"]
        return self._topic_arns[family]

    async def _ensure_queue(self, queue: str) -> None:
        sqs, config = self._sqs, self.config
        dlq_url = (await sqs.create_queue(QueueName=self.name(f"{queue}-dlq")))["QueueUrl"]
        await sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"MessageRetentionPeriod": str(_DLQ_RETENTION_S)})
        url = (await sqs.create_queue(QueueName=self.name(queue)))["QueueUrl"]
        arn = await self._queue_arn(url)
        families = sorted({family_of(t) for t in QUEUE_TYPES[queue]})
        topic_arns = [await self._topic_arn(family) for family in families]
        redrive = {"deadLetterTargetArn": await self._queue_arn(dlq_url), "maxReceiveCount": str(config.max_receives)}
        policy = {  # lets the topics (and only they) deliver to the queue
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arns}},
                }
            ],
        }
        await sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={
                "RedrivePolicy": json.dumps(redrive),
                "VisibilityTimeout": str(config.visibility_timeout_s),
                "MessageRetentionPeriod": str(config.retention_s),
                "Policy": json.dumps(policy),
            },
        )
        for family, topic_arn in zip(families, topic_arns, strict=True):
            wanted = sorted(t for t in QUEUE_TYPES[queue] if family_of(t) == family)
            await self._ensure_subscription(topic_arn, arn, json.dumps({"type": wanted}))
        self._queue_urls[queue] = url

    async def _ensure_subscription(self, topic_arn: str, queue_arn: str, filter_policy: str) -> None:
        existing = None
        token: dict[str, str] = {}
        while existing is None:
            page = await self._sns.list_subscriptions_by_topic(TopicArn=topic_arn, **token)
            existing = next(
                (s for s in page["Subscriptions"] if s["Protocol"] == "sqs" and s["Endpoint"] == queue_arn), None
            )
            if "NextToken" not in page:
                break
            token = {"NextToken": page["NextToken"]}
        if existing is None:
            await self._sns.subscribe(
                TopicArn=topic_arn,
                Protocol="sqs",
                Endpoint=queue_arn,
                Attributes={"RawMessageDelivery": "true", "FilterPolicy": filter_policy},
                ReturnSubscriptionArn=True,
            )
            return
        for name, value in (("RawMessageDelivery", "true"), ("FilterPolicy", filter_policy)):
            await self._sns.set_subscription_attributes(
                SubscriptionArn=existing["SubscriptionArn"], AttributeName=name, AttributeValue=value
            )

    async def _queue_arn(self, url: str) -> str:
        attributes = await self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    async def queue_url(self, queue: str, *, dead_letters: bool = False) -> str:
        """The URL of a queue (or of its dead-letter queue), which must exist."""
        check_queue(queue)
        name = f"{queue}-dlq" if dead_letters else queue
        if name not in self._queue_urls:
            self._queue_urls[name] = (await self._sqs.get_queue_url(QueueName=self.name(name)))["QueueUrl"]
        return self._queue_urls[name]

    # -- publishing ------------------------------------------------------------------------------

    async def publish(self, events: Sequence[Event]) -> None:
        by_family: dict[str, list[Event]] = {}
        for event in events:
            by_family.setdefault(event.family, []).append(event)
        for family, family_events in by_family.items():
            topic_arn = await self._topic_arn(family)
            for batch in _batches([(e, encode_event(e).decode()) for e in family_events]):
                entries = [
                    {
                        "Id": str(i),
                        "Message": body,
                        "MessageAttributes": {"type": {"DataType": "String", "StringValue": event.type}},
                    }
                    for i, (event, body) in enumerate(batch)
                ]
                answer = await self._sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=entries)
                if answer.get("Failed"):
                    raise RuntimeError(f"SNS refused {len(answer['Failed'])} events: {answer['Failed'][0]}")

    # -- consuming -------------------------------------------------------------------------------

    async def consume(self, queue: str, handler: EventHandler, *, max_messages: int = 10, wait_s: float = 1.0) -> None:
        url = await self.queue_url(queue)
        wait = max(0, min(20, round(wait_s)))  # SQS long polling takes whole seconds, at most 20
        failures = 0
        while True:
            try:
                answer = await self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=max(1, min(_MAX_BATCH_ENTRIES, max_messages)),
                    WaitTimeSeconds=wait,
                    MessageAttributeNames=["All"],
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            except (BotoCoreError, ClientError):
                failures += 1
                log.exception("%s: receiving failed; retrying", queue)
                await asyncio.sleep(min(0.5 * 2**failures, 30))
                continue
            failures = 0
            messages = answer.get("Messages", [])
            if not messages:
                continue
            handled = await asyncio.gather(*(self._handle(queue, url, m, handler) for m in messages))
            done = [m for m, ok in zip(messages, handled, strict=True) if ok]
            if done:
                await self._delete(queue, url, done)

    async def _handle(self, queue: str, url: str, message: dict, handler: EventHandler) -> bool:
        receives = message.get("Attributes", {}).get("ApproximateReceiveCount", "?")
        try:
            event = decode_event(message["Body"])
        except ValueError:
            log.warning(
                "%s: message %s is not an event (receive %s of %d before the dead-letter queue): %.200r",
                queue,
                message["MessageId"],
                receives,
                self.config.max_receives,
                message["Body"],
            )
            await self._retry_later(queue, url, message)
            return False
        try:
            await handler(event)
        except EventBusy as busy:  # counts as a receive all the same: SQS counts every one
            log.info("%s: %s; again in %.0f s", queue, busy, busy.retry_after_s)
            await self._retry_later(queue, url, message, delay_s=busy.retry_after_s)
            return False
        except Exception:
            log.exception("%s: handling %s %s failed (receive %s)", queue, event.type, event.id, receives)
            await self._retry_later(queue, url, message)
            return False
        return True

    async def _retry_later(self, queue: str, url: str, message: dict, *, delay_s: float | None = None) -> None:
        delay = self.config.retry_delay_s if delay_s is None else min(round(delay_s), 12 * 3600)  # SQS's maximum
        try:
            await self._sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=delay
            )
        except (BotoCoreError, ClientError):  # it comes back after the visibility timeout anyway
            log.warning("%s: could not shorten the visibility of %s", queue, message["MessageId"], exc_info=True)

    async def _delete(self, queue: str, url: str, messages: list[dict]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        try:
            answer = await self._sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        except (BotoCoreError, ClientError):  # redelivered later: consumers are idempotent
            log.warning("%s: deleting %d handled messages failed", queue, len(entries), exc_info=True)
            return
        for failed in answer.get("Failed", []):
            log.warning("%s: a handled message was not deleted: %s", queue, failed)


def _batches(items: list[tuple[Event, str]]) -> list[list[tuple[Event, str]]]:
    """Consecutive runs of at most 10 entries and _MAX_BATCH_BYTES of bodies."""
    batches: list[list[tuple[Event, str]]] = []
    size = 0
    for item in items:
        length = len(item[1].encode())
        if not batches or len(batches[-1]) == _MAX_BATCH_ENTRIES or size + length > _MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += length
    return batches
