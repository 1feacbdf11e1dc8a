"""Image generation with a GAN: its own data flow, its two-player step, sample grids and health warnings.

`--task generate --model gan` (or `--model gan` alone, or `--task generate` on image data) lands here. The
one training loop calls `step` for each batch, which goes through the loop's backward, clipping and update
twice (the discriminator, then the generator); both networks share the loop's optimizer (Adam, beta1 = 0.5),
one parameter group each, so its state, and so both players' state, is in every checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, RunError, say
from .base import Task
from .sampling import save_grid

DEFAULT_LR = 2e-4
DEFAULT_WIDTH = 32
MAX_CLUSTERS = 200  # self-conditioning: k-means clusters of the training images (fewer for small data)
IMAGES_PER_CLUSTER = 100


class GenerateImages(Task):
    """Learn to generate images like the training images, optionally conditional on their class."""

    name = "gan"
    monitor = ("g_loss", "min")
    evaluation_note = ("a GAN has no test metrics to evaluate (it is judged by its samples); look at them with "
                       "`layerwise sample RUN --out grid.png`, or see samples.png and the per-epoch d_loss, g_loss "
                       "and diversity in the run's metrics.jsonl.")

    def __init__(self, conditional: bool = False, classes: list | None = None, clusters: int = 0):
        self.conditional, self.classes, self.clusters = conditional, classes, clusters

    @property
    def out_dim(self) -> int:
        """The number of classes the networks are conditioned on (0: unconditional)."""
        return len(self.classes) if self.conditional and self.classes else 0

    # ---- targets: class labels, used only by a conditional GAN
    def fit(self, y: np.ndarray | None) -> np.ndarray:
        if not self.conditional:
            return np.zeros(0 if y is None else len(y), dtype=np.int64)
        values = np.unique(np.asarray(y).astype(str) if np.asarray(y).dtype == object else y)
        if values.size < 2:
            raise DataError("a conditional GAN needs at least two classes in the labels; drop --conditional.")
        self.classes = [v.item() if hasattr(v, "item") else v for v in values]
        return self.encode(y)

    def encode(self, y: np.ndarray) -> np.ndarray:
        index = {_key(c): i for i, c in enumerate(self.classes or [])}
        return np.fromiter((index.get(_key(v), -1) for v in np.asarray(y)), dtype=np.int64, count=len(y))

    def class_index(self, label: Any) -> int:
        """The index of a class given as its value or its text (e.g. 7 or "7"); a clear error otherwise."""
        if not self.out_dim:
            raise ConfigError("this GAN is unconditional, so it cannot draw a chosen label; train one with "
                              "--conditional, or sample without --label.")
        index = {_key(c): i for i, c in enumerate(self.classes)}
        if _key(label) not in index:
            shown = ", ".join(str(c) for c in self.classes[:20]) + (", ..." if len(self.classes) > 20 else "")
            raise ConfigError(f"label {label!r} is not one of the classes this GAN was trained on ({shown}); "
                              "pick one of those.")
        return index[_key(label)]

    # ---- the interface every task has; a GAN has no loss on held-out data
    def loss(self, out, y):
        raise RunError("a GAN has no test loss; look at its samples with `layerwise sample RUN`.")

    def metrics(self, out, y) -> dict[str, float]:
        return {}

    def decode(self, out) -> dict[str, Any]:
        return {"prediction": out}

    def to_dict(self) -> dict:
        return {"name": self.name, "conditional": self.conditional, "classes": self.classes,
                "clusters": self.clusters}

    @classmethod
    def from_dict(cls, d: dict) -> GenerateImages:
        return cls(d.get("conditional", False), d.get("classes"), d.get("clusters", 0))

    def describe(self) -> str:
        if self.out_dim:
            return f"generate images (GAN, conditional on {self.out_dim} classes)"
        if self.clusters:
            return f"generate images (GAN, self-conditioned on {self.clusters} clusters of the images)"
        return "generate images (GAN)"

    # ---- hooks the training entry point uses
    @classmethod
    def prepare(cls, cfg, data, quiet: bool = False):
        """All training images, scaled to [-1, 1]; no validation or test split (a GAN is judged by samples)."""
        from ..config import fill_defaults
        from ..data import Prepared, Split
        from ..data.arrays import ArrayPre
        from ..models.gan import _halvings

        if cfg.task not in (None, "generate"):
            raise ConfigError(f"model gan generates images, it cannot {cfg.task}; use --task generate.")
        if data.kind != "image":
            raise DataError(f"a GAN generates images but the data is a {data.kind}; give images (a folder, "
                            "an .npz of images, or mnist).")
        cfg.task, cfg.model = "generate", "gan"
        fill_defaults(cfg, {"schedule": "constant"})  # the DCGAN recipe: a constant learning rate
        x = data.x
        try:
            _halvings(x.shape[1], x.shape[2])
        except ValueError:
            raise ConfigError(f"a GAN cannot make {x.shape[1]}x{x.shape[2]} images; resize them with "
                              "--image-size 28 or 32.") from None
        if cfg.conditional and data.y is None:
            raise DataError("--conditional needs class labels; give labelled images or drop --conditional.")
        if cfg.conditional and cfg.clusters:
            raise ConfigError("--clusters conditions an unconditional GAN on clusters of its images, and "
                              "--conditional on the labels; drop one of them.")
        task = cls(conditional=cfg.conditional)
        y = task.fit(data.y)
        if x.dtype == np.uint8:
            scale, lo, hi = 1 / 255, 0.0, 1.0
        else:
            scale, lo, hi = 1.0, float(x.min()), float(x.max())
            hi = hi if hi > lo else lo + 1.0
        c = x.shape[3]
        pre = ArrayPre("image", [c, x.shape[1], x.shape[2]], [(lo + hi) / 2] * c, [(hi - lo) / 2] * c, scale)
        if data.test is not None:
            say(f"note: the GAN trains on the {len(x)} training images; the {len(data.test)} test images "
                "are not used.", quiet)
        inputs = pre.transform(x)
        if not cfg.conditional:
            k = min(MAX_CLUSTERS, len(x) // IMAGES_PER_CLUSTER) if cfg.clusters is None else cfg.clusters
            k = cfg.clusters = k if k >= 2 else 0
            if k > len(x):
                raise ConfigError(f"--clusters {k} is more than the {len(x)} training images; give fewer "
                                  "(about one per 100 images), or 0 for a plain GAN.")
            if k:
                t = time.perf_counter()
                y = image_clusters(inputs[0], k, cfg.seed)
                task.clusters = k
                say(f"self-conditioning: the GAN is conditioned on {k} k-means clusters of the training "
                    f"images, no labels used ({time.perf_counter() - t:.0f} s; --clusters 0 turns it off)", quiet)
        return Prepared(pre, task, Split(inputs, y, np.arange(len(x))), None, None)

    def optimizer(self, model, cfg):
        """Adam(beta1 = 0.5) with one parameter group per player (DCGAN settings)."""
        import torch

        lr = cfg.lr or DEFAULT_LR
        return torch.optim.Adam([{"params": list(model.generator.parameters()), "name": "generator"},
                                 {"params": list(model.discriminator.parameters()), "name": "discriminator"}],
                                lr=lr, betas=(0.5, 0.999), foreach=True)

    def step(self, loop) -> None:
        """One discriminator update, then one generator update, on the loop's batch of real images; each goes
        through the loop's backward, gradient clipping and optimizer step (the other player has no gradient,
        so the shared optimizer leaves it as it is)."""
        import torch

        gan = loop.model
        G, D, real = gan.generator, gan.discriminator, loop.inputs[0]
        labels = loop.y if self.out_dim or self.clusters else None
        z = torch.randn(real.shape[0], G.z_dim).to(real.device)
        d_loss, fake, logits_real, logits_fake = discriminator_loss(G, D, real, labels, z, loop.autocast)
        loop.loss = d_loss
        loop.backward_and_step()
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        try:
            loop.loss = g_loss = generator_loss(D, fake, labels, loop.autocast)
            loop.backward_and_step()
        finally:
            D.requires_grad_(True)
        loop.stats = gan_stats(d_loss, g_loss, logits_real, logits_fake)
        gan.update_ema(loop.step)
        loop.loss = torch.tensor(loop.stats["g_loss"])

    def callbacks(self, cfg, run_dir: Path) -> list:
        return [GanMonitor(Path(run_dir), cfg.seed, self.out_dim)]

    # ---- the verbs of a finished run: samples (tasks/sampling.py)
    def sample(self, run, n: int = 64, label: Any = None, seed: int = 0, truncation: float | None = None):
        from .sampling import sample

        return sample(run, n, label, seed, truncation)

    def save_samples(self, run, out, n: int = 64, label: Any = None, seed: int = 0,
                     truncation: float | None = None):
        from .sampling import save_samples

        return save_samples(run, out, n, label, seed, truncation)


def image_clusters(x: np.ndarray, k: int, seed: int = 0, fit_on: int = 20_000) -> np.ndarray:
    """k-means cluster ids [N] of images [N, C, H, W]: PCA to 50 dimensions, then k-means (scikit-learn),
    both fitted on at most `fit_on` of the images."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    flat = x.reshape(len(x), -1)
    rng = np.random.default_rng(seed)
    sub = flat[np.sort(rng.choice(len(flat), fit_on, replace=False))] if len(flat) > fit_on else flat
    pca = PCA(min(50, *sub.shape), random_state=seed).fit(sub)
    km = KMeans(k, n_init=3, random_state=seed).fit(pca.transform(sub))
    return np.concatenate([km.predict(pca.transform(flat[i:i + 10_000]))
                           for i in range(0, len(flat), 10_000)]).astype(np.int64)


