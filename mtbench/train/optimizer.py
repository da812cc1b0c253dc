"""Adam with one state per task (DeePMD v2 multi-task: separate moments even for the shared descriptor).

Written out rather than taken from Keras so the state is plain variables we can checkpoint per task, and the
update is exactly TF1's: ``theta -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf


class Adam(tf.Module):
    def __init__(self, variables: Sequence[tf.Variable], beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, name: str | None = None) -> None:
        super().__init__(name=name)
        self.params = list(variables)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.params]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.params]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads: Sequence[tf.Tensor], lr: tf.Tensor) -> None:
        """One update with TensorFlow's fused Adam kernel (the TF1 ``AdamOptimizer`` arithmetic)."""
        t = tf.cast(self.iterations + 1, tf.float64)
        b1p, b2p = self.beta1 ** t, self.beta2 ** t
        for var, g, m, v in zip(self.params, grads, self.m, self.v):
            if g is None:
                continue
            dt = var.dtype
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=m.handle, v=v.handle, beta1_power=tf.cast(b1p, dt), beta2_power=tf.cast(b2p, dt),
                lr=tf.cast(lr, dt), beta1=tf.constant(self.beta1, dt), beta2=tf.constant(self.beta2, dt),
                epsilon=tf.constant(self.epsilon, dt), grad=tf.cast(g, dt))
        # the raw op: under a tf.distribute strategy each replica bumps its own copy (no merge_call in a cond)
        tf.raw_ops.AssignAddVariableOp(resource=self.iterations.handle, value=tf.constant(1, tf.int64))

    def get_state(self) -> dict[str, np.ndarray]:
        state = {"iterations": np.asarray(self.iterations.numpy())}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m_{i}"] = m.numpy()
            state[f"v_{i}"] = v.numpy()
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.iterations.assign(int(state["iterations"]))
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            m.assign(state[f"m_{i}"])
            v.assign(state[f"v_{i}"])
