"""GPU fast paths that run (and are checked) on a CPU: length-grouped batches and torch.compile."""

from __future__ import annotations


import pytest
import torch
from fixtures import saved_and_loaded
from torch import nn

from lrpilot.training import Task, TrainingSession, get_task
from lrpilot.training.data import TensorSplit, iter_batches, length_grouped_order, sequence_lengths
from lrpilot.training.text import token_splits


# -- length-grouped order -----------------------------------------------------------
def _lengths(n=1000, seed=0, longest=256):
    return torch.randint(1, longest + 1, (n,), generator=torch.Generator().manual_seed(seed))


def test_grouped_order_is_a_permutation_of_the_plain_epochs_examples():
    lengths = _lengths()
    for limit in (None, 300):
        grouped = length_grouped_order(lengths, 32, torch.Generator().manual_seed(4), limit=limit, chunk_batches=5)
        plain = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(4))[:limit]
        assert sorted(grouped.tolist()) == sorted(plain.tolist())  # the same examples, each once


def test_grouped_batches_have_similar_lengths_and_a_random_order():
    lengths = _lengths()
    gen = torch.Generator().manual_seed(0)
    order = length_grouped_order(lengths, 32, gen, chunk_batches=10)
    widest = torch.stack([lengths[b].max() for b in order.split(32)]).float().mean()
    random_widest = torch.stack([lengths[b].max() for b in torch.randperm(1000).split(32)]).float().mean()
    assert widest < 0.75 * random_widest
    spreads = [int(lengths[b].max() - lengths[b].min()) for b in order.split(32) if len(b) == 32]
    assert max(spreads) < 128  # a batch never spans the whole range of lengths
    firsts = [int(lengths[b].max()) for b in order.split(32)]
    assert firsts != sorted(firsts, reverse=True)  # batches are shuffled, not longest first
    again = length_grouped_order(lengths, 32, gen, chunk_batches=10)
    assert not torch.equal(order, again)  # the next epoch draws a new order


def test_grouped_order_repeats_from_the_same_generator_state():
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    first = length_grouped_order(_lengths(), 16, gen)
    gen.set_state(state)
    assert torch.equal(first, length_grouped_order(_lengths(), 16, gen))


@pytest.mark.parametrize("kwargs, message", [({"batch_size": 0}, "batch_size"), ({"chunk_batches": 0}, "chunk_batches"),
                                             ({"lengths": torch.ones(3, 2)}, "1-D")])
def test_grouped_order_rejects_bad_arguments(kwargs, message):
    args = {"lengths": _lengths(10), "batch_size": 4, "generator": torch.Generator()} | kwargs
    with pytest.raises(ValueError, match=message):
        length_grouped_order(**args)


def test_eval_batches_with_lengths_go_longest_first():
    split = TensorSplit({"input_ids": torch.zeros(5, 4), "attention_mask": torch.tensor(
        [[1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]])}, torch.arange(5))
    lengths = sequence_lengths(split)
    assert lengths.tolist() == [1, 4, 2, 3, 1]
    labels = torch.cat([y for _, y in iter_batches(split, 2, lengths=lengths)])
    assert labels.tolist() == [1, 3, 2, 0, 4]
    with pytest.raises(ValueError, match="attention_mask"):
        sequence_lengths(TensorSplit(torch.zeros(3, 2), torch.arange(3)))


# -- a small text task that asks for grouping -------------------------------------------
class BagOfEmbeddings(nn.Module):
    """Mean token embedding -> linear; remembers the sequence width of every training batch."""

    def __init__(self, vocab: int, classes: int) -> None:
        super().__init__()
        self.embed, self.head, self.widths = nn.Embedding(vocab, 16), nn.Linear(16, classes), []

    def forward(self, input_ids, attention_mask):
        if self.training:
            self.widths.append(input_ids.shape[1])
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))


