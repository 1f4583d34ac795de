"""
Command-line configuration for train.py, sample.py, bench.py, export.py and plan.py:

    python train.py config/shakespeare_char.py --batch_size=32 --compile=False
    python train.py --help

Config files are plain Python, run in a fresh namespace; every name they define (and every
--key=value) must be one of the script's settings. A script's settings are described by a
dataclass (fitgpt/settings.py) whose fields give each one's type, default, one-line help and,
where it has them, its allowed values and bounds; values of the wrong type, outside their bounds
or not among the choices are refused with one line naming the key (and a did-you-mean).
"""

import ast
import dataclasses
import difflib
import os
import sys
import types
import typing
from collections.abc import Callable

from fitgpt.errors import ConfigError


def setting(
    default: object,
    help: str,
    choices: tuple = (),
    accept: Callable[[object], bool] | None = None,
    accept_doc: str = "",
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    required: bool = False,
) -> dataclasses.Field:
    """A settings-dataclass field: default, one-line help, optional allowed values (choices, plus
    any value accept(value) approves, described by accept_doc) and bounds (min <= v <= max, v > above);
    required: an empty string is refused."""
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


def field_types(schema: type) -> dict[str, tuple[type, ...]]:
    """{name: the types a value may have} of a settings dataclass (NoneType where None is allowed)."""
    hints = typing.get_type_hints(schema)
    out = {}
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        out[f.name] = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return out


def type_name(allowed: tuple[type, ...]) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in allowed)


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


def check_value(key: str, value: object, schema: type, source: str) -> object:
    """value coerced to the setting's type and checked against its choices and bounds, or a
    ConfigError naming the key (and close matches of a misspelt key or choice)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{source}: unknown setting '{key}'{hint}")
    allowed = field_types(schema)[key]
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{source}: '{key}' expects {type_name(allowed)}, got None")
    if float in allowed and type(value) is int:
        value = float(value)
    if type(value) not in allowed:
        raise ConfigError(f"{source}: '{key}' expects {type_name(allowed)}, got {type(value).__name__} ({value!r})")
    meta = fields[key].metadata
    if meta.get("required") and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{source}: '{key}' is empty; give it a value (its default is {fields[key].default!r})")
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
    """Check every field of a settings dataclass instance (its __post_init__ calls this)."""
    for f in dataclasses.fields(settings):
        setattr(settings, f.name, check_value(f.name, getattr(settings, f.name), type(settings), "setting"))


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
        if "=" not in arg and field_types(schema).get(arg[2:]) == (bool,):
            arg += "=True"  # a bare --flag turns a bool setting on
        if "=" not in arg:
            raise ConfigError(f"argument '{arg}' must look like --key=value (or --help)")
        key, raw = arg[2:].split("=", 1)
        value = parse_value(raw, types_of.get(key, (str,)))
        settings[key] = check_value(key, value, schema, f"argument '{arg}'")
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


def parse(argv: list[str], schema: type, usage: str = "", defaults: dict | None = None) -> tuple[object, dict]:
    """(an instance of schema, the settings argv gave): the defaults (a script's globals, which
    must hold every setting, or else the schema's own), then config files and --key=value in
    order. --help prints the settings and exits."""
    if defaults is None:
        defaults = {f.name: f.default for f in dataclasses.fields(schema)}
    missing = [f.name for f in dataclasses.fields(schema) if f.name not in defaults]
    if missing:
        raise ConfigError(f"the script defines no global for the settings {', '.join(missing)}")
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text(schema, defaults, usage))
        sys.exit(0)
    given = parse_args(argv, schema)
    return schema(**{**{f.name: defaults[f.name] for f in dataclasses.fields(schema)}, **given}), given
