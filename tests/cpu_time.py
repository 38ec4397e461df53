"""A pytest plugin: the processor seconds each test used, its own and its finished subprocesses'.

Wall seconds (--durations) depend on what else the machine runs; processor seconds much less. The
summary lists the tests that used the most, so CI shows where its minutes go however loaded it was.
"""

import json
import os
import resource

import pytest

SHOWN = 25


def processor_seconds() -> float:
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    started = processor_seconds()
    item.user_properties.append(("cpu_started", started))
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "teardown":
        started = dict(item.user_properties)["cpu_started"]
        report.user_properties.append(("cpu_seconds", processor_seconds() - started))


class Tally:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report):
        used = dict(report.user_properties).get("cpu_seconds")
        if report.when == "teardown" and used is not None:
            self.seconds[report.nodeid] = used

    def pytest_terminal_summary(self, terminalreporter):
        if not self.seconds:
            return
        total = sum(self.seconds.values())
        if os.environ.get("RNNSWEEP_CPU_TIMES"):  # every test's figure, for a closer look
            with open(os.environ["RNNSWEEP_CPU_TIMES"], "w") as out:
                json.dump(self.seconds, out, indent=0)
        terminalreporter.write_sep("=", f"processor seconds: {total:.0f} in all, the most used")
        for nodeid, used in sorted(self.seconds.items(), key=lambda kv: -kv[1])[:SHOWN]:
            terminalreporter.write_line(f"{used:8.1f} s  {nodeid}")


def pytest_configure(config):
    config.pluginmanager.register(Tally(), "cpu-time-tally")
