"""sweep.py: the grid, stable folder names, finished runs skipped, other settings refused."""

import json
import os

import pytest

import sweep
import train
from conftest import as_args, cli, tiny_settings
from fitgpt import sweeps
from fitgpt.errors import ConfigError


def test_grid_and_names():
    configs, grid, fixed = sweeps.split_arguments(
        ["config/a.py", "--learning_rate=3e-4,1e-3", "--max_iters=50", "--n_layer=2, 4"]
    )
    assert configs == ["config/a.py"] and fixed == ["--max_iters=50"]
    runs = sweeps.combinations(grid)
    assert runs == [
        {"learning_rate": "3e-4", "n_layer": "2"},
        {"learning_rate": "3e-4", "n_layer": "4"},
        {"learning_rate": "1e-3", "n_layer": "2"},
        {"learning_rate": "1e-3", "n_layer": "4"},
    ]
    assert [sweeps.run_name(r) for r in runs[:2]] == ["learning_rate_3e-4__n_layer_2", "learning_rate_3e-4__n_layer_4"]
    with pytest.raises(ConfigError, match="nothing to sweep"):
        sweeps.split_arguments(["--learning_rate=1e-3"])
    with pytest.raises(ConfigError, match="two or more different values"):
        sweeps.split_arguments(["--learning_rate=1e-3,1e-3"])


def test_sweep_trains_the_grid_skips_finished_runs_and_refuses_other_settings(char_dataset, tmp_path, capsys):
    base = as_args(tiny_settings(data_dir=char_dataset, max_iters=6, eval_interval=3))
    argv = [*base, "--learning_rate=1e-3,1e-2", f"--sweep_dir={tmp_path}"]
    code, stdout, stderr = cli(sweep.main, argv, capsys)
    assert code == 0, stderr
    names = ["learning_rate_1e-3", "learning_rate_1e-2"]
    assert sorted(os.listdir(tmp_path)) == sorted(names)
    for name in names:
        config = json.load(open(tmp_path / name / "config.json"))
        assert config["settings"]["learning_rate"] == float(name.split("_")[-1])
    best = {}
    for line in stdout.splitlines():
        if line.split()[:1] and line.split()[0] in names:
            best[line.split()[0]] = float(line.split()[6])  # the "best val (iter)" column
    winner = min(best, key=best.get)
    assert stdout.strip().endswith(f"winner: {winner} (best val loss {best[winner]:.4f})")

    mtimes = {name: os.path.getmtime(tmp_path / name / "metrics.jsonl") for name in names}
    code, stdout, _ = cli(sweep.main, argv, capsys)
    assert code == 0 and stdout.count("(finished)") == 2
    assert mtimes == {name: os.path.getmtime(tmp_path / name / "metrics.jsonl") for name in names}

    code, _, stderr = cli(sweep.main, [*argv, "--max_iters=8"], capsys)
    assert code == 2 and "learning_rate_1e-3 holds a run with other settings (max_iters=6 there, 8 now)" in stderr


def test_an_unfinished_run_is_partial(char_dataset, tmp_path):
    settings = tiny_settings(data_dir=char_dataset, max_iters=4, out_dir=str(tmp_path / "run"))
    train.run(settings)
    assert sweeps.state(settings.out_dir, vars(settings)) == "finished"
    metrics = tmp_path / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows if "finished" not in row))
    assert sweeps.state(settings.out_dir, vars(settings)) == "partial"
    assert sweeps.state(str(tmp_path / "elsewhere"), vars(settings)) == "new"


def test_print_gives_the_torchrun_commands(capsys):
    argv = ["config/train_gpt2.py", "--learning_rate=6e-4,1.2e-3", "--print", "--nproc_per_node=8"]
    code, stdout, stderr = cli(sweep.main, argv, capsys)
    assert code == 0, stderr
    assert stdout.splitlines() == [
        "torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py --learning_rate=6e-4 "
        "--out_dir=out-gpt2-sweep/learning_rate_6e-4",
        "torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py --learning_rate=1.2e-3 "
        "--out_dir=out-gpt2-sweep/learning_rate_1.2e-3",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--learning_rate=3e-4,,1e-3"], "argument '--learning_rate=3e-4,,1e-3': an empty value between commas"),
        (["--learning_rate=3e-4,"], "argument '--learning_rate=3e-4,': an empty value between commas"),
        (["config", "--learning_rate=3e-4,1e-3"], "config file config is a directory, not a file"),
        (["--out_dir=", "--learning_rate=3e-4,1e-3"], "argument '--out_dir=': 'out_dir' is empty; give it a value"),
        (
            ["--sweep-dir=x", "--learning_rate=3e-4,1e-3"],
            "unrecognized argument --sweep-dir; did you mean --sweep_dir?",
        ),
        (["--learning-rate=3e-4,1e-3"], "argument '--learning-rate=3e-4': unknown setting 'learning-rate'; did you"),
    ],
)
def test_bad_sweeps_are_one_line(argv, message, capsys):
    code, stdout, stderr = cli(sweep.main, argv, capsys)
    assert code == 2 and stderr.startswith(f"error: {message}") and stderr.count("\n") == 1 and not stdout