def _token_split(n, seed, width=64, vocab=50):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, width + 1, (n,), generator=gen)
    mask = (torch.arange(width) < lengths[:, None]).to(torch.int8)
    ids = torch.randint(1, vocab, (n, width), generator=gen, dtype=torch.int32) * mask
    return TensorSplit({"input_ids": ids, "attention_mask": mask}, (lengths > width // 2).long())


def _text_task(group: bool) -> tuple[Task, object]:
    task = Task(name="test-grouped-text", load_data=lambda t, d: None, build_model=lambda t, d: BagOfEmbeddings(50, 2),
                batch_size=16, eval_batch_size=32, lr=1e-2, options={"group_by_length": group})
    data = token_splits(task, _token_split(256, 0), _token_split(64, 1), _token_split(64, 2), 2)
    return task, data


def _history(session, epochs):
    return [session.run_epoch().to_dict() | {"seconds": 0} for _ in range(epochs)]


def test_grouped_session_trims_more_padding_and_learns():
    widths = {}
    for group in (False, True):
        task, data = _text_task(group)
        session = TrainingSession(task, seed=0, device="cpu", data=data)
        history = _history(session, 3)
        widths[group] = sum(session.model.widths) / len(session.model.widths)
        assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert widths[True] < 0.8 * widths[False]


def test_grouped_session_resumes_exactly():
    task, data = _text_task(True)
    full = TrainingSession(task, seed=3, device="cpu", data=data)
    expected = _history(full, 3)
    first = TrainingSession(task, seed=3, device="cpu", data=data)
    head = _history(first, 1)
    resumed = TrainingSession(task, seed=0, device="cpu", data=data)
    resumed.load_state_dict(saved_and_loaded(first.state_dict()))
    assert head + _history(resumed, 2) == expected


def test_group_by_length_option_must_be_a_bool():
    task, _ = _text_task(True)
    with pytest.raises(ValueError, match="group_by_length must be True or False, got 'yes'"):
        token_splits(task.with_overrides(group_by_length="yes"), *([_token_split(8, 0)] * 3), 2)
    assert get_task("imdb-bert").options["group_by_length"] is True


# -- torch.compile ------------------------------------------------------------------------
@pytest.fixture()
def aot_eager(monkeypatch):
    """torch.compile with the aot_eager backend: traces forward and backward like inductor, compiles in seconds."""
    real, calls = torch.compile, []

    def compile_(fn, **kwargs):
        calls.append(kwargs)
        return real(fn, backend="aot_eager", dynamic=kwargs.get("dynamic"))

    monkeypatch.setattr(torch, "compile", compile_)
    yield calls
    torch._dynamo.reset()


def test_compiled_session_keeps_clean_keys_and_resumes_either_way(aot_eager):
    plain = TrainingSession("digits-cnn", seed=2, device="cpu", epoch_examples=256)
    expected = _history(plain, 3)
    compiled = TrainingSession("digits-cnn", seed=2, device="cpu", epoch_examples=256, compile=True)
    assert compiled.compiled and aot_eager == [{"mode": None, "dynamic": False}]
    head = _history(compiled, 2)
    state = saved_and_loaded(compiled.state_dict())
    assert list(state["model"]) == list(plain.state_dict()["model"])  # no _orig_mod. prefixes
    resumed = TrainingSession("digits-cnn", seed=0, device="cpu", epoch_examples=256)  # uncompiled resume
    resumed.load_state_dict(state)
    history = head + _history(resumed, 1)
    for got, want in zip(history, expected):
        assert got == pytest.approx(want, rel=1e-4)
    again = TrainingSession("digits-cnn", seed=0, device="cpu", epoch_examples=256,
                            compile="max-autotune-no-cudagraphs")
    again.load_state_dict(saved_and_loaded(resumed.state_dict()))  # and into a compiled session
    assert again.evaluate("test") == pytest.approx(resumed.evaluate("test"), rel=1e-5)


def test_compile_is_off_on_cpu_by_default_and_validated():
    assert TrainingSession("digits-mlp", seed=0, device="cpu").compiled is False
    with pytest.raises(ValueError, match="compile must be .* got 'fast'"):
        TrainingSession("digits-mlp", seed=0, device="cpu", compile="fast")
    assert get_task("cifar10-resnet18").eval_batch_size >= 1024
