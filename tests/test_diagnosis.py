"""The plateau diagnosis, fed fabricated loss curves whose figures come from the real per-run functions."""

import math

import optuna
from omegaconf import OmegaConf
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from pipeline.report.diagnosis import plateau_diagnosis
from pipeline.training.train import plateau_level, run_summary

CHANCE = math.log(2)
TRAIN_CFG = OmegaConf.create({"plateau_tolerance": 0.02})


def trial(
    number: int, lr: float, losses: list[float], state=TrialState.COMPLETE, grads=None, **params
):
    """A trial whose figures are computed from `losses` as a real run's are (run_summary, plateau_level)."""
    history = {"loss": losses, "val_loss": losses}
    summary = run_summary(history, len(losses) - 1, TRAIN_CFG)
    summary |= plateau_level(losses, summary["plateau_epochs"], CHANCE, 0.03)
    attrs = {"learning_rate": lr} | {k: float(v) for k, v in summary.items()}
    if grads:
        attrs |= {"plateau_grad_norm": grads[0], "escape_grad_norm": grads[1]}
    distributions = {"learning_rate": FloatDistribution(1e-5, 1.0, log=True)}
    frozen = optuna.trial.create_trial(
        params={"learning_rate": lr, **params},
        distributions=distributions
        | {k: optuna.distributions.CategoricalDistribution([True, False]) for k in params},
        user_attrs=attrs,
        state=state,
        value=None if state == TrialState.PRUNED else 0.5,
        intermediate_values={0: 0.5},
    )
    frozen.number = number
    return frozen


AT_CHANCE = [CHANCE] * 6 + [0.6, 0.45, 0.3, 0.2]  # 6 flat epochs at ln 2, then learns
NONE = [0.68, 0.5, 0.35, 0.25, 0.2, 0.18, 0.17, 0.16, 0.15, 0.14]
CENSORED = [CHANCE * 1.001] * 3  # pruned after 3 epochs, still flat


def test_one_plateau_is_one_plateau():
    """Issue 28: 'All 1 plateaus sat at chance level'."""
    text = "\n".join(plateau_diagnosis([trial(0, 1e-4, AT_CHANCE), trial(1, 3e-3, NONE)]))
    assert "The one plateau sat at chance level" in text and "All 1 plateaus" not in text


def test_a_plateau_at_chance_none_and_a_censored_one():
    trials = [
        trial(0, 1e-4, AT_CHANCE, grads=(0.002, 0.05)),
        trial(1, 3e-3, NONE),
        trial(2, 1e-2, NONE),
        trial(3, 5e-5, CENSORED, state=TrialState.PRUNED),
    ]
    text = "\n".join(plateau_diagnosis(trials))
    assert "2 of 4 trials sat on a loss plateau of 2+ epochs" in text
    assert "trial 3 (lr 5e-05): ≥ 3" in text and "trial 0 (lr 0.0001): 6" in text
    assert "1 ended still flat" in text
    assert "All 2 plateaus sat at chance level" in text and f"chance {CHANCE:.3f}" in text
    assert (
        "lr 0.0001: gradient norm 0.002 → 0.05" in text
        and "the gradient grew 25× once the loss moved" in text
    )
    assert (
        "No trial with a learning rate of 0.003 or more plateaued (2 trials); below it 2 of 2 did"
        in text
    )
    assert "use a learning rate of at least 0.003" in text
    assert (
        "1 pruned trial was still on its plateau: search.pruner=patient would let it show whether it escapes"
        in text
    )


def test_no_plateau_says_so_with_its_figure():
    text = "\n".join(plateau_diagnosis([trial(0, 1e-3, NONE), trial(1, 1e-2, NONE)]))
    assert "no trial of 2 sat on a loss plateau" in text and "longest flat start: 1" in text
    assert "No trial plateaued at any learning rate tried (0.001 to 0.01)" in text


def test_overlapping_learning_rates_are_not_enough_to_place_a_threshold():
    trials = [trial(0, 1e-3, AT_CHANCE), trial(1, 1e-3, NONE), trial(2, 1e-2, AT_CHANCE)]
    text = "\n".join(plateau_diagnosis(trials))
    assert "Not enough trials to place a learning-rate threshold" in text
    assert "No gradient figures were logged" in text


def test_one_trial_is_not_enough():
    assert plateau_diagnosis([trial(0, 1e-3, AT_CHANCE)]) == [
        "Plateau diagnosis: not enough trials (1 with plateau figures; 2 or more needed)."
    ]


def test_unmasked_plateaus_longer_is_said_with_both_means():
    trials = [
        trial(0, 1e-3, AT_CHANCE, mask_padding=False),
        trial(1, 1e-3, NONE, mask_padding=True),
        trial(2, 1e-2, NONE, mask_padding=True),
        trial(3, 1e-2, NONE, mask_padding=False),
    ]
    text = "\n".join(plateau_diagnosis(trials))
    assert (
        "keep model.mask_padding=true (plateaus 1.0 epochs on average masked, 3.5 unmasked)" in text
    )


def test_same_gradient_larger_steps_names_the_step_size_not_the_gradient():
    """The seed case, as measured: plateau gradient norm 0.090 at lr 1e-4 and 0.094 at 1e-3, steps 5.4e-4 and 6.0e-3."""
    slow = trial(0, 1e-4, AT_CHANCE, grads=(0.090, 0.123))
    slow.set_user_attr("plateau_update_ratio", 5.4e-4)
    fast = trial(1, 1e-3, [CHANCE] * 3 + [0.5, 0.3, 0.2], grads=(0.094, 0.324))
    fast.set_user_attr("plateau_update_ratio", 6.0e-3)
    text = "\n".join(plateau_diagnosis([slow, fast, trial(2, 1e-2, NONE), trial(3, 5e-2, NONE)]))
    assert "the gradient norm was about the same at lr 0.0001 and 0.001 (0.09 vs 0.094)" in text
    assert "each step moved the weights 11× as far (for 10× the learning rate)" in text
    assert "the step size, not a vanishing gradient" in text


def test_the_learning_rate_advice_includes_the_trial_that_showed_it():
    """Issue 28: 'use a learning rate of at least 0.0045' while the winner's was 0.00449 (rounded up)."""
    trials = [
        trial(0, 1e-3, AT_CHANCE),
        trial(1, 2e-3, AT_CHANCE),
        trial(2, 0.00449, NONE),
        trial(3, 0.02, NONE),
    ]
    text = "\n".join(plateau_diagnosis(trials))
    said = float(text.split("use a learning rate of at least ")[1].split(" ")[0])
    assert 2e-3 < said <= 0.00449, text
    assert f"No trial with a learning rate of {said:g} or more plateaued (2 trials)" in text
