import pytest

import configurator
from configurator import ConfigError

DEFAULTS = {"batch_size": 12, "learning_rate": 6e-4, "compile": True, "out_dir": "out",
            "n_kv_heads": None, "init_from": "scratch"}


def parse(*argv):
    return configurator.parse_args(list(argv), DEFAULTS)


def test_literal_values():
    assert parse("--batch_size=32", "--learning_rate=1e-3") == {"batch_size": 32, "learning_rate": 1e-3}


def test_int_accepted_for_float():
    value = parse("--learning_rate=1")["learning_rate"]
    assert value == 1.0 and isinstance(value, float)


def test_bools_in_any_case():
    assert parse("--compile=False")["compile"] is False
    assert parse("--compile=true")["compile"] is True
    assert parse("--compile=FALSE")["compile"] is False


def test_none_default_takes_any_value():
    assert parse("--n_kv_heads=4")["n_kv_heads"] == 4


def test_plain_strings_and_numeric_looking_strings():
    assert parse("--init_from=resume")["init_from"] == "resume"
    assert parse("--out_dir=2024")["out_dir"] == "2024"


def test_split_on_first_equals_only():
    assert parse("--out_dir=runs/a=b")["out_dir"] == "runs/a=b"


def test_unknown_key_names_key_and_suggestions():
    with pytest.raises(ConfigError, match=r"unknown setting 'batch_sise'.*did you mean batch_size"):
        parse("--batch_sise=3")


def test_wrong_type_names_key_expected_and_given():
    with pytest.raises(ConfigError, match=r"'batch_size' expects int, got float"):
        parse("--batch_size=1.5")
    with pytest.raises(ConfigError, match=r"'compile' expects bool, got int"):
        parse("--compile=1")


def test_argument_without_equals():
    with pytest.raises(ConfigError, match="--key=value"):
        parse("--compile")


def test_missing_config_file(tmp_path):
    missing = tmp_path / "nope.py"
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        parse(str(missing))


def test_config_file_then_override(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("import math\nbatch_size = 4\nlearning_rate = 2 * 1e-3\nout_dir = 'x'\n")
    assert parse(str(cfg), "--batch_size=8") == {"batch_size": 8, "learning_rate": 2e-3, "out_dir": "x"}


def test_config_file_unknown_key_names_file(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("learning_rat = 1e-3\n")
    with pytest.raises(ConfigError, match=rf"{cfg}: unknown setting 'learning_rat'.*learning_rate"):
        parse(str(cfg))


def test_config_file_wrong_type_and_syntax_error(tmp_path):
    cfg = tmp_path / "cfg.py"
    cfg.write_text("batch_size = '12'\n")
    with pytest.raises(ConfigError, match=rf"{cfg}: 'batch_size' expects int, got str"):
        parse(str(cfg))
    cfg.write_text("batch_size = = 3\n")
    with pytest.raises(ConfigError, match=rf"{cfg}: error while running the config file: SyntaxError"):
        parse(str(cfg))


def test_apply_updates_namespace():
    namespace = dict(DEFAULTS)
    changed = configurator.apply(namespace, ["--batch_size=2"])
    assert namespace["batch_size"] == 2 and changed == {"batch_size": 2}
