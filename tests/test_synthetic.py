"""Synthetic tasks and TaskDistribution: learnable, fixed splits, bounded and seeded draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrpilot.training import Task, TrainingSession, get_task
from lrpilot.training.distribution import TaskDistribution
from lrpilot.training.synthetic import FAMILIES, SYNTHETIC_TASKS, TRAINING_FAMILIES, load_synthetic, synthetic_task


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("name", [t.name for t in SYNTHETIC_TASKS])
def test_registered_tasks_learn_well_above_chance(name: str) -> None:
    session = TrainingSession(name, seed=0, device="cpu", epoch_examples=1024)
    first = session.run_epoch()
    for _ in range(4):
        metrics = session.run_epoch()
    chance = 1.0 / session.data.num_classes
    assert metrics.val_acc > 2 * chance, (name, metrics)
    assert metrics.val_loss < first.val_loss
    assert session.evaluate("test")["acc"] > 2 * chance


@pytest.mark.parametrize("family", FAMILIES)
def test_splits_are_fixed_and_independent_of_the_run_seed(family: str) -> None:
    task = synthetic_task("t", family=family, data_seed=3)
    a, b = load_synthetic(task), load_synthetic(task)
    for split in ("train", "val", "test"):
        assert torch.equal(a.split(split).inputs, b.split(split).inputs)
        assert torch.equal(a.split(split).labels, b.split(split).labels)
    s0, s1 = TrainingSession(task, seed=0, device="cpu"), TrainingSession(task, seed=1, device="cpu")
    assert torch.equal(s0.data.val.inputs, s1.data.val.inputs)
    assert len({len(a.train), len(a.val), len(a.test)} & {0}) == 0
    assert int(a.train.labels.max()) < a.num_classes and int(a.val.labels.unique().numel()) > 1
    if family != "digits":  # the data seed picks another dataset
        other = load_synthetic(synthetic_task("t", family=family, data_seed=4))
        assert not torch.equal(other.train.inputs, a.train.inputs)


def test_label_noise_flips_only_train_labels() -> None:
    clean = load_synthetic(synthetic_task("t", family="teacher"))
    noisy = load_synthetic(synthetic_task("t", family="teacher", noise=0.25))
    flipped = (clean.train.labels != noisy.train.labels).float().mean().item()
    assert flipped == pytest.approx(0.25, abs=0.01)
    assert torch.equal(clean.val.labels, noisy.val.labels) and torch.equal(clean.test.labels, noisy.test.labels)
    assert torch.equal(clean.train.inputs, noisy.train.inputs)


def test_noisy_labels_make_validation_loss_rise() -> None:
    """Noise is there to make over-fitting happen: a wide model at a high LR over-fits noisy digits."""
    task = get_task("noisy-digits-mlp").with_overrides(width=256, lr=3e-3, noise=0.4)
    session = TrainingSession(task, seed=0, device="cpu")
    history = [session.run_epoch() for _ in range(25)]
    best = min(m.val_loss for m in history)
    assert history[-1].val_loss > best * 1.1
    assert history[-1].train_loss < history[0].train_loss


def test_distribution_draws_vary_and_respect_bounds() -> None:
    dist = TaskDistribution()
    rng = np.random.default_rng(0)
    draws = [dist.draw(rng) for _ in range(300)]
    lrs = np.array([d.lr for d in draws])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-1 and lrs.min() < 1e-4 and lrs.max() > 1e-2
    assert {d.epochs for d in draws} <= set(range(4, 31)) and len({d.epochs for d in draws}) > 15
    options = [d.task.options for d in draws]
    assert {o["family"] for o in options} == set(TRAINING_FAMILIES)  # no digits: held-out tasks use that data
    digits = TaskDistribution(families=FAMILIES).draw_task(np.random.default_rng(0))  # by name it is still there
    assert digits is not None
    assert {d.task.optimizer for d in draws} == {"adam", "adamw", "sgd"}
    assert all(16 <= o["width"] <= 128 and 1 <= o["depth"] <= 3 for o in options)
    assert all(o["arch"] == "mlp" for o in options if o["family"] in ("teacher", "gmm"))
    assert any(o["arch"] == "cnn" for o in options)
    noise = np.array([o["noise"] for o in options])
    assert 0.15 < (noise > 0).mean() < 0.45 and noise.max() <= 0.4 and noise[noise > 0].min() >= 0.1
    assert all(d.epoch_examples in (256, 512, 1024) for d in draws)
    assert all(d.task.lr == d.lr and d.task.epochs == d.epochs for d in draws)


def test_distribution_is_deterministic_for_a_seed() -> None:
    dist = TaskDistribution()

    def key(seed: int) -> list:
        rng = np.random.default_rng(seed)
        return [(d.task.name, dict(d.task.options), d.task.optimizer, d.task.batch_size, d.lr, d.epochs,
                 d.epoch_examples) for d in (dist.draw(rng) for _ in range(20))]

    assert key(5) == key(5)
    assert key(5) != key(6)


def test_drawn_tasks_train() -> None:
    dist = TaskDistribution(epoch_examples=(128,), width_range=(8, 16))
    rng = np.random.default_rng(1)
    for _ in range(6):
        draw = dist.draw(rng)
        session = TrainingSession(draw.task, seed=0, device="cpu", epoch_examples=draw.epoch_examples)
        metrics = session.run_epoch()
        assert metrics.lr == pytest.approx(draw.lr) and math.isfinite(metrics.train_loss)


def test_cnn_widths_and_sequence_length_change_only_the_cnns_and_the_sequences() -> None:
    """``cnn_width_range`` draws the CNNs' channels from the same random numbers (every other draw unchanged);
    ``seq_len`` sets the length of the sequences the ``seq`` family's models see."""
    plain = TaskDistribution(families=("seq", "teacher"), width_range=(8, 32))
    cheap = TaskDistribution(families=("seq", "teacher"), width_range=(8, 32), cnn_width_range=(4, 16), seq_len=16)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    cnns = 0
    for _ in range(40):
        x, y = plain.draw(a), cheap.draw(b)
        assert (x.task.name, x.lr, x.epochs, x.epoch_examples, x.task.batch_size) == \
               (y.task.name, y.lr, y.epochs, y.epoch_examples, y.task.batch_size)
        same = {k: v for k, v in x.task.options.items() if k not in ("width", "seq_len")}
        assert same == {k: v for k, v in y.task.options.items() if k not in ("width", "seq_len")}
        if y.task.options["arch"] == "cnn":
            cnns += 1
            assert 4 <= y.task.options["width"] <= 16 and y.task.options["width"] <= x.task.options["width"]
        else:
            assert y.task.options["width"] == x.task.options["width"]
        assert y.task.options["seq_len"] == (16 if y.task.options["family"] == "seq" else 32)
    assert cnns > 0
    seq = next(d for d in (cheap.draw(b) for _ in range(40)) if d.task.options["family"] == "seq")
    assert tuple(load_synthetic(seq.task).train.inputs.shape[1:]) == (8, 16)


