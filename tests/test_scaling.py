"""The scaling-law fit: known constants recovered from noisy synthetic losses, degenerate input
refused, and plan.py --fit / --fit_file end to end on run folders."""

import json

import numpy as np
import pytest

import plan
from conftest import cli
from fitgpt import scaling
from fitgpt.errors import ConfigError

TRUE = dict(E=1.5, A=300.0, B=400.0, alpha=0.35, beta=0.3)
SIZES = (1e6, 3e6, 1e7, 3e7)
TOKENS = tuple(np.logspace(7, 9, 8))


def law(n, d):
    return TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"]


def synthetic(sizes=SIZES, tokens=TOKENS, noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([(n, d, law(n, d) * np.exp(rng.normal(0, noise))) for n in sizes for d in tokens])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_constants_are_recovered_from_noisy_losses(seed):
    fit, warnings = scaling.fit(synthetic(seed=seed))
    assert warnings == []
    # 0.5 % noise on 32 losses: the exponents within 0.05, E within 0.15, each within 3 standard errors
    assert abs(fit.alpha - TRUE["alpha"]) < 0.05 and abs(fit.beta - TRUE["beta"]) < 0.05
    assert abs(fit.E - TRUE["E"]) < 0.15
    for name in ("E", "alpha", "beta"):
        assert abs(getattr(fit, name) - TRUE[name]) < 3 * fit.sd[name] + 0.01, name
    # extrapolating to a model twice the largest, on 2x the tokens: within 1 %
    assert fit.loss(6e7, 2e9) == pytest.approx(law(6e7, 2e9), rel=0.01)
    n_opt, d_opt = fit.compute_optimal(6 * 6e7 * 2e9)
    assert n_opt * d_opt == pytest.approx(6e7 * 2e9, rel=1e-9)  # on the compute budget
    # and the lowest loss on it: smaller or larger models do worse
    assert all(fit.loss(n_opt, d_opt) < fit.loss(n_opt * k, d_opt / k) for k in (0.7, 1.4))


def test_degenerate_input_is_refused():
    with pytest.raises(ConfigError, match="one model size only"):
        scaling.fit(synthetic(sizes=(1e6,)))
    with pytest.raises(ConfigError, match="fewer than 3 token counts"):
        scaling.fit(synthetic(tokens=(1e7, 1e8)))
    with pytest.raises(ConfigError, match="too few"):
        scaling.fit(synthetic(sizes=(1e6, 1e7), tokens=(1e7, 1e8, 1e9)))


def test_runs_too_alike_warn():
    _, warnings = scaling.fit(synthetic(sizes=(1e6, 1.5e6), tokens=np.linspace(1e8, 2e8, 6)))
    text = " ".join(warnings)
    assert "only 2 model sizes" in text and "sizes span 1.50x" in text and "token counts span 2.00x" in text


def test_a_constant_at_its_bound_is_reported_undetermined():
    # two sizes whose losses differ far more than any plausible law: alpha runs to its bound
    points = np.array([(n, d, (5.0 if n == 1e6 else 1.0) + 1 / d**0.1) for n in (1e6, 1.1e6) for d in TOKENS])
    fit, warnings = scaling.fit(points)
    assert fit.sd["alpha"] == float("inf") and any("alpha" in w and "not determined" in w for w in warnings)


def write_run(folder, params, tokens, losses):
    folder.mkdir()
    config = {"params": params, "settings": {"learning_rate": 1e-3}, "dataset": {"path": "/d", "tokenizer": "char"}}
    (folder / "config.json").write_text(json.dumps(config))
    rows = [{"iter": 0, "tokens": 0, "val_loss": 4.2}]  # the untrained model's: not a point of the law
    rows += [{"iter": i + 1, "tokens": int(d), "val_loss": loss} for i, (d, loss) in enumerate(zip(tokens, losses))]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def test_plan_fits_runs_and_plans_with_the_fit(tmp_path, capsys):
    tokens = TOKENS
    runs = [write_run(tmp_path / f"run{i}", int(n), tokens, [law(n, d) for d in tokens]) for i, n in enumerate(SIZES)]
    out = tmp_path / "fit.json"
    code, stdout, stderr = cli(
        plan.main, ["--fit", *runs, "--fit_out", out, "--params", "6e7", "--tokens", "2e9"], capsys
    )
    assert code == 0, stderr
    assert "fitted to 32 val losses of 4 runs (4 sizes, 1M to 30M parameters" in stdout
    fit = scaling.Fit.load(str(out))
    assert fit.source["tokenizers"] == ["char"] and fit.alpha == pytest.approx(TRUE["alpha"], abs=0.01)
    assert f"trained on 2B tokens: {law(6e7, 2e9):.4f}" in stdout
    # --fit_file: the plan's predicted loss is the fitted law's, not Chinchilla's
    argv = ["--gpu", "h100", "--batch_size=8", "--max_iters=1000", "--json"]
    fitted = json.loads(cli(plan.main, [*argv, "--fit_file", out], capsys)[1])
    published = json.loads(cli(plan.main, argv, capsys)[1])
    n, d = fitted["params"], fitted["total_tokens"]
    assert fitted["predicted_loss"] == pytest.approx(fit.loss(n, d), abs=1e-3)
    assert published["predicted_loss"] == pytest.approx(scaling.predicted_loss(n, d), abs=1e-3)
    # --law FILE: the search ranks by the fitted law, and says so
    code, stdout, stderr = cli(plan.main, ["--law", out, "--flops", "1e17", "--json"], capsys)
    searched = json.loads(stdout)
    assert searched["law"] == f"the law in {out}, fitted to 4 runs"
    assert searched["predicted_loss"] == pytest.approx(fit.loss(searched["params"], searched["total_tokens"]))
    code, _, stderr = cli(plan.main, ["--fit", runs[0]], capsys)
    assert code == 2 and "one model size only" in stderr
