"""Each command's --help, written from conf/ and the schemas: the command's own first comment line,
the groups its config composes (the options of each, with their first comment line) and the most
used settings with the doc their schema field declares (pipeline/config/schema.py). Nothing heavy
is imported: it answers at once."""

import textwrap
from pathlib import Path

import yaml

from omegaconf import MISSING

from pipeline import CONFIG_DIR
from pipeline.config import schema
from pipeline.config.rules import yaml_word

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
        elif entry != "_self_" and not entry.startswith("/"):  # "/schema/...": no group
            groups.update(defaults_of(entry))
    return groups


def setting_doc(key: str, groups: dict[str, str]) -> tuple[str, str] | None:
    """(default value, doc) of a dotted setting: the doc its schema field declares, the default as
    the group's chosen option states it, else as the schema declares it."""
    group, _, name = key.partition(".")
    option = groups.get(group)
    schemas = schema.prefixed_schemas()
    if group == "data" and option in schema.DATA_SCHEMAS:  # the chosen loader's doc first
        schemas = [("data.", schema.DATA_SCHEMAS[option]), *schemas]
    declared = (s for prefix, cls in schemas for s in schema.declared(cls, prefix) if s.key == key)
    setting = next(declared, None)
    if setting is None:
        return None
    stated = preset_values(Path(CONFIG_DIR) / group / f"{option}.yaml") if option else {}
    return shown(stated.get(name, setting.default)), setting.doc


def preset_values(path: Path) -> dict:
    """The settings a preset states, as dotted keys (its `defaults` list left out)."""
    if not path.is_file():
        return {}
    return dict(flat(yaml.safe_load(path.read_text()) or {}))


def flat(node: dict, prefix: str = ""):
    for key, value in node.items():
        if key == "defaults":
            continue
        yield f"{prefix}{key}", value
        if isinstance(value, dict):
            yield from flat(value, f"{prefix}{key}.")


def shown(value) -> str:
    """A default as conf/ and the command line write it: null, true, [a, b], ???."""
    if value is MISSING:
        return "???"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return yaml_word(value)


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
