"""
Command-line configuration for train.py, sample.py and bench.py:

    python train.py config/shakespeare_char.py --batch_size=32 --compile=False

Config files are plain Python, run in a fresh namespace; every name they define (and every
--key=value) must be one of the script's settings, with a value of that setting's type.
"""
import ast
import difflib
import os
import types


class ConfigError(ValueError):
    """A bad config file or override; the message is a one-line explanation."""


def parse_value(key, raw, default):
    """Turn the text after '=' into a value for a setting whose default is `default`."""
    if isinstance(default, bool) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw  # plain text such as --init_from=resume
    if isinstance(default, str) and not isinstance(value, str) and value is not None:
        value = raw  # --out_dir=2024 means the folder '2024'
    return value


def check_value(key, value, defaults, source):
    """Return value coerced to the setting's type, or raise ConfigError naming the key."""
    if key not in defaults:
        close = difflib.get_close_matches(key, defaults.keys(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{source}: unknown setting '{key}'{hint}")
    default = defaults[key]
    if default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not expected:
        raise ConfigError(f"{source}: '{key}' expects {expected.__name__}, got {type(value).__name__} "
                          f"({value!r})")
    return value


def read_config_file(path, defaults):
    """The settings a config file assigns, checked against defaults."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    namespace = {}
    try:
        exec(compile(source, path, "exec"), namespace)
    except Exception as e:
        raise ConfigError(f"{path}: error while running the config file: {type(e).__name__}: {e}") from None
    settings = {}
    for key, value in namespace.items():
        if key.startswith("_") or isinstance(value, (types.ModuleType, types.FunctionType, type)):
            continue  # imports, helpers and dunders are not settings
        settings[key] = check_value(key, value, defaults, path)
    return settings


def parse_args(argv, defaults):
    """Settings from config files and --key=value arguments, applied in order."""
    settings = {}
    for arg in argv:
        if not arg.startswith("--"):
            for key, value in read_config_file(arg, defaults).items():
                settings[key] = value
            continue
        if "=" not in arg:
            raise ConfigError(f"argument '{arg}' must look like --key=value")
        key, raw = arg[2:].split("=", 1)
        settings[key] = check_value(key, parse_value(key, raw, defaults.get(key)), defaults, f"argument '{arg}'")
    return settings


def apply(namespace, argv, keys=None):
    """Update namespace (a script's globals()) from argv; keys limits which names are settings.
    Returns the dict of settings that were changed."""
    keys = keys if keys is not None else setting_names(namespace)
    defaults = {k: namespace[k] for k in keys}
    settings = parse_args(argv, defaults)
    namespace.update(settings)
    return settings


def setting_names(namespace):
    """The names in a script's globals that are settings: public scalars and strings."""
    return [k for k, v in namespace.items()
            if not k.startswith("_") and isinstance(v, (int, float, bool, str, type(None)))]
