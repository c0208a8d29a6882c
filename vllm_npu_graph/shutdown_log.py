"""A deliberate stop of `vllm serve` (SIGINT/SIGTERM) must not read as a crash.

vLLM 0.32's `AsyncLLM.shutdown()` closes the engine client's output task before it
cancels its own output handler. When the handler wins that race it logs
"AsyncLLM output_handler failed." at ERROR with an `EngineDeadError` traceback, though the
stop is going as planned (vllm-project/vllm#48745; a fix is proposed in #49000). It is a
race in vLLM, seen on vLLM's own CPU platform too (in 1 of 8 logged stops here; 4 of 16 with
this plugin).

Two logging filters on vLLM's loggers, no vLLM code replaced: one notes the API server's
"shutdown triggered" line, which vLLM logs only from its SIGINT/SIGTERM handler; the other
demotes that one record to DEBUG once such a stop was asked for. Every other error stays
as it is, and so does this one when no stop was asked for (an engine that really died).
Remove this module once vLLM ships the fix.
"""

import logging

LAUNCHER_LOGGER = "vllm.entrypoints.launchers.launcher"
ASYNC_LLM_LOGGER = "vllm.v1.engine.async_llm"
STOP_ASKED = "[shutdown] API server: shutdown triggered"
HANDLER_FAILED = "AsyncLLM output_handler failed."


class StopWatch(logging.Filter):
    """Passes every record; remembers whether the API server was asked to stop."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_asked = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == STOP_ASKED:
            self.stop_asked = True
        return True


class DemoteDeadEngineOnStop(logging.Filter):
    """Logs the output handler's EngineDeadError at DEBUG when a stop was asked for."""

    def __init__(self, watch: StopWatch) -> None:
        super().__init__()
        self.watch = watch

    def filter(self, record: logging.LogRecord) -> bool:
        if self.watch.stop_asked and record.msg == HANDLER_FAILED and _is_engine_dead(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _is_engine_dead(record: logging.LogRecord) -> bool:
    from vllm.v1.engine.exceptions import EngineDeadError

    return bool(record.exc_info) and isinstance(record.exc_info[1], EngineDeadError)


def install() -> None:
    """Idempotent: attaches the two filters once per process."""
    handler_logger = logging.getLogger(ASYNC_LLM_LOGGER)
    if any(isinstance(f, DemoteDeadEngineOnStop) for f in handler_logger.filters):
        return
    watch = StopWatch()
    logging.getLogger(LAUNCHER_LOGGER).addFilter(watch)
    handler_logger.addFilter(DemoteDeadEngineOnStop(watch))
