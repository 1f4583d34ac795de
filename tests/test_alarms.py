"""The alarms on made-up evaluation histories: each fires on a history built to trigger it, once,
and stays silent on a healthy run."""

import pytest

from fitgpt import alarms
from fitgpt.alarms import RunAlarms
from fitgpt.settings import TrainSettings

PEAK_LR = 1e-3
TRAIN_TOKENS = 1_000_000
SETTINGS = dict(batch_size=10, block_size=100, gradient_accumulation_steps=1, learning_rate=PEAK_LR, max_iters=900)


def history(val, train=None, lr=PEAK_LR, every=100):
    """Evaluation rows as train.py logs them, one per value of val (train: the train_eval_loss)."""
    train = train or [v - 0.01 for v in val]
    lrs = lr if isinstance(lr, list) else [lr] * len(val)
    return [
        {"iter": i * every, "tokens": i * every * 1000, "epoch": i * every * 1000 / TRAIN_TOKENS, "lr": lrs[i]}
        | {"val_loss": v, "train_eval_loss": t}
        for i, (v, t) in enumerate(zip(val, train))
    ]


# a healthy run: both losses fall together, the lr decays, no pass over the data twice
HEALTHY = history(
    [4.0, 3.0, 2.5, 2.2, 2.0, 1.9, 1.85, 1.82, 1.80, 1.79], lr=[PEAK_LR * (1 - i / 10) for i in range(10)]
)


def test_a_healthy_run_raises_nothing():
    run = RunAlarms(TrainSettings(**SETTINGS), TRAIN_TOKENS)
    assert run.start(0, 0) == []
    raised = [alarm for row in HEALTHY for alarm in run.update(row)]
    assert raised == [] and run.stop_reason is None


def test_planned_epochs_over_the_limit():
    alarm = alarms.planned_epochs(TRAIN_TOKENS, 1000, 2500, limit=1.0)
    assert alarm.name == "epochs_planned" and alarm.iter == 0
    assert alarm.measured.startswith("this run reads the train split 2.5 times over (2,500,000 tokens planned")
    assert "more or deduplicated data (at least 2,500,000 tokens)" in alarm.fix and "max_iters <= 1,000" in alarm.fix
    assert alarms.planned_epochs(TRAIN_TOKENS, 1000, 1000, limit=1.0) is None  # exactly one epoch is fine
    assert alarms.planned_epochs(TRAIN_TOKENS, 1000, 2500, limit=3.0) is None
    assert alarms.planned_epochs(TRAIN_TOKENS, 1000, 2500, limit=0) is None  # off


def test_each_epoch_boundary_once_even_when_a_step_crosses_two():
    crossed = alarms.epochs_crossed(900_000, {"iter": 21, "tokens": 2_100_000}, TRAIN_TOKENS, 100_000, limit=1.0)
    assert [a.name for a in crossed] == ["epoch_1", "epoch_2"] and {a.iter for a in crossed} == {21}
    assert crossed[0].measured.startswith("epoch 1 done: 2,100,000 tokens seen, the whole 1,000,000-token train split")
    assert alarms.epochs_crossed(1_000_000, {"iter": 15, "tokens": 1_500_000}, TRAIN_TOKENS, 1000, limit=1.0) == []
    assert [
        a.name for a in alarms.epochs_crossed(0, {"iter": 40, "tokens": 4_000_000}, TRAIN_TOKENS, 1000, limit=2.5)
    ] == ["epoch_3", "epoch_4"]


def test_plateau_after_patience_evaluations_without_improvement():
    stalled = history([3.0, 2.5, 2.0, 2.01, 2.02, 2.0, 2.03])
    alarm = alarms.plateau(stalled, patience=4)
    assert alarm.name == "plateau" and alarm.iter == 600
    assert alarm.measured == "val loss has not improved for 4 evaluations: best 2.0000 at iteration 200, 2.0300 now"
    assert "fewer iterations (max_iters about 200, or early_stop=True)" in alarm.fix and "min_lr" in alarm.fix
    assert alarms.plateau(stalled, patience=5) is None
    assert alarms.plateau(stalled, patience=0) is None  # off
    assert alarms.plateau(HEALTHY, patience=1) is None
    # an improvement smaller than min_delta does not count
    assert alarms.plateau(history([3.0, 2.0, 1.999, 1.998]), patience=2, min_delta=0.01).measured.startswith(
        "val loss has not improved for 2 evaluations: best 2.0000"
    )


def test_plateau_past_one_epoch_says_more_data():
    rows = [row | {"epoch": 3.2} for row in history([2.0, 1.9, 1.95, 1.96])]
    assert alarms.plateau(rows, patience=2).fix.startswith("more or deduplicated data (this is epoch 3.2)")


