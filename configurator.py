"""
The command line of every entry point, one convention: flags are spelled with underscores, as
settings are, `--key=value` (the scripts built on argparse take `--key value` too).

    python train.py config/shakespeare_char.py --batch_size=32 --compile=False
    python train.py --help

train.py, sample.py, export.py, evaluate.py and bench.py take settings: config files are plain
Python, run in a fresh namespace, and every name they define (and every --key=value) must be one
of the script's settings. A script's settings are described by a dataclass (fitgpt/settings.py)
whose fields give each one's type, one-line help and, where it has them, its allowed values and
bounds; the defaults are the plain globals at the top of train.py, sample.py, export.py and
evaluate.py, read here without running them (defaults_from). Values of the wrong type, outside
their bounds or not among the choices are refused with one line naming the key (and a
did-you-mean). plan.py, plot.py, sweep.py and data/*/prepare.py take flags through
ArgumentParser: argparse whose errors are one line as well.
"""

import argparse
import ast
import dataclasses
import difflib
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable

from fitgpt.errors import ConfigError

ROOT = os.path.dirname(os.path.abspath(__file__))
PLAIN = (str, int, float, bool, type(None))  # what a default may be: immutable, and a literal


def setting(
    help: str,
    *,
    default: object = dataclasses.MISSING,
    choices: tuple = (),
    accept: Callable[[object], bool] | None = None,
    accept_doc: str = "",
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    required: bool = False,
) -> dataclasses.Field:
    """A settings-dataclass field: one-line help, its default (unless defaults_from gives it),
    optional allowed values (choices, plus any value accept(value) approves, described by
    accept_doc) and bounds (min <= v <= max, v > above); required: an empty string is refused."""
    meta = dict(
        help=help,
        choices=choices,
        accept=accept,
        accept_doc=accept_doc,
        min=min,
        max=max,
        above=above,
        required=required,
    )
    return dataclasses.field(default=default, metadata=meta)


def allowed_types(hint: object) -> tuple[type, ...]:
    """The types a value of this annotation may have (NoneType where None is allowed)."""
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)


def field_types(schema: type) -> dict[str, tuple[type, ...]]:
    """{name: the types a value may have} of a settings dataclass."""
    hints = typing.get_type_hints(schema)
    return {f.name: allowed_types(hints[f.name]) for f in dataclasses.fields(schema)}


def type_name(allowed: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in allowed)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """'; did you mean x?' for a misspelt name or flag: its underscore spelling where that is
    known (--vram-gb: --vram_gb), else the close matches; '' when there is none."""
    known = list(known)
    dashes = name[: len(name) - len(name.lstrip("-"))]
    underscored = dashes + name[len(dashes) :].replace("-", "_")
    close = [underscored] if underscored != name and underscored in known else []
    close = close or difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def parse_value(raw: str, allowed: tuple[type, ...]) -> object:
    """Turn the text after '=' into a value for a setting that takes the types in allowed."""
    if raw == "None" and type(None) in allowed:
        return None
    if bool in allowed and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if str in allowed:
        return raw  # --out_dir=2024 means the folder '2024', --init_from=resume the word
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw  # refused by check_value, which names the expected type


def unknown_setting(key: str, schema: type, source: str) -> ConfigError:
    names = [f.name for f in dataclasses.fields(schema)]
    return ConfigError(f"{source}: unknown setting '{key}'{did_you_mean(key, names)}")


def check_value(key: str, value: object, schema: type, source: str) -> object:
    """value coerced to the setting's type and checked against its choices and bounds, or a
    ConfigError naming the key (and close matches of a misspelt key or choice)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if key not in fields:
        raise unknown_setting(key, schema, source)
    return checked(key, value, field_types(schema)[key], fields[key], source)


def checked(key: str, value: object, allowed: tuple[type, ...], field: dataclasses.Field, source: str) -> object:
    """check_value for one field (also before its dataclass exists: defaults_from)."""
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{source}: '{key}' expects {type_name(allowed)}, got None")
    if float in allowed and type(value) is int:
        value = float(value)
    if type(value) not in allowed:
        raise ConfigError(f"{source}: '{key}' expects {type_name(allowed)}, got {type(value).__name__} ({value!r})")
    meta = field.metadata
    if meta.get("required") and isinstance(value, str) and not value.strip():
        default = f" (its default is {field.default!r})" if isinstance(field.default, str) else ""
        raise ConfigError(f"{source}: '{key}' is empty; give it a value{default}")
    choices, accept = meta.get("choices", ()), meta.get("accept")
    if choices and value not in choices and not (accept and accept(value)):
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        options = ", ".join(map(str, choices)) + (f" {meta['accept_doc']}" if meta.get("accept_doc") else "")
        raise ConfigError(f"{source}: '{key}' must be one of {options}; got {value!r}{hint}")
    for bound, fails, text in (("min", lambda v, b: v < b, ">="), ("max", lambda v, b: v > b, "<=")):
        if meta.get(bound) is not None and fails(value, meta[bound]):
            raise ConfigError(f"{source}: '{key}' must be {text} {meta[bound]}, got {value!r}")
    if meta.get("above") is not None and not value > meta["above"]:
        raise ConfigError(f"{source}: '{key}' must be > {meta['above']}, got {value!r}")
    return value


def check_fields(settings: object) -> None:
    """Check every field of a settings dataclass instance (its __post_init__ calls this), and
    refuse to make one at all while its script's globals are broken (defaults_from)."""
    if getattr(settings, "defaults_problem", None):
        raise ConfigError(settings.defaults_problem)
    for f in dataclasses.fields(settings):
        setattr(settings, f.name, check_value(f.name, getattr(settings, f.name), type(settings), "setting"))


