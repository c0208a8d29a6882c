"""The shutdown-log filters (shutdown_log.py) through vLLM's own loggers, no engine: the
output handler's EngineDeadError is demoted only after the API server was asked to stop,
and every other error stays an ERROR with its traceback."""

import logging

import pytest
from vllm.v1.engine.exceptions import EngineDeadError

from vllm_npu_graph import shutdown_log


class Collect(logging.Handler):
    """An INFO handler like vLLM's: what a user would see at the default log level."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def seen():
    launcher = logging.getLogger(shutdown_log.LAUNCHER_LOGGER)
    handler_logger = logging.getLogger(shutdown_log.ASYNC_LLM_LOGGER)
    saved = {lg: lg.filters[:] for lg in (launcher, handler_logger)}
    for lg in saved:
        lg.filters.clear()
    collect = Collect()
    for lg in saved:
        lg.addHandler(collect)
    shutdown_log.install()
    yield collect
    for lg, filters in saved.items():
        lg.removeHandler(collect)
        lg.filters[:] = filters


def handler_fails(exc: Exception) -> None:
    try:
        raise exc
    except Exception:
        logging.getLogger(shutdown_log.ASYNC_LLM_LOGGER).exception(shutdown_log.HANDLER_FAILED)


def errors(collect: Collect) -> list[logging.LogRecord]:
    return [r for r in collect.records if r.levelno >= logging.ERROR]


def test_engine_dead_without_a_stop_stays_an_error(seen):
    handler_fails(EngineDeadError())
    assert len(errors(seen)) == 1 and errors(seen)[0].exc_info is not None


def test_engine_dead_after_a_stop_is_not_shown_at_info(seen):
    logging.getLogger(shutdown_log.LAUNCHER_LOGGER).info(shutdown_log.STOP_ASKED)
    handler_fails(EngineDeadError())
    assert errors(seen) == []
    assert [r.getMessage() for r in seen.records] == [shutdown_log.STOP_ASKED]


def test_other_errors_after_a_stop_stay_errors(seen):
    logging.getLogger(shutdown_log.LAUNCHER_LOGGER).info(shutdown_log.STOP_ASKED)
    handler_fails(RuntimeError("a real bug in output processing"))
    logging.getLogger(shutdown_log.ASYNC_LLM_LOGGER).error("something else failed")
    assert len(errors(seen)) == 2


def test_install_is_idempotent(seen):
    shutdown_log.install()
    shutdown_log.install()
    handler_logger = logging.getLogger(shutdown_log.ASYNC_LLM_LOGGER)
    assert sum(isinstance(f, shutdown_log.DemoteDeadEngineOnStop) for f in handler_logger.filters) == 1


def test_the_platform_installs_it_in_the_api_server(seen):
    from vllm_npu_graph.platform import NPUGraphPlatform

    handler_logger = logging.getLogger(shutdown_log.ASYNC_LLM_LOGGER)
    handler_logger.filters.clear()
    NPUGraphPlatform.pre_register_and_update(None)
    assert any(isinstance(f, shutdown_log.DemoteDeadEngineOnStop) for f in handler_logger.filters)


def test_vllm_still_logs_the_lines_the_filters_key_on():
    """The filters match vLLM 0.32's exact strings; a vLLM upgrade that changes them
    must fail here rather than bring the traceback back silently."""
    import inspect

    from vllm.entrypoints.launchers import launcher
    from vllm.v1.engine import async_llm

    assert launcher.logger.name == shutdown_log.LAUNCHER_LOGGER
    assert async_llm.logger.name == shutdown_log.ASYNC_LLM_LOGGER
    assert f'"{shutdown_log.STOP_ASKED}"' in inspect.getsource(launcher)
    assert f'"{shutdown_log.HANDLER_FAILED}"' in inspect.getsource(async_llm)