@pytest.mark.parametrize("kwargs", [
    {"lr_range": (0.0, 1e-1)}, {"lr_range": (1e-1, 1e-3)}, {"families": ("imagenet",)}, {"optimizers": ("prodigy",)},
    {"epochs_range": (1, 5)}, {"noise_prob": 1.5}, {"epoch_examples": (0,)}, {"width_range": (16.5, 32)},
    {"cnn_width_range": (16, 4)}, {"seq_len": 2}, {"seq_len": 16.0},
])
def test_bad_distribution_settings_name_the_value(kwargs: dict) -> None:
    key, value = next(iter(kwargs.items()))
    with pytest.raises(ValueError, match=key):
        TaskDistribution(**kwargs)


def test_bad_task_options_raise() -> None:
    with pytest.raises(ValueError, match="colour"):
        synthetic_task("t", colour="red")
    with pytest.raises(ValueError, match="noise"):
        load_synthetic(synthetic_task("t", noise=1.5))
    with pytest.raises(ValueError, match="family"):
        load_synthetic(synthetic_task("t", family="imagenet"))


# -- fine-tunes (options["pretrain"]) -------------------------------------------------------
def _finetune(**options: object) -> Task:
    return synthetic_task("ft", family="teacher", classes=4, n_train=128, data_seed=5, pretrain=2048, **options)