def script_settings(path: str) -> tuple[dict[str, object], list[str]]:
    """(name: value, problems) of the plain `name = value` lines at the top of a script, before its
    first import: read with ast, never run (reading an entry point is not importing it)."""
    script = os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError) as e:
        return {}, [f"{script}: cannot read its settings ({e})"]
    values, problems = {}, []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        named = isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        try:
            value = ast.literal_eval(node.value) if named else None
        except (ValueError, TypeError, SyntaxError, RecursionError):
            named = False
        if not named or not isinstance(value, PLAIN):
            problems.append(
                f"{script} line {node.lineno}: the settings at its top are plain `name = value` lines, each value "
                f"a string, a number, True, False or None"
            )
            continue
        values[node.targets[0].id] = value
    return values, problems


def defaults_from(script: str) -> Callable[[type], type]:
    """Class decorator, applied under @dataclass: each field's default is the value the root script
    assigns to that name at its top, so a default is written once, where the script's readers see
    it (nanoGPT's globals). A global that is missing, unknown, not plain or not a valid value
    does not fail the import: every instance is refused instead, in one line naming it."""

    def apply(cls: type) -> type:
        values, problems = script_settings(os.path.join(ROOT, script))
        names = list(cls.__annotations__)
        hints = typing.get_type_hints(cls)
        problems += [
            f"{script}: '{name}' at its top is not a setting of fitgpt/settings.py{did_you_mean(name, names)}"
            for name in values
            if name not in names
        ]
        missing = [name for name in names if name not in values]
        if missing:
            problems.append(f"{script} defines no global for the settings {', '.join(missing)}; add them at its top")
        for name in names:
            field, value = cls.__dict__[name], values.get(name)
            if name in values:
                try:
                    value = checked(name, value, allowed_types(hints[name]), field, script)
                except ConfigError as e:
                    problems.append(str(e))
            field.default = value
        cls.defaults_problem = problems[0] if problems else None
        return cls

    return apply


def read_config_file(path: str, schema: type) -> dict:
    """The settings a config file assigns, checked against the schema."""
    if os.path.isdir(path):
        raise ConfigError(f"config file {path} is a directory, not a file; name a config file, e.g. config/<name>.py")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    namespace = {}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as e:  # whatever a user's Python raises becomes one line naming the file
        raise ConfigError(f"{path}: error while running the config file: {type(e).__name__}: {e}") from None
    settings = {}
    for key, value in namespace.items():
        if key.startswith("_") or isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue  # imports, helpers and dunders are not settings
        settings[key] = check_value(key, value, schema, path)
    return settings


def parse_args(argv: list[str], schema: type) -> dict:
    """Settings from config files and --key=value arguments, applied in order."""
    settings = {}
    types_of = field_types(schema)
    for arg in argv:
        if not arg.startswith("--"):
            settings.update(read_config_file(arg, schema))
            continue
        key, equals, raw = arg[2:].partition("=")
        if key not in types_of:
            raise unknown_setting(key, schema, f"argument '{arg}'")
        if not equals:
            if types_of[key] != (bool,):
                raise ConfigError(f"argument '{arg}' must look like --key=value (or --help)")
            raw = "True"  # a bare --flag turns a bool setting on
        settings[key] = check_value(key, parse_value(raw, types_of[key]), schema, f"argument '{arg}'")
    return settings


def help_text(schema: type, defaults: dict, usage: str, names: tuple[str, ...] = ()) -> str:
    """--help: every setting (or those named) with its default and one-line help, from the schema."""
    lines = [usage, "", "settings (a config file, then --key=value, override the defaults shown):"]
    types_of = field_types(schema)
    for f in dataclasses.fields(schema):
        if names and f.name not in names:
            continue
        meta = f.metadata
        extra = (
            f" [{', '.join(map(str, meta['choices']))}{' ' + meta['accept_doc'] if meta['accept_doc'] else ''}]"
            if meta.get("choices")
            else ""
        )
        lines.append(
            f"  --{f.name}={defaults[f.name]!r}  ({type_name(types_of[f.name])}) {meta.get('help', '')}{extra}"
        )
    return "\n".join(lines)


def parse(argv: list[str], schema: type, usage: str = "") -> tuple[object, dict]:
    """(an instance of schema, the settings argv gave): the defaults, then config files and
    --key=value in order. --help prints the settings and exits."""
    defaults = schema()  # first: broken defaults (a script's globals) are refused before anything else
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(schema, dataclasses.asdict(defaults), usage))
        sys.exit(0)
    given = parse_args(argv, schema)
    return dataclasses.replace(defaults, **given), given


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the scripts whose flags are not settings (plan.py, plot.py, sweep.py,
    data/*/prepare.py): flags spelled with underscores, never abbreviated, and bad input one line
    (a ConfigError: exit 2 through exit_on_error) instead of argparse's usage text."""

    CONVENTION = "Flags are spelled with underscores, as settings are: --key=value or --key value."

    def __init__(self, description: str | None = None, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        usage = "\n\n".join(text.strip() for text in (description or "", self.CONVENTION) if text)
        super().__init__(description=usage, allow_abbrev=False, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for arg in extras:  # an own flag spelled with hyphens is refused even where unknown flags pass on (plan.py)
            flag = arg.split("=", 1)[0]
            spelled = "--" + flag[2:].replace("-", "_")
            if flag.startswith("--") and spelled != flag and spelled in self._option_string_actions:
                self.error(f"unrecognized argument {flag}; did you mean {spelled}?")
        return namespace, extras

    def error(self, message: str):
        raise ConfigError(message)