def test_overfitting_when_the_gap_widens():
    rows = history(val=[2.0, 1.9, 1.88, 1.89, 1.91], train=[1.99, 1.85, 1.75, 1.66, 1.58])
    alarm = alarms.overfitting(rows, evals=3, min_widening=0.05)
    assert alarm.name == "overfitting" and alarm.iter == 400
    assert alarm.measured.startswith(
        "the val-train gap widened at each of the last 3 evaluations, from 0.050 to 0.330, more than val loss improved"
    )
    assert "a smaller model, or more regularisation (dropout, weight_decay)" in alarm.fix
    assert alarms.overfitting(rows, evals=4, min_widening=0.5) is None  # widened by less than asked
    assert alarms.overfitting(rows, evals=0, min_widening=0.05) is None
    narrowing = history(val=[2.0, 1.9, 1.88, 1.89, 1.91], train=[1.99, 1.85, 1.75, 1.80, 1.58])
    assert alarms.overfitting(narrowing, evals=3, min_widening=0.05) is None  # not at every evaluation
    assert alarms.overfitting(HEALTHY, evals=3, min_widening=0.0) is None
    # a small model's first 1,000 steps on tiny shakespeare: the gap grows as it learns, val falls faster
    learning = history(val=[4.1989, 2.4229, 2.2520, 2.1293, 2.0531], train=[4.2079, 2.4365, 2.2498, 2.0980, 1.9955])
    assert alarms.overfitting(learning, evals=3, min_widening=0.05) is None


def test_val_rising_while_the_lr_is_high():
    rising = history([3.0, 2.5, 2.6, 2.7], lr=[PEAK_LR, PEAK_LR, 0.8 * PEAK_LR, 0.6 * PEAK_LR])
    alarm = alarms.val_rising(rising, evals=2, peak_lr=PEAK_LR)
    assert alarm.name == "val_rising" and alarm.iter == 300
    assert alarm.measured == (
        "val loss rose at each of the last 2 evaluations (2.5000 -> 2.7000) while lr is 6.00e-04, above half its "
        "peak 1.00e-03"
    )
    assert "a lower learning_rate" in alarm.fix
    decayed = history([3.0, 2.5, 2.6, 2.7], lr=[PEAK_LR, PEAK_LR, 0.5 * PEAK_LR, 0.4 * PEAK_LR])
    assert alarms.val_rising(decayed, evals=2, peak_lr=PEAK_LR) is None  # the lr is low: a plateau's business
    assert alarms.val_rising(rising, evals=3, peak_lr=PEAK_LR) is None  # rose twice, not three times
    assert alarms.val_rising(HEALTHY, evals=1, peak_lr=PEAK_LR) is None


@pytest.mark.parametrize(
    "rows, name",
    [
        (history([3.0, 2.0, 2.1, 2.1, 2.2, 2.1, 2.2], lr=0.1 * PEAK_LR), "plateau"),
        (history([2.0, 1.9, 1.88, 1.89, 1.91], [1.99, 1.85, 1.75, 1.66, 1.58], lr=0.1 * PEAK_LR), "overfitting"),
        (history([3.0, 2.5, 2.6, 2.7]), "val_rising"),
    ],
)
def test_run_alarms_raise_each_once_with_its_record(rows, name):
    run = RunAlarms(TrainSettings(**SETTINGS), TRAIN_TOKENS)
    raised = [alarm for row in rows for alarm in run.update(row)]
    assert [alarm.name for alarm in raised] == [name]
    assert run.update(rows[-1] | {"iter": 1000}) == []  # still holds, not raised again
    record = raised[0].record()
    assert record == {"iter": raised[0].iter, "tokens": raised[0].tokens, "alarm": name, "message": raised[0].message}
    assert raised[0].line().startswith(f"ALARM {name} at iteration ") and ". Usual fix: " in raised[0].line()


def test_early_stop_while_the_plateau_holds():
    rows = history([3.0, 2.0, 2.1, 2.1, 2.2], lr=0.1 * PEAK_LR)
    run = RunAlarms(TrainSettings(**SETTINGS, patience=3, early_stop=True), TRAIN_TOKENS)
    for row in rows[:-1]:
        run.update(row)
        assert run.stop_reason is None
    run.update(rows[-1])
    assert (
        run.stop_reason
        == "early stop: val loss has not improved for 3 evaluations: best 2.0000 at iteration 100, 2.2000 now"
    )
    assert RunAlarms(TrainSettings(**SETTINGS, patience=3), TRAIN_TOKENS).stop_reason is None


def test_a_resumed_run_keeps_its_history_and_what_it_raised():
    rows = history([3.0, 2.0, 2.1, 2.1, 2.2], lr=0.1 * PEAK_LR)
    settings = TrainSettings(**{**SETTINGS, "patience": 3, "max_iters": 2000})
    past = [{"iter": 0, "tokens": 0, "alarm": "epochs_planned", "message": "..."}, *rows[:-1]]
    run = RunAlarms(settings, TRAIN_TOKENS, past)
    assert run.start(300, 300_000) == []  # raised before the checkpoint
    assert [alarm.name for alarm in run.update(rows[-1])] == ["plateau"]  # counted over the evaluations before it
    assert RunAlarms(settings, TRAIN_TOKENS).start(0, 0)[0].name == "epochs_planned"
    assert (
        RunAlarms(TrainSettings(**{**SETTINGS, "max_iters": 2000, "eval_only": True}), TRAIN_TOKENS).start(0, 0) == []
    )
