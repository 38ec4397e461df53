"""Each command's --help, written from conf/ itself: the command's own first comment line, the
groups its config composes (the options of each, with their first comment line) and the most used
settings with the comment they carry in conf/. Nothing heavy is imported: it answers at once."""

import re
import textwrap
from pathlib import Path

import yaml

from pipeline import CONFIG_DIR

SETTING = re.compile(r"^(?P<key>\w+):\s*(?P<value>[^#]*?)\s*#\s*(?P<doc>.*)$")
COLUMN = 100


def first_comment(path: Path) -> str:
    """A config file's first comment line, the `# @package` directive skipped."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
    return ""


def defaults_of(config_name: str) -> dict[str, str]:
    """The groups a root config composes and the option each uses by default, in order
    (a root config named in the defaults, e.g. sweep's `train`, contributes its own groups)."""
    groups: dict[str, str] = {}
    for entry in yaml.safe_load((Path(CONFIG_DIR) / f"{config_name}.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            groups.update({group: option for group, option in entry.items()})
        elif entry != "_self_":
            groups.update(defaults_of(entry))
    return groups


def setting_doc(key: str, groups: dict[str, str]) -> tuple[str, str] | None:
    """(default value, comment) of a dotted setting as conf/ declares it: conf/<root>.yaml's
    `predict:` block, the group's chosen option, or its base file."""
    group, _, name = key.partition(".")
    conf = Path(CONFIG_DIR)
    files = [conf / group / f"{groups[group]}.yaml"] if group in groups else []
    files += [
        conf / "base" / f"{group}.yaml",
        conf / f"{group}.yaml",
        *sorted((conf / group).glob("*.yaml")),
    ]
    for path in files:
        if path.is_file():
            for line in path.read_text().splitlines():
                match = SETTING.match(line.strip())
                if match and match["key"] == name:
                    return match["value"], match["doc"]
    return None


def wrapped(head: str, text: str) -> list[str]:
    """`head` then `text`, wrapped at COLUMN under the text's first word: nothing is cut off."""
    return textwrap.wrap(text, COLUMN, initial_indent=head, subsequent_indent=" " * len(head)) or [
        head
    ]


def group_lines(groups: dict[str, str]) -> list[str]:
    """Groups with a choice to make: each option and its first comment line."""
    lines = []
    for group, default in groups.items():
        options = sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
        if len(options) < 2:
            continue
        lines.append(f"  {group}=  (default: {default})")
        for option in options:
            lines += wrapped(
                f"    {option:<16} ", first_comment(Path(CONFIG_DIR) / group / f"{option}.yaml")
            )
    return lines


def setting_lines(keys: list[str], groups: dict[str, str]) -> list[str]:
    lines = []
    for key in keys:
        found = setting_doc(key, groups)
        if found:
            value, doc = found
            lines += wrapped(f"  {f'{key}={value}':<32} ", doc)
    return lines


def help_text(
    command: str,
    config_name: str,
    settings: list[str],
    examples: list[str],
    summary: str | None = None,
    presets: bool = True,
) -> str:
    """`summary`: what the command does, when conf/<config_name>.yaml's first line is another
    command's; `presets`: whether its group presets change what it does (not for the two UI
    servers, which run once: no multirun either)."""
    groups = defaults_of(config_name)
    what = summary or first_comment(Path(CONFIG_DIR) / f"{config_name}.yaml").split(": ", 1)[-1]
    presets = group_lines(groups) if presets else []
    usage = f"Usage: {command} {'[GROUP=OPTION ...] ' if presets else ''}[KEY=VALUE ...]"
    parts = [f"{command}: {what}", "", usage]
    if presets:
        parts += ["", "Choose a preset per group:", *presets]
    parts += [
        "",
        "Settings you will change most (default, then what it does):",
        *setting_lines(settings, groups),
    ]
    parts += ["", "Examples:", *(f"  {example}" for example in examples)]
    multirun = (
        [f"  {command} -m KEY=A,B       one run per value (Hydra multirun)"] if presets else []
    )
    parts += [
        "",
        "More:",
        f"  {command} --cfg job        the whole config this command line composes",
        *multirun,
        f"  {command} --hydra-help     Hydra's own flags",
        "  docs/ in the repository     every setting, metric and behaviour",
    ]
    return "\n".join(parts)