def test_a_finetune_starts_from_one_pretrained_body_and_a_seeded_head() -> None:
    task = _finetune()
    a, b = TrainingSession(task, seed=0, device="cpu").model, TrainingSession(task, seed=1, device="cpu").model
    head = f"{len(a) - 1}."
    body = {k for k in a.state_dict() if not k.startswith(head)}
    assert body and all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in body)  # one body for every run
    assert not torch.equal(a.state_dict()[head + "weight"], b.state_dict()[head + "weight"])  # a fresh head each
    scratch = TrainingSession(synthetic_task("s", family="teacher", classes=4, n_train=128, data_seed=5),
                              seed=0, device="cpu").model
    assert not torch.equal(a.state_dict()["1.weight"], scratch.state_dict()["1.weight"])  # the body was trained
    assert torch.equal(a.state_dict()[head + "weight"], scratch.state_dict()[head + "weight"])  # same seeded head
    assert torch.equal(load_synthetic(task).train.inputs, load_synthetic(synthetic_task(
        "s", family="teacher", classes=4, n_train=128, data_seed=5)).train.inputs)  # the target data is unchanged


TRANSFORMER = {"arch": "transformer", "width": 32, "depth": 1, "seq_len": 16}


@pytest.mark.parametrize("family, pretrain, shape", [("teacher", 4096, {}), ("gmm", 4096, {}),
                                                     ("seq", 2048, TRANSFORMER)])
def test_a_finetune_learns_its_small_target_set_faster_than_training_from_scratch(family: str, pretrain: int,
                                                                                   shape: dict) -> None:
    accs = {}
    for examples in (0, pretrain):
        task = synthetic_task("ft", family=family, classes=4, n_train=128, data_seed=5, pretrain=examples,
                              lr=1e-3, batch_size=16, **shape)
        session = TrainingSession(task, seed=0, device="cpu")
        for _ in range(3):
            session.run_epoch()
        accs[examples] = session.evaluate("test")["acc"]
    assert accs[pretrain] > accs[0] + 0.05, accs


@pytest.mark.parametrize("task", [_finetune(), synthetic_task("ft", family="seq", classes=4, n_train=128, data_seed=5,
                                                              pretrain=512, batch_size=16, lr=1e-3, **TRANSFORMER)],
                         ids=["mlp", "transformer"])
def test_a_population_member_of_a_finetune_starts_and_trains_as_a_session_does(task: Task) -> None:
    """The population trains the transformer too: it holds no dropout modules and runs under torch.vmap."""
    from lrpilot.training.population_trainer import Population

    pop = Population(task, [3, 4], [1e-3, 1e-3], epoch_examples=64)
    session = TrainingSession(task, seed=4, device="cpu", epoch_examples=64)
    for key, value in session.model.state_dict().items():
        assert torch.equal(pop.member_state_dict(1)[key], value), key
    member, alone = pop.run_epoch()[1], session.run_epoch()
    assert member.train_loss == pytest.approx(alone.train_loss, rel=1e-5)
    assert member.val_loss == pytest.approx(alone.val_loss, rel=1e-5) and member.val_acc == alone.val_acc


def test_a_fragile_body_computes_the_same_function_with_a_smaller_first_layer() -> None:
    plain = TrainingSession(_finetune(depth=3), seed=0, device="cpu")
    fragile = TrainingSession(_finetune(depth=3, body_scale=0.03), seed=0, device="cpu")
    a, b = plain.model.state_dict(), fragile.model.state_dict()
    torch.testing.assert_close(b["1.weight"], 0.03 * a["1.weight"])  # Adam moves it 33x as far, relatively
    inputs = plain.data.val.inputs[:64]
    torch.testing.assert_close(fragile.model(inputs), plain.model(inputs), rtol=1e-4, atol=1e-5)


