"""One way to build a console command over conf/: Hydra's main, one-line errors, meaningful exit codes."""

from collections.abc import Callable

import hydra

from pipeline import CONFIG_DIR, config
from pipeline.core.errors import console_entry, hydra_task


def command(config_name: str, task: Callable) -> Callable[[], None]:
    """The console script running `task(cfg)` on conf/<config_name>.yaml plus the command line.

    A command line that does not compose is one `error:` line and exit 2 (a value of the wrong type in
    the words of its rule); an InputError in the task is one line and exit 2; anything unexpected is
    a redacted traceback and exit 1."""
    main = hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name=config_name)
    return console_entry(main(hydra_task(task)), explain=config.explain)