def _key(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    return str(v).strip()


class GanMonitor:
    """A loop callback for per-epoch GAN health: mean losses and D's scores, sample diversity, a sample grid
    (PNG + TensorBoard), and plain-words warnings on mode collapse or a discriminator that wins outright."""

    KEYS = ("d_loss", "g_loss", "d_real", "d_fake")

    def __init__(self, run_dir: Path, seed: int, n_classes: int, n_grid: int = 64, n_diversity: int = 200):
        self.run_dir, self.seed, self.n_classes = run_dir, seed, n_classes
        self.n_grid = 100 if n_classes and n_classes <= 10 else n_grid
        self.n_diversity = n_diversity
        self.sums = dict.fromkeys(self.KEYS, 0.0)
        self.count, self.warned = 0, []

    def on_fit_start(self, loop) -> None:
        import torch

        g = torch.Generator().manual_seed(self.seed + 12345)  # fixed noise: grids are comparable across epochs
        n = max(self.n_grid, self.n_diversity)
        self.z = torch.randn(n, loop.model.z_dim, generator=g)
        self.labels = torch.arange(n) % self.n_classes if self.n_classes else None
        self.z_labels = self.labels
        if getattr(loop.model, "clusters", 0):  # self-conditioned: clusters drawn as often as they hold images
            counts = torch.bincount(loop.train_y.cpu(), minlength=loop.model.clusters).float()
            loop.model.cluster_prior.copy_(counts / counts.sum())
            self.z_labels = loop.model.draw_clusters(n, g)

    def on_batch_end(self, loop) -> None:
        for k in self.KEYS:
            self.sums[k] += loop.stats[k]
        self.count += 1

    def on_epoch_end(self, loop) -> None:
        import torch

        h = loop.history[-1]
        h.update({k: v / max(1, self.count) for k, v in self.sums.items()})
        self.sums, self.count = dict.fromkeys(self.KEYS, 0.0), 0
        model = loop.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            labels = None if self.z_labels is None else self.z_labels.to(loop.device)
            images = model(self.z.to(loop.device), labels).float().cpu()
        model.train(was_training)
        if self.labels is None:
            h["diversity"] = sample_diversity(images[:self.n_diversity])
        else:  # within-class diversity: a conditional GAN can collapse inside each class
            h["diversity"] = float(np.mean([sample_diversity(images[self.labels == c])
                                            for c in range(self.n_classes) if (self.labels == c).sum() > 1]))
        grid = images[:self.n_grid]
        nrow = self.n_classes if self.n_classes and self.n_classes <= 10 else math.ceil(math.sqrt(len(grid)))
        folder = self.run_dir / "samples"
        folder.mkdir(exist_ok=True)
        save_grid(grid, folder / f"epoch_{loop.epoch:03d}.png", nrow=nrow)
        save_grid(grid, self.run_dir / "samples.png", nrow=nrow)
        writer = next((c.writer for c in loop.callbacks if type(c).__name__ == "TensorBoard"), None)
        if writer is not None:
            from PIL import Image

            with Image.open(folder / f"epoch_{loop.epoch:03d}.png") as im:
                arr = np.asarray(im.convert("RGB"))
            writer.add_image("samples", arr, loop.epoch, dataformats="HWC")
            for k in (*self.KEYS, "diversity"):
                writer.add_scalar(f"gan/{k}", h[k], loop.epoch)
        for w in gan_warnings(loop.history):
            kind = w.split(":")[0][:40]
            if kind not in self.warned:
                self.warned.append(kind)
                say(f"warning: {w}")

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "count": self.count, "warned": list(self.warned)}

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.count, self.warned = dict(state["sums"]), state["count"], list(state["warned"])