def test_bad_finetune_options_name_the_value() -> None:
    with pytest.raises(ValueError, match="pretrain.*seq"):
        TrainingSession(synthetic_task("t", family="seq", arch="cnn", pretrain=512), seed=0, device="cpu")
    with pytest.raises(ValueError, match="pretrain must be an integer"):
        TrainingSession(synthetic_task("t", pretrain=-1), seed=0, device="cpu")
    with pytest.raises(ValueError, match="body_scale.*needs pretrain > 0"):
        TrainingSession(synthetic_task("t", body_scale=0.1), seed=0, device="cpu")
    with pytest.raises(ValueError, match="body_scale must be"):
        TrainingSession(_finetune(body_scale=0.0), seed=0, device="cpu")
    with pytest.raises(ValueError, match="transformer.*family 'seq'"):
        TrainingSession(synthetic_task("t", family="teacher", arch="transformer"), seed=0, device="cpu")
    with pytest.raises(ValueError, match="body_scale.*arch 'mlp' or 'transformer', got body_scale=0.5, arch='cnn'"):
        TrainingSession(synthetic_task("t", family="seq", arch="cnn", body_scale=0.5), seed=0, device="cpu")


def test_a_fragile_transformer_body_computes_the_same_function_but_learns_differently() -> None:
    """``body_scale`` on a transformer fine-tune shrinks the first feed-forward layer and the query and value
    projections (and grows their partners), so the model's outputs are unchanged, but an epoch of Adam at the same
    LR ends elsewhere; a population member starts and trains as the session does."""
    from lrpilot.training.population_trainer import Population

    options = {**TRANSFORMER, "depth": 2, "family": "seq", "pretrain": 512, "n_train": 64, "data_seed": 5}
    plain = TrainingSession(synthetic_task("t", **options), seed=0, device="cpu", epoch_examples=64)
    task = synthetic_task("t", **options, body_scale=0.03)
    fragile = TrainingSession(task, seed=0, device="cpu", epoch_examples=64)
    a, b = plain.model.state_dict(), fragile.model.state_dict()
    torch.testing.assert_close(b["layers.0.ff1.weight"], 0.03 * a["layers.0.ff1.weight"])
    torch.testing.assert_close(b["layers.1.out.weight"], a["layers.1.out.weight"] / 0.03)
    inputs = plain.data.val.inputs[:64]
    torch.testing.assert_close(fragile.model(inputs), plain.model(inputs), rtol=1e-4, atol=1e-4)
    pop = Population(task, [0], [1e-3], epoch_examples=64)
    for key, value in b.items():
        torch.testing.assert_close(pop.member_state_dict(0)[key], value)
    member, alone, unscaled = pop.run_epoch()[0], fragile.run_epoch(), plain.run_epoch()
    assert member.val_loss == pytest.approx(alone.val_loss, rel=1e-4)
    assert alone.val_loss != pytest.approx(unscaled.val_loss, rel=1e-3)  # the same function learns differently


def test_finetune_draws_are_pretrained_transformers_of_the_seq_family() -> None:
    """``finetune_prob`` turns that share of the ``seq`` draws into fine-tunes of a pretrained transformer (the
    fixed shape of ``FINETUNE_DRAW``, batches of 16, a whole 128-example train split per epoch, few data seeds);
    the other families' draws stay as they were."""
    from lrpilot.training.distribution import FINETUNE_BATCH, FINETUNE_DATA_SEEDS, FINETUNE_DRAW

    dist = TaskDistribution(families=("teacher", "seq"), finetune_prob=0.5, seq_len=16)
    rng = np.random.default_rng(0)
    draws = [dist.draw(rng) for _ in range(80)]
    tunes = [d for d in draws if d.task.options["pretrain"]]
    seq = [d for d in draws if d.task.options["family"] == "seq"]
    assert 0.25 < len(tunes) / len(seq) < 0.75 and any(d.task.options["family"] == "teacher" for d in draws)
    for d in tunes:
        options = d.task.options
        assert {k: options[k] for k in FINETUNE_DRAW} == FINETUNE_DRAW and options["seq_len"] == 16
        assert d.task.batch_size == FINETUNE_BATCH and d.epoch_examples == FINETUNE_DRAW["n_train"]
        assert options["data_seed"] < FINETUNE_DATA_SEEDS and d.task.name.endswith("seq-transformer-finetune")
    assert {d.task.optimizer for d in tunes} == {"adam", "adamw", "sgd"}
    assert all(d.task.options["arch"] in ("mlp", "cnn") for d in draws if d not in tunes)


