from argparse import Namespace
from dataclasses import dataclass

import pytest

import configurator
from configurator import setting
from fitgpt.errors import ConfigError
from fitgpt.settings import SampleSettings, TrainSettings


@dataclass
class Schema:
    batch_size: int = setting("micro-batch", default=12, min=1)
    learning_rate: float = setting("peak lr", default=6e-4, min=0.0)
    compile: bool = setting("torch.compile", default=True)
    out_dir: str = setting("output folder", default="out")
    n_kv_heads: int | None = setting("kv heads", default=None, min=1)
    init_from: str = setting(
        "start",
        default="scratch",
        choices=("scratch", "resume"),
        accept=lambda v: v.startswith("/"),
        accept_doc="or an absolute path",
    )
    top_p: float | None = setting("nucleus", default=None, above=0.0, max=1.0)

    def __post_init__(self):
        configurator.check_fields(self)


def parse(*argv):
    return configurator.parse_args(list(argv), Schema)


def test_literal_values():
    assert parse("--batch_size=32", "--learning_rate=1e-3") == {"batch_size": 32, "learning_rate": 1e-3}


def test_int_accepted_for_float():
    value = parse("--learning_rate=1")["learning_rate"]
    assert value == 1.0 and isinstance(value, float)


def test_bools_in_any_case():
    assert parse("--compile=False")["compile"] is False
    assert parse("--compile=true")["compile"] is True
    assert parse("--compile=FALSE")["compile"] is False


def test_none_default_declares_its_type():
    assert parse("--n_kv_heads=4")["n_kv_heads"] == 4
    assert parse("--n_kv_heads=None")["n_kv_heads"] is None
    with pytest.raises(ConfigError, match=r"'n_kv_heads' expects int or None, got str \('four'\)"):
        parse("--n_kv_heads=four")
    with pytest.raises(ConfigError, match=r"'n_kv_heads' expects int or None, got float"):
        parse("--n_kv_heads=2.5")


def test_plain_strings_and_numeric_looking_strings():
    assert parse("--init_from=resume")["init_from"] == "resume"
    assert parse("--out_dir=2024")["out_dir"] == "2024"


def test_split_on_first_equals_only():
    assert parse("--out_dir=runs/a=b")["out_dir"] == "runs/a=b"


def test_unknown_key_names_key_and_suggestions():
    with pytest.raises(ConfigError, match=r"unknown setting 'batch_sise'.*did you mean batch_size"):
        parse("--batch_sise=3")


def test_a_hyphenated_key_is_refused_with_its_underscore_spelling():
    for arg in ("--batch-size=3", "--batch-size"):
        with pytest.raises(ConfigError, match=r"unknown setting 'batch-size'; did you mean batch_size\?$"):
            parse(arg)


def test_argument_parser_flags_are_underscored_and_its_errors_one_line():
    parser = configurator.ArgumentParser("usage")
    parser.add_argument("--vram_gb", type=float)
    assert parser.parse_known_args(["--vram_gb", "24", "--n_layer=2"]) == (Namespace(vram_gb=24.0), ["--n_layer=2"])
    for argv in (["--vram-gb=24"], ["--vram-gb", "24"], ["--n_layer=2", "--vram-gb", "24"]):
        with pytest.raises(ConfigError, match=r"^unrecognized argument --vram-gb; did you mean --vram_gb\?$"):
            parser.parse_known_args(argv)
    with pytest.raises(ConfigError, match=r"^argument --vram_gb: invalid float value: 'big'$"):
        parser.parse_args(["--vram_gb=big"])
    with pytest.raises(ConfigError, match=r"^unrecognized arguments: --vram=3$"):  # never abbreviated
        parser.parse_args(["--vram=3"])


def test_wrong_type_names_key_expected_and_given():
    with pytest.raises(ConfigError, match=r"'batch_size' expects int, got float"):
        parse("--batch_size=1.5")
    with pytest.raises(ConfigError, match=r"'compile' expects bool, got int"):
        parse("--compile=1")


def test_choices_with_did_you_mean_and_accepted_extras():
    with pytest.raises(
        ConfigError,
        match=r"'init_from' must be one of scratch, resume or an absolute path; "
        r"got 'resme'; did you mean resume\?",
    ):
        parse("--init_from=resme")
    assert parse("--init_from=/models/x")["init_from"] == "/models/x"


def test_bounds():
    with pytest.raises(ConfigError, match=r"'batch_size' must be >= 1, got 0"):
        parse("--batch_size=0")
    with pytest.raises(ConfigError, match=r"'top_p' must be > 0.0, got 0.0"):
        parse("--top_p=0.0")
    with pytest.raises(ConfigError, match=r"'top_p' must be <= 1.0, got 1.5"):
        parse("--top_p=1.5")
    with pytest.raises(ConfigError, match=r"setting: 'batch_size' must be >= 1, got -2"):
        Schema(batch_size=-2)  # constructing the settings in code is checked too


