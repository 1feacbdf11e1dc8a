"""Use a trained autoencoder: embeddings (with a 2-D map), k-means clusters, and anomaly scores.

Each function takes a `Run` and data it understands (same kind as its training data; the run's own
preprocessing is applied). Data with its own test split (such as ``mnist``) gives that split. Labels, when
the data has them, colour the map and give NMI/ARI (clusters) or AUROC/average precision (scores).

Example::

    run = lw.train("mnist", task="reconstruct", model="autoencoder", latent=16)
    run.embed("mnist", out="embeddings.npz", plot="map.png")
    run.cluster("mnist", k=10)["nmi"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError

MAPS = ("pca", "tsne", "umap")


def embed(run, data: Any = None, out: str | Path | None = None, plot: str | Path | None = None,
          method: str = "pca", seed: int = 0, target: str | None = None) -> dict[str, Any]:
    """Encoder vectors of `data` (default: the run's test split): {"embeddings", "labels", "map"}.

    `out` saves them as .npz (arrays embeddings, labels when known, map when plotted); `plot` saves a
    2-D map (PCA, t-SNE, or UMAP when installed) as PNG, coloured by label when labels exist. For tables,
    `target` names the column of labels (default: the run's target column).
    """
    if method not in MAPS:
        raise ConfigError(f"unknown map {method!r}; valid: {', '.join(MAPS)}.")
    encoder = _encoder(run)
    inputs, labels = inputs_of(run, data, target)
    z = encode(run, encoder, inputs)
    result: dict[str, Any] = {"embeddings": z, "labels": labels, "map": None}
    if plot is not None:
        result["map"] = project(z, method, seed)
        figure = map_figure(result["map"], labels, f"{run.info.get('model', 'model')} embeddings, {method}")
    # everything is computed: only now write files
    if out is not None:
        arrays = {"embeddings": z}
        if labels is not None:
            arrays["labels"] = _savable(labels)
        if result["map"] is not None:
            arrays["map"] = result["map"]
        _parent(out)
        np.savez(out, **arrays)
    if plot is not None:
        _parent(plot)
        figure.savefig(plot, dpi=120)
        import matplotlib.pyplot as plt

        plt.close(figure)
    return result


def cluster(run, data: Any = None, k: int = 10, seed: int = 0, out: str | Path | None = None,
            target: str | None = None, manifold: str | None = None, whiten: bool = True) -> dict[str, Any]:
    """k-means (scikit-learn) on the embeddings of `data`: {"clusters", "sizes", "nmi", "ari", "k"}.

    NMI and ARI compare the clusters with the labels when the data has them. `out` saves one row per sample
    (cluster, and label when known) as CSV. `whiten` (default) rotates the embeddings onto their principal
    axes and scales each to unit variance first: k-means assumes round clusters, and an autoencoder's code
    has a few axes of large variance that would otherwise decide every split (MNIST, conv autoencoder,
    latent 16: NMI 0.62-0.65 raw, 0.71 whitened). `manifold="tsne"` (or "umap") runs k-means on a 2-D map of
    the embeddings instead, which follows their local structure (N2D, McConville et al. 2019): slower,
    and often much closer to the labels.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a whole number of clusters of at least 1, got {k!r}.")
    encoder = _encoder(run)
    inputs, labels = inputs_of(run, data, target)
    n = len(inputs[0])
    if k > n:
        raise DataError(f"k={k} clusters asked for but the data has only {n} samples; use a k of at most {n}.")
    if manifold not in (None, "tsne", "umap"):
        raise ConfigError(f"unknown manifold {manifold!r}; valid: tsne, umap (or none for k-means on the embeddings).")
    z = encode(run, encoder, inputs)
    whitened = bool(whiten and manifold is None and n > z.shape[1])
    if manifold is not None:
        z = project(z, manifold, seed)
    elif whitened:
        z = _whiten(z)
    # 50 restarts, keep the lowest inertia: on whitened codes 10 restarts often stop in a poor split (MNIST conv
    # autoencoder: NMI 0.65 with 10, 0.71 with 20-100 restarts); each restart is cheap (10,000 x 16: 10 ms)
    km = KMeans(n_clusters=int(k), n_init=50, random_state=seed).fit(z)
    clusters = km.labels_.astype(np.int64)
    result: dict[str, Any] = {"k": int(k), "manifold": manifold, "whiten": whitened, "clusters": clusters,
                              "sizes": np.bincount(clusters, minlength=k).tolist(), "inertia": float(km.inertia_),
                              "labels": labels}
    if labels is not None:
        keys = np.array([str(v) for v in labels])
        result["nmi"] = float(normalized_mutual_info_score(keys, clusters))
        result["ari"] = float(adjusted_rand_score(keys, clusters))
    if out is not None:
        import pandas as pd

        df = pd.DataFrame({"row": np.arange(n), "cluster": clusters})
        if labels is not None:
            df["label"] = labels
        _parent(out)
        df.to_csv(out, index=False)
    return result


def _whiten(z: np.ndarray) -> np.ndarray:
    """Principal components of z, each scaled to unit variance (components with no variance dropped)."""
    from sklearn.decomposition import PCA

    pca = PCA().fit(z)
    keep = int((pca.explained_variance_ > 1e-9 * pca.explained_variance_.max()).sum())
    return PCA(n_components=max(1, keep), whiten=True).fit_transform(z)


def score(run, data: Any = None, out: str | Path | None = None, target: str | None = None) -> dict[str, Any]:
    """Anomaly score per sample of `data` (reconstruction error, or a VAE's negative ELBO; higher is more
    unusual), with a flag where the run has a threshold (``--task anomaly``).

    Returns {"score", "flag", "threshold", "labels"} plus AUROC and average precision when the data has
    labels that say which samples are normal. `out` saves one row per sample as CSV.
    """
    task = run.task  # a Reconstruct or Anomaly task (its score verb calls this)
    inputs, labels = inputs_of(run, data, target)
    y = task.targets(inputs)
    out_t = run.outputs(inputs)
    import torch

    scores = task.scores(out_t, torch.as_tensor(np.asarray(y))).cpu().numpy().astype(np.float64)
    threshold = task.threshold
    flags = scores > threshold if threshold is not None else None
    result: dict[str, Any] = {"score": scores, "flag": flags, "threshold": threshold, "labels": labels}
    if labels is not None:
        truth = task.truth(labels)  # None: labels that do not say what is normal, so no detection metrics
        if truth is not None:
            result.update(detection_metrics(scores, truth, threshold))
    if out is not None:
        import pandas as pd

        df = pd.DataFrame({"row": np.arange(len(scores)), "score": scores})
        if flags is not None:
            df["flag"] = flags.astype(int)
        if labels is not None:
            df["label"] = labels
        _parent(out)
        df.to_csv(out, index=False)
    return result


# ---- helpers
def _encoder(run):
    return run.model.encode  # every autoencoder of models/autoencoder.py has one


def encode(run, encoder, inputs: tuple, batch_size: int = 1024) -> np.ndarray:
    """Encoder outputs for all rows of the preprocessed `inputs`, in evaluation mode, as float32 [N, latent]."""
    import torch

    model = run.model
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(inputs[0]), batch_size):
            batch = tuple(torch.as_tensor(x[i:i + batch_size]).to(device) for x in inputs)
            outs.append(encoder(*batch).float().cpu())
    model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), np.float32)