def test_cliff_finetune_draws_are_deeper_smaller_and_take_smaller_batches() -> None:
    """``finetune_shape="cliff"`` draws the fine-tune that falls to chance from 10x its best LR: the transformer of
    ``FINETUNE_DRAW`` at depth 4, fine-tuned on 64 sequences (all of them each epoch) in batches of 8; the other
    draws are the same as with the default shape."""
    kwargs = {"families": ("teacher", "seq"), "finetune_prob": 0.5, "seq_len": 16}
    cliff_dist, plain_dist = TaskDistribution(**kwargs, finetune_shape="cliff"), TaskDistribution(**kwargs)
    cliff_rng, plain_rng = np.random.default_rng(3), np.random.default_rng(3)
    cliff = [cliff_dist.draw(cliff_rng) for _ in range(40)]
    plain = [plain_dist.draw(plain_rng) for _ in range(40)]
    tunes = [(c, p) for c, p in zip(cliff, plain) if c.task.options["pretrain"]]
    assert tunes and all(p.task.options["pretrain"] for _, p in tunes)  # the same draws are fine-tunes
    for c, p in tunes:
        assert (c.task.options["depth"], c.task.options["n_train"], c.task.batch_size, c.epoch_examples) == \
               (4, 64, 8, 64)
        assert (p.task.options["depth"], p.task.options["n_train"], p.task.batch_size) == (2, 128, 16)
        assert c.task.optimizer == p.task.optimizer and c.task.options["width"] == p.task.options["width"] == 32
    assert [c.task for c, p in zip(cliff, plain) if not p.task.options["pretrain"]] == \
           [p.task for p in plain if not p.task.options["pretrain"]]
    with pytest.raises(ValueError, match="finetune_shape must be one of .*'cliff'.*got 'sheer'"):
        TaskDistribution(finetune_shape="sheer")


def test_steep_finetune_draws_are_the_cliff_draws_with_a_fragile_body() -> None:
    """``finetune_shape="steep"`` (MiniLM's window of good LRs) draws exactly the cliff fine-tunes, with
    ``body_scale`` 0.03; every other draw is unchanged."""
    kwargs = {"families": ("teacher", "seq"), "finetune_prob": 0.5, "seq_len": 16}
    steep_rng, cliff_rng = np.random.default_rng(4), np.random.default_rng(4)
    steep = [TaskDistribution(**kwargs, finetune_shape="steep").draw(steep_rng) for _ in range(40)]
    cliff = [TaskDistribution(**kwargs, finetune_shape="cliff").draw(cliff_rng) for _ in range(40)]
    assert any(s.task.options["pretrain"] for s in steep)
    for s, c in zip(steep, cliff):
        fine = bool(c.task.options["pretrain"])
        assert s.task.options == ({**c.task.options, "body_scale": 0.03} if fine else c.task.options)
        assert (s.task.batch_size, s.epoch_examples, s.task.optimizer) == \
               (c.task.batch_size, c.epoch_examples, c.task.optimizer)


def test_finetune_draws_start_from_their_own_lr_range_and_other_draws_are_unchanged() -> None:
    """``finetune_lr_range`` sets the initial LRs of the fine-tune draws only (as practitioners fine-tune near their
    model's good LRs): each falls in it, they spread over it, and every other draw, LR included, is the one the
    distribution without it makes."""
    kwargs = {"families": ("teacher", "seq"), "finetune_prob": 0.5, "seq_len": 16, "finetune_shape": "steep"}
    narrow_rng, plain_rng = np.random.default_rng(5), np.random.default_rng(5)
    narrow = [TaskDistribution(**kwargs, finetune_lr_range=(1e-5, 1e-3)).draw(narrow_rng) for _ in range(120)]
    plain = [TaskDistribution(**kwargs).draw(plain_rng) for _ in range(120)]
    tunes = [n.lr for n in narrow if n.task.options["pretrain"]]
    assert len(tunes) >= 10 and all(1e-5 <= lr <= 1e-3 for lr in tunes)
    assert min(tunes) < 1e-4 < max(tunes)  # log-uniform over the range, not a point
    assert max(p.lr for p in plain if p.task.options["pretrain"]) > 1e-3  # the whole range otherwise
    others = [(n, p) for n, p in zip(narrow, plain) if not p.task.options["pretrain"]]
    assert others and all(n == p for n, p in others)
    with pytest.raises(ValueError, match="finetune_lr_range must be a pair"):
        TaskDistribution(finetune_lr_range=(1e-3, 1e-5))


