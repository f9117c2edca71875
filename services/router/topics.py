"""`python -m services.router.topics`: create the hub's topics before anything produces.

The router creates missing topics itself (a broker that came back empty, BROKER.md), but on a
production cluster the topics should exist, with their replication factor, before the first
router starts: the deploy runs this as a job. Which topics are needed is decided here, once,
for the job and the reconciler alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy import select

from services.registry.reference.models import Jurisdiction, Platform
from services.router.settings import RouterSettings
from shared import logs
from shared.db import create_engine, create_sessionmaker, transaction
from shared.events import Topic, topic_name
from shared.kafka import TopicProvisioner

logger = logging.getLogger(__name__)
FAMILIES: tuple[Topic, ...] = ("cases", "responses", "deliveries", "dlq", "requests")


def required_topics(
    prefix: str, jurisdictions: Iterable[str], platforms: Iterable[str] = ()
) -> set[str]:
    """The fixed topics, one inbox per jurisdiction and one topic per platform."""
    fixed = {topic_name(prefix, f) for f in FAMILIES}
    inboxes = {topic_name(prefix, "inbox", code) for code in jurisdictions}
    return fixed | inboxes | {topic_name(prefix, "platform", platform=s) for s in platforms}


async def provision(settings: RouterSettings) -> set[str]:
    """Create every missing topic; returns the ones created."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            codes = (await session.scalars(select(Jurisdiction.code))).all()
            slugs = (await session.scalars(select(Platform.slug))).all()
    finally:
        await engine.dispose()
    provisioner = TopicProvisioner(
        settings,
        partitions=settings.partitions,
        replication_factor=settings.kafka_replication_factor,
    )
    await provisioner.start()
    try:
        return await provisioner.ensure(required_topics(settings.topic_prefix, codes, slugs))
    finally:
        await provisioner.close()


def main() -> None:
    settings = RouterSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="topics")
    created = asyncio.run(provision(settings))
    logger.info("topics provisioned", extra={"created": len(created)})


if __name__ == "__main__":
    main()
