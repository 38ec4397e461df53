"""One way to build a console command over conf/: Hydra's main, one-line errors, meaningful exit
codes."""

import os
import sys
from collections.abc import Callable

import hydra

from pipeline import CONFIG_DIR, config
from pipeline.cli.help import help_text
from pipeline.core.errors import console_entry, hydra_task


def command(
    name: str,
    config_name: str,
    task: Callable,
    settings: list[str],
    examples: list[str],
    summary: str | None = None,
    presets: bool = True,
) -> Callable[[], None]:
    """The console script `name` running `task(cfg)` on conf/<config_name>.yaml plus the command
    line.

    `--help` is written from conf/ (`settings` and `examples` are the ones it shows first) and
    `--cfg` shows the config resolved. A command line that does not compose is one `error:` line
    and exit 2 (a value of the wrong type in the words of its rule); an InputError in the task is
    one line and exit 2; anything unexpected is a redacted traceback and exit 1."""
    main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    app = console_entry(main(hydra_task(task)), explain=config.explain)

    def entry() -> None:
        arguments = sys.argv[1:]
        if "--help" in arguments or "-h" in arguments:
            print_to_pipe(help_text(name, config_name, settings, examples, summary, presets))
            return
        if (
            any(a in ("--cfg", "-c") or a.startswith("--cfg=") for a in arguments)
            and "--resolve" not in arguments
        ):
            sys.argv.append("--resolve")  # ${seed} shown as its value, as the run will use it
        app()

    # what --help shows (tests check each is found)
    entry.config_name, entry.settings = config_name, settings
    return entry


def print_to_pipe(text: str) -> None:
    """Print, and end quietly when the reader stops early (`rnn-sweep --help | head`)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python's own advice: no error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