def test_val_examples_sets_every_generated_draws_validation_split_and_nothing_else() -> None:
    """``val_examples`` (cheaper training): every draw, fine-tunes included, validates on that many examples; the
    tasks, LRs and budgets are otherwise the ones the distribution without it draws (the generated examples are
    drawn as one set, so which examples each split holds may differ)."""
    kwargs = {"families": ("teacher", "gmm", "seq"), "finetune_prob": 0.5, "seq_len": 16, "finetune_shape": "steep"}
    cheap_rng, plain_rng = np.random.default_rng(6), np.random.default_rng(6)
    cheap = [TaskDistribution(**kwargs, val_examples=128).draw(cheap_rng) for _ in range(40)]
    plain = [TaskDistribution(**kwargs).draw(plain_rng) for _ in range(40)]
    assert any(p.task.options["pretrain"] for p in plain) and any(not p.task.options["pretrain"] for p in plain)
    for c, p in zip(cheap, plain):
        assert c.task.options == {**p.task.options, "n_val": 128}
        assert (c.lr, c.epochs, c.epoch_examples, c.task.batch_size) == (p.lr, p.epochs, p.epoch_examples,
                                                                        p.task.batch_size)
    pairs = list(zip(cheap, plain))
    for c, p in [pair for pair in pairs if pair[1].task.options["pretrain"]][:1] + pairs[:3]:
        data, plain_data = c.task.load_data(c.task, None), p.task.load_data(p.task, None)
        assert (len(data.val), len(plain_data.val), len(data.train)) == (128, 512, len(plain_data.train))
    with pytest.raises(ValueError, match="val_examples must be an integer in"):
        TaskDistribution(val_examples=4)


def test_a_finetune_draw_plays_in_a_population(monkeypatch: pytest.MonkeyPatch) -> None:
    """A population group trains a fine-tune draw (here with a smaller source set, to keep the test short): the
    members start from one pretrained body, and their episodes report finite metrics."""
    from lrpilot.envs.population import PopulationGymVectorEnv
    from lrpilot.training import distribution

    monkeypatch.setitem(distribution.FINETUNE_DRAW, "pretrain", 256)
    monkeypatch.setitem(distribution.FINETUNE_DRAW, "width", 8)
    dist = TaskDistribution(families=("seq",), finetune_prob=1.0, seq_len=8, epochs_range=(2, 3),
                            finetune_lr_range=(1e-5, 1e-4))
    venv = PopulationGymVectorEnv(num_envs=4, groups=2, distribution=dist, group_lifetime=None)
    try:
        _, infos = venv.reset(seed=1)
        tasks = venv.core.group_tasks()
        assert all(t.options["arch"] == "transformer" and t.options["pretrain"] == 256 for t in tasks)
        assert all(1e-5 <= lr <= 1e-4 for lr in infos["initial_lr"])  # the members' LRs: the fine-tunes' range
        obs, rewards, *_ = venv.step(np.full(4, 2))
    finally:
        venv.close()
    assert np.isfinite(obs).all() and np.isfinite(rewards).all()


@pytest.mark.parametrize("kwargs", [{"finetune_prob": 1.5}, {"finetune_prob": True},
                                    {"finetune_prob": 0.2, "families": ("teacher", "gmm")}])
def test_bad_finetune_settings_name_the_value(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="finetune_prob"):
        TaskDistribution(**kwargs)
