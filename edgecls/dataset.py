"""tf.data pipelines for training. Host only.

Images are decoded and resized once (``edgecls.folders.load_scan``, through the shared
preprocessing), held as uint8, shuffled anew every epoch, augmented per batch and
prefetched. Augmentation (zoom 0.2, horizontal flip, as the article) lives here, in the
input pipeline, so nothing of it reaches the model or its exported graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The article's augmentation: zoom_range=0.2, horizontal_flip=True.
ZOOM = 0.2
BATCH_SIZE = 32


def train_dataset(x: np.ndarray, y: np.ndarray, *, seed: int, batch_size: int = BATCH_SIZE) -> Any:
    import keras
    import tensorflow as tf

    zoom = keras.layers.RandomZoom(height_factor=(-ZOOM, ZOOM), width_factor=(-ZOOM, ZOOM),
                                   fill_mode="nearest", seed=seed)
    flip = keras.layers.RandomFlip("horizontal", seed=seed + 1)

    def augment(images: Any, labels: Any) -> Any:
        images = tf.cast(images, tf.float32)
        return flip(zoom(images, training=True), training=True), labels

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32)))
    ds = ds.cache().shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int = 256) -> Any:
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.float32)))
    return ds.batch(batch_size).map(lambda a, b: (tf.cast(a, tf.float32), b)).cache().prefetch(tf.data.AUTOTUNE)
