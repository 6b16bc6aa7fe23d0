"""Training recipes: optimizer, epochs and the learning-rate / S_tanh schedules.

Schedules are per epoch. During the first ``warmup_epochs`` the learning rate rises linearly to
``lr`` and S_tanh rises linearly from ``s_tanh_start`` to ``s_tanh``; afterwards, at every
milestone the learning rate is multiplied by ``gamma`` and S_tanh is doubled (the paper's rule:
a sharper tanh as the steps get smaller, so the surrogate approaches the true XOR).

``cifar10-resnet20`` follows the ResNet-20 CIFAR-10 setting of the FleXOR paper (Lee et al.,
NeurIPS 2020): Nout 20, Ntap 2, Nin 8/12/16/20, SGD with learning rate 0.1, 500 epochs, warm-up
of the learning rate and S_tanh. Values the paper does not fix are this implementation's choices
and are marked ``# choice``.
"""

from dataclasses import asdict, dataclass, field, replace

__all__ = ["Recipe", "RECIPES", "learning_rate", "s_tanh", "with_epochs"]


@dataclass(frozen=True)
class Recipe:
    """Everything about a training run except the weight scheme and the seed."""

    dataset: str
    model: str
    epochs: int
    batch_size: int
    optimizer: str            # "adam" or "sgd"
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_epochs: int = 0
    milestones: tuple = ()
    gamma: float = 0.1
    s_tanh_start: float = 5.0
    s_tanh: float = 10.0
    augment: bool = False     # random crop (pad 4) and horizontal flip, for CIFAR-10
    nout: int = 10
    ntap: int = 2
    nin: tuple = (8,)
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        return asdict(self)


RECIPES = {
    # Digits: tuned here for seconds of CPU time; Adam converges in a few hundred steps.
    "digits-mlp": Recipe(dataset="digits", model="mlp", epochs=60, batch_size=64,
                         optimizer="adam", lr=0.01, warmup_epochs=5, milestones=(30, 45),
                         gamma=0.1, s_tanh_start=5.0, s_tanh=10.0),
    "digits-cnn": Recipe(dataset="digits", model="cnn", epochs=40, batch_size=64,
                         optimizer="adam", lr=0.01, warmup_epochs=3, milestones=(20, 30),
                         gamma=0.1, s_tanh_start=5.0, s_tanh=10.0),
    # Fashion-MNIST 784-W-W-10: Adam, a short warm-up, two decays (epochs set per run).
    "fashion-mnist-mlp": Recipe(dataset="fashion-mnist", model="mlp", epochs=20, batch_size=128,
                                optimizer="adam", lr=0.003, warmup_epochs=1, milestones=(12, 17),
                                gamma=0.1, s_tanh_start=5.0, s_tanh=10.0,
                                extra={"inputs": 784, "depth": 1, "width": 256}),
    "cifar10-resnet20": Recipe(
        dataset="cifar10", model="resnet20", epochs=500, batch_size=128, optimizer="sgd",
        lr=0.1, momentum=0.9,
        weight_decay=1e-5,                   # choice
        warmup_epochs=100,                   # choice: length of the LR / S_tanh warm-up
        milestones=(150, 300, 400),          # choice
        gamma=0.5,                           # choice
        s_tanh_start=5.0, s_tanh=10.0,       # choice
        augment=True, nout=20, ntap=2, nin=(16,),
        extra={"nin_grid": [8, 12, 16, 20]}),
}


def with_epochs(recipe, epochs):
    """``recipe`` run for ``epochs``, its milestones moved to the same fractions of the run."""
    milestones = tuple(round(m * epochs / recipe.epochs) for m in recipe.milestones)
    return replace(recipe, epochs=epochs, milestones=milestones)


def _decays(recipe, epoch):
    return sum(1 for milestone in recipe.milestones if epoch >= milestone)


def learning_rate(recipe, epoch):
    """Learning rate of ``epoch`` (0-based)."""
    if epoch < recipe.warmup_epochs:
        return recipe.lr * (epoch + 1) / recipe.warmup_epochs
    return recipe.lr * recipe.gamma ** _decays(recipe, epoch)


def s_tanh(recipe, epoch):
    """S_tanh of ``epoch``: linear warm-up, then doubled at every learning-rate decay."""
    if epoch < recipe.warmup_epochs:
        fraction = (epoch + 1) / recipe.warmup_epochs
        return recipe.s_tanh_start + (recipe.s_tanh - recipe.s_tanh_start) * fraction
    return recipe.s_tanh * 2.0 ** _decays(recipe, epoch)
