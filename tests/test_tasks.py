"""The paper's tasks: exact sizes, disjoint splits, symmetric random labels, determinism."""

import torch

from grokterm.config import RunConfig
from grokterm.experiment.tasks import ADD, MEM, make_data

P = 23


def pairs(x: torch.Tensor) -> set[tuple[int, ...]]:
    return {tuple(row) for row in x.tolist()}


def test_addition_split_sizes_and_disjoint():
    data = make_data(RunConfig(p=P, n_train=200, seed=3))
    assert len(data.train) == 200 and len(data.val) == P * P - 200
    assert not pairs(data.train.x) & pairs(data.val.x)
    assert len(pairs(data.train.x) | pairs(data.val.x)) == P * P
    x, y = data.train.x, data.train.y
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % P)
    assert (x[:, 2] == P).all()  # `=` is token p
    assert data.vocab == P + 1 and data.seq_len == 3


def test_square_task_labels():
    data = make_data(RunConfig(task="square", p=P, n_train=100))
    x = data.val.x
    assert torch.equal(data.val.y, (x[:, 0] + x[:, 1]) ** 2 % P)


def test_sub_mul_div_labels_and_division_leaves_out_zero():
    for task, op in [("sub", lambda a, b: (a - b) % P), ("mul", lambda a, b: a * b % P)]:
        data = make_data(RunConfig(task=task, p=P, n_train=100))
        assert torch.equal(data.val.y, op(data.val.x[:, 0], data.val.x[:, 1]))
    data = make_data(RunConfig(task="div", p=P, train_fraction=0.5, seed=4))
    x = torch.cat([data.train.x, data.val.x])
    y = torch.cat([data.train.y, data.val.y])
    assert len(pairs(x)) == P * (P - 1) and (x[:, 1] != 0).all()
    assert len(data.train) == round(0.5 * P * (P - 1))
    assert torch.equal(y * x[:, 1] % P, x[:, 0])  # c = a / b exactly when c * b = a


def test_minibatches_cover_each_epoch_once_and_depend_on_the_seed_alone():
    from grokterm.experiment.tasks import batch_indices

    cfg = RunConfig(p=P, n_train=200, batch_size=64, seed=5)
    epoch = [batch_indices(cfg, 200, s) for s in range(4)]  # 64, 64, 64, 8
    assert [len(b) for b in epoch] == [64, 64, 64, 8]
    assert sorted(torch.cat(epoch).tolist()) == list(range(200))
    assert not torch.equal(batch_indices(cfg, 200, 4), epoch[0])  # a fresh shuffle
    assert torch.equal(batch_indices(cfg, 200, 2), epoch[2])
    other = RunConfig(p=P, n_train=200, batch_size=64, seed=6)
    assert not torch.equal(batch_indices(other, 200, 0), epoch[0])


def test_same_seed_same_data_other_seed_other_data():
    a = make_data(RunConfig(p=P, n_train=150, seed=1))
    b = make_data(RunConfig(p=P, n_train=150, seed=1))
    c = make_data(RunConfig(p=P, n_train=150, seed=2))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.x, b.val.x)
    assert not torch.equal(a.train.x, c.train.x)


def test_larger_training_set_extends_smaller_one_for_same_seed():
    small = make_data(RunConfig(p=P, n_train=100, seed=5))
    large = make_data(RunConfig(p=P, n_train=300, seed=5))
    assert torch.equal(large.train.x[:100], small.train.x)


def test_memorization_labels_symmetric_and_cover_all_pairs():
    data = make_data(RunConfig(task="memorize", p=P, n_train=P * P, seed=4))
    assert data.val is None and len(data.train) == P * P
    label = {(a, b): y for (a, b, _), y in zip(data.train.x.tolist(), data.train.y.tolist())}
    assert all(label[(a, b)] == label[(b, a)] for a in range(P) for b in range(P))
    # random, not the addition table
    assert sum(label[(a, b)] == (a + b) % P for a in range(P) for b in range(P)) < P * P / 4
    other = make_data(RunConfig(task="memorize", p=P, n_train=P * P, seed=5))
    assert not torch.equal(data.train.y, other.train.y)


def test_multitask_inputs_never_overlap_and_groups_are_marked():
    data = make_data(RunConfig(task="multitask", p=P, n_train=120, n_mem=200, seed=0))
    train, val = data.train, data.val
    add, mem = train.x[train.group == ADD], train.x[train.group == MEM]
    assert len(add) == 120 and len(mem) == 200 and len(val) == P * P - 120
    assert (add[:, 1] == P + 1).all() and (mem[:, 1] == P + 2).all()  # `+` and `-`
    assert not pairs(add) & pairs(mem)
    assert not pairs(add) & pairs(val.x)
    assert (val.group == ADD).all() and (val.x[:, 1] == P + 1).all()
    add_y = train.y[train.group == ADD]
    assert torch.equal(add_y, (add[:, 0] + add[:, 2]) % P)
    assert data.vocab == P + 3 and data.seq_len == 4
