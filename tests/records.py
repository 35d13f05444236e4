"""Log records of one of the relay's loggers, caught in-process whatever `core.logs.setup` did to propagation."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in self.records]


@contextmanager
def captured(name: str) -> Iterator[Records]:
    """Every record `name` (e.g. "relay.outbox") logs meanwhile, at any level."""
    logger, records = logging.getLogger(name), Records()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
