import sys, time, numpy as np
t0 = time.perf_counter()
from gde_ref.bench import _make, random_batch
agent, learner = _make(11, 3)
b = random_batch(np.random.default_rng(0), 11, 3, 256)
t1 = time.perf_counter()
agent.update(b); learner.update(b, 0.3); agent.act(b.obs[0])
print(sys.argv[1], "import %.1f s, first IQL+GDE update and act: %.1f s" % (t1 - t0, time.perf_counter() - t1))