def inputs_of(run, data: Any, target: str | None = None) -> tuple[tuple, np.ndarray | None]:
    """Preprocessed inputs and raw labels (or None) of `data`; None means the run's own test split."""
    if data is None:
        prepared = run.prepared()
        split = prepared.test or prepared.val or prepared.train
        return split.inputs, split.labels
    from ..data.sources import read_labelled

    d = read_labelled(data, run.pre, target or run.config.target, run.config.target)
    if d.test is not None:
        d = d.test
    if len(d) == 0:
        raise DataError("the data has no samples; give at least one.")
    return run.transform(d), d.y


def project(z: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D coordinates [N, 2] of embeddings: PCA, t-SNE, or UMAP (needs the umap-learn package)."""
    if len(z) < 3:
        raise DataError(f"a 2-D map needs at least 3 samples, got {len(z)}.")
    if z.shape[1] <= 2:
        return np.pad(z, ((0, 0), (0, 2 - z.shape[1]))).astype(np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(z).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(2, init="pca", perplexity=min(30.0, (len(z) - 1) / 3), random_state=seed).fit_transform(z) \
            .astype(np.float32)
    try:
        import umap
    except ImportError:
        raise ConfigError("the umap map needs the umap-learn package; install it (pip install umap-learn) or use "
                          "--map pca or tsne.") from None
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(z).astype(np.float32)


def map_figure(xy: np.ndarray, labels: np.ndarray | None, title: str):
    """A scatter plot of 2-D points, one colour per label (a legend up to 20 labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    size = max(1.0, min(12.0, 3000 / max(1, len(xy))))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7)
    else:
        keys = np.array([str(v) for v in labels])
        classes = sorted(set(keys.tolist()), key=_natural)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            m = keys == c
            ax.scatter(xy[m, 0], xy[m, 1], s=size, alpha=0.7, color=cmap(i % cmap.N),
                       label=c if len(classes) <= 20 else None)
        if len(classes) <= 20:
            ax.legend(markerscale=max(1.0, 8 / size), fontsize=8, loc="best", title="label")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig


def _natural(s: str):
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def _savable(labels: np.ndarray) -> np.ndarray:
    """Labels as an array .npz stores without pickling (numbers stay numbers, the rest become strings)."""
    a = np.asarray(labels)
    return a.astype(str) if a.dtype == object else a


def _parent(path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def detection_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float | None) -> dict[str, float]:
    """AUROC and average precision of scores against 0/1 labels (1 = anomaly); rates at the threshold."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).astype(int)
    m: dict[str, float] = {}
    if 0 < labels.sum() < len(labels):
        m["auroc"] = float(roc_auc_score(labels, scores))
        m["average_precision"] = float(average_precision_score(labels, scores))
    if threshold is not None:
        flag = scores > threshold
        if labels.any():
            m["tpr"] = float(flag[labels == 1].mean())
        if (labels == 0).any():
            m["fpr"] = float(flag[labels == 0].mean())
    return m