# ---- the two-player update, health metrics and sample grids
def default_gan_optimizers(G, D, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999)):
    """Adam with the DCGAN paper's settings for both networks: (opt_g, opt_d)."""
    import torch

    return (torch.optim.Adam(G.parameters(), lr=lr, betas=betas, foreach=True),
            torch.optim.Adam(D.parameters(), lr=lr, betas=betas, foreach=True))


def discriminator_loss(G, D, real, labels=None, z=None, autocast=contextlib.nullcontext):
    """The discriminator's loss on a real batch and fakes of noise z: (d_loss, fake, logits_real, logits_fake)."""
    import torch
    import torch.nn.functional as F

    b, device = real.shape[0], real.device
    ones, zeros = torch.ones(b, device=device), torch.zeros(b, device=device)
    with autocast():
        fake = G(z, labels)
        logits_real, logits_fake = D(real, labels).float(), D(fake.detach(), labels).float()
        d_loss = F.binary_cross_entropy_with_logits(logits_real, ones) + \
            F.binary_cross_entropy_with_logits(logits_fake, zeros)
    return d_loss, fake, logits_real, logits_fake


def generator_loss(D, fake, labels=None, autocast=contextlib.nullcontext):
    """The non-saturating generator loss -log D(G(z)) of fakes."""
    import torch
    import torch.nn.functional as F

    with autocast():
        return F.binary_cross_entropy_with_logits(D(fake, labels).float(), torch.ones(len(fake), device=fake.device))