def test_argument_without_equals():
    assert parse("--compile") == {"compile": True}  # a bare flag turns a bool on
    with pytest.raises(ConfigError, match="--key=value"):
        parse("--batch_size")


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


def test_parse_starts_from_the_defaults_and_reports_what_was_given():
    settings, given = configurator.parse(["--batch_size=3"], Schema)
    assert settings == Schema(batch_size=3) and given == {"batch_size": 3}


SCRIPT = '''"""A script whose settings come first."""

# the settings
batch_size = 2
learning_rate = 1e-3  # a comment
compile = False
out_dir = "o"
n_kv_heads = None
init_from = "scratch"
top_p = None
import os

later = os.sep  # after the first import: not a setting
'''


def script_schema(path):
    """Schema's fields with their defaults read from the script at path."""

    @dataclass
    @configurator.defaults_from(str(path))
    class FromScript:
        batch_size: int = setting("micro-batch", min=1)
        learning_rate: float = setting("peak lr", min=0.0)
        compile: bool = setting("torch.compile")
        out_dir: str = setting("output folder", required=True)
        n_kv_heads: int | None = setting("kv heads", min=1)
        init_from: str = setting("start", choices=("scratch", "resume"))
        top_p: float | None = setting("nucleus", above=0.0, max=1.0)

        def __post_init__(self):
            configurator.check_fields(self)

    return FromScript


def test_defaults_are_the_scripts_globals_read_not_run(tmp_path):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    schema = script_schema(path)
    settings, given = configurator.parse(["--batch_size=3"], schema)
    assert (settings.batch_size, settings.learning_rate, settings.compile, settings.out_dir) == (3, 1e-3, False, "o")
    assert given == {"batch_size": 3} and schema.defaults_problem is None


@pytest.mark.parametrize(
    "change, message",
    [
        (("top_p = None\n", ""), "defines no global for the settings top_p; add them at its top"),
        (
            ("top_p = None", "top_q = None"),
            "'top_q' at its top is not a setting of fitgpt/settings.py; did you mean top_p?",
        ),
        (("batch_size = 2", "batch_size = '2'"), "'batch_size' expects int, got str ('2')"),
        (("batch_size = 2", "batch_size = 0"), "'batch_size' must be >= 1, got 0"),
        (("batch_size = 2", "batch_size = 2 * 8"), "line 4: the settings at its top are plain `name = value` lines"),
        (('out_dir = "o"', 'out_dir = ""'), "'out_dir' is empty; give it a value"),
    ],
)
def test_a_broken_global_refuses_every_instance_in_one_line(tmp_path, capsys, change, message):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT.replace(*change))
    schema = script_schema(path)  # importing settings never fails: making them does
    for make in (schema, lambda: configurator.parse(["--help"], schema)):
        with pytest.raises(ConfigError) as error:
            make()
        assert message in str(error.value) and str(path) in str(error.value)
        assert "\n" not in str(error.value)


def test_help_lists_every_setting_with_default_type_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        configurator.parse(["--help"], Schema, "usage: x.py")
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: x.py")
    assert "  --n_kv_heads=None  (int or None) kv heads" in text
    assert "  --init_from='scratch'  (str) start [scratch, resume or an absolute path]" in text


@pytest.mark.parametrize("schema, argv, message", [
    (TrainSettings, ["--dtype=bf61"], "'dtype' must be one of auto, bf16, fp16, fp32; got 'bf61'; did you mean bf16?"),
    (TrainSettings, ["--device=cuda:x"], "'device' must be one of auto, cpu, cuda, mps or cuda:N; got 'cuda:x'"),
    (TrainSettings, ["--init_from=gtp2"], "did you mean gpt2?"),
    (TrainSettings, ["--data_order=sequentail"], "did you mean sequential?"),
    (TrainSettings, ["--vocab_size=50257.0"], "'vocab_size' expects int or None, got float"),
    (TrainSettings, ["--mlp_hidden=big"], "'mlp_hidden' expects int or None, got str"),
    (SampleSettings, ["--temperature=-1"], "'temperature' must be >= 0.0, got -1.0"),
    (SampleSettings, ["--max_new_tokens=0"], "'max_new_tokens' must be >= 1, got 0"),
    (SampleSettings, ["--top_k=0"], "'top_k' must be >= 1, got 0"),
    (SampleSettings, ["--top_p=0"], "'top_p' must be > 0.0, got 0.0"),
])  # fmt: skip
def test_entry_point_settings_are_checked(schema, argv, message):
    with pytest.raises(ConfigError) as error:
        configurator.parse(argv, schema)
    assert message in str(error.value)
