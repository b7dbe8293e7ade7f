import sys, time, numpy as np
from gde_ref.bench import _make, random_batch
from gde_ref.nn.kernels import blas_threads
agent, learner = _make(11, 3)
b = [random_batch(np.random.default_rng(i), 11, 3, 256) for i in range(4)]
learner.update(b[0], 0.3); agent.update(b[0])
obs = b[0].obs[0].copy()
out = []
with blas_threads(1):
    for r in range(5):
        t = time.perf_counter()
        for k in range(150): learner.update(b[k % 4], 0.3)
        g = (time.perf_counter() - t) / 150
        t = time.perf_counter()
        for k in range(150): agent.update(b[k % 4])
        q = (time.perf_counter() - t) / 150
        out.append((g * 1e3, q * 1e3))
print(sys.argv[1], "gde ms", [round(x, 2) for x, _ in out], "iql ms", [round(y, 2) for _, y in out])