def gan_stats(d_loss, g_loss, logits_real, logits_fake) -> dict[str, float]:
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": logits_real.detach().sigmoid().mean().item(),
            "d_fake": logits_fake.detach().sigmoid().mean().item()}


def gan_step(G, D, opt_g, opt_d, real, labels=None, z_dim: int | None = None, generator=None,
             bf16: bool = False) -> dict[str, float]:
    """One non-saturating GAN update outside the loop (two optimizers): a D step, then a G step.

    The loop's step is GenerateImages.step, on the same losses. Returns d_loss, g_loss, d_real, d_fake."""
    import torch

    z = torch.randn(real.shape[0], z_dim or G.z_dim, generator=generator).to(real.device)

    def amp():
        return torch.autocast(real.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    d_loss, fake, lr_, lf = discriminator_loss(G, D, real, labels, z, amp)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    D.requires_grad_(False)
    try:
        g_loss = generator_loss(D, fake, labels, amp)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    finally:
        D.requires_grad_(True)
    return gan_stats(d_loss, g_loss, lr_, lf)


def sample_diversity(images) -> float:
    """Mean pairwise L2 distance between samples, divided by sqrt(pixels): an RMS per-pixel difference.

    Near 0 means the generator makes the same image over and over (mode collapse); real MNIST scaled to
    [-1, 1] gives about 0.8.
    """
    import torch

    if images.shape[0] < 2:
        raise ValueError("sample_diversity needs at least 2 images.")
    flat = images.detach().float().flatten(1)
    n, d = flat.shape
    with torch.no_grad():
        dist = torch.cdist(flat, flat)
    return (dist.sum() / (n * (n - 1)) / math.sqrt(d)).item()


def gan_warnings(history: list[dict], patience: int = 3) -> list[str]:
    """Plain-English warnings from per-epoch GAN metrics (keys of `gan_step`, plus optional "diversity")."""
    warnings = []
    if any(not math.isfinite(v) for h in history for v in h.values() if isinstance(v, float)):
        warnings.append("A loss became NaN or infinite: lower the learning rate or turn off bf16.")
    div = [h["diversity"] for h in history if "diversity" in h]
    if len(div) >= 3:
        early = max(div[: max(1, min(3, len(div) // 2))])
        if div[-1] < 0.5 * early:
            warnings.append(
                f"Possible mode collapse: sample diversity fell to {div[-1]:.3f} from {early:.3f} early on, so the "
                "generator is making near-identical images. Try spectral norm in the discriminator, a lower "
                "learning rate, or resuming from an earlier checkpoint.")
    last = history[-patience:]
    if len(last) == patience and all(
            h["d_real"] > 0.9 and h["d_fake"] < 0.1 for h in last) and last[-1]["g_loss"] > last[0]["g_loss"]:
        warnings.append(
            f"The discriminator is winning outright: for {patience} epochs it scores real images near 1 and fakes "
            "near 0 while the generator's loss keeps climbing, so the generator gets little useful signal. Try "
            "spectral norm, a smaller discriminator or its learning rate, or label smoothing.")
    return warnings
