import numpy as np, time
from deepinside.models.data import generate, TRAIN_SEED, HELD_OUT_SEED
t=time.time()
a=generate(30000, TRAIN_SEED); b=generate(2000, HELD_OUT_SEED)
np.savez("/tmp/exp/data.npz", xi=a[0], yi=a[1], xh=b[0], yh=b[1])
print(time.time()-t, a[0].shape, a[0].dtype)
