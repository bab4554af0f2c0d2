"""PyTorch twin of the shapes net with BatchNorm, for the recipe search (a record, not part of
the package). First `python make_data.py` (caches 30,000 training and 2,000 held-out images in
/tmp/exp/data.npz), then e.g. `NORECT=1 python torch_recipe.py 0.05 64 20 5e-4 0.1` (peak lr,
batch, epochs, weight decay, dropout, [conv2-5 width]); T sets torch's threads; NORECT=1 drops
the zeroed-rectangle jitter. One line per epoch: mean training loss, held-out accuracy, seconds.
"""
import sys, time, numpy as np, torch, torch.nn as tnn
import deepinside.models.train as TR
from deepinside.models.train import centre_crops, to_batch, learning_rate
import os; torch.set_num_threads(int(os.environ.get('T','2'))); torch.manual_seed(0)
d=np.load("/tmp/exp/data.npz"); xi,yi,xh,yh=d["xi"],d["yi"],d["xh"],d["yh"]
pix=xi.reshape(-1,3).astype(np.float32); mean,std=pix.mean(0),pix.std(0)
lr=float(sys.argv[1]); bs=int(sys.argv[2]); epochs=int(sys.argv[3]); wd=float(sys.argv[4]); drop=float(sys.argv[5]); width=int(sys.argv[6]) if len(sys.argv)>6 else 32
def conv(i,o,k,**g): return [tnn.Conv2d(i,o,k,bias=False,**g), tnn.BatchNorm2d(o), tnn.ReLU()]
c=width
net=tnn.Sequential(*conv(3,16 if c==32 else c//2,7,stride=2), tnn.MaxPool2d(3,2,ceil_mode=True), *conv(16 if c==32 else c//2,c,5,padding=2), tnn.MaxPool2d(3,2,ceil_mode=True),
  *conv(c,c,3,padding=1),*conv(c,c,3,padding=1),*conv(c,c,3,padding=1), tnn.MaxPool2d(3,2,ceil_mode=True), tnn.Flatten(),
  tnn.Linear(c*25,256), tnn.ReLU(), tnn.Dropout(drop), tnn.Linear(256,256), tnn.ReLU(), tnn.Dropout(drop), tnn.Linear(256,10))
for m in net.modules():
    if isinstance(m,(tnn.Conv2d,tnn.Linear)): tnn.init.kaiming_normal_(m.weight, nonlinearity='relu')
    if isinstance(m,tnn.Linear): tnn.init.zeros_(m.bias)
net[-1].weight.data *= 0.01/net[-1].weight.data.std()
opt=torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=wd, nesterov=True)
rng=np.random.default_rng(0); n=len(xi)
def JB(rng, imgs, mean, std):
    if os.environ.get('NORECT'):
        from deepinside.models.data import IMAGE_SIZE, INPUT_SIZE
        count=len(imgs); tops, lefts = rng.integers(0, IMAGE_SIZE - INPUT_SIZE + 1, (2, count))
        crops = np.stack([imgs[i, t:t+INPUT_SIZE, l:l+INPUT_SIZE] for i,(t,l) in enumerate(zip(tops,lefts))])
        flip = rng.random(count) < 0.5; crops[flip] = crops[flip, :, ::-1]
        return to_batch(crops, mean, std)
    return TR.jittered_batch(rng, imgs, mean, std)
spe=-(-n//bs); t0=time.time()
xh_b=torch.from_numpy(to_batch(centre_crops(xh),mean,std))
for ep in range(epochs):
    net.train(); order=rng.permutation(n); L=[]
    for k,b in enumerate(range(0,n,bs)):
        for g in opt.param_groups: g["lr"]=learning_rate(lr, ep*spe+k, epochs*spe, 300)
        ch=order[b:b+bs]; x=torch.from_numpy(JB(rng, xi[ch], mean, std))
        loss=tnn.functional.cross_entropy(net(x), torch.from_numpy(yi[ch]).long())
        opt.zero_grad(); loss.backward(); opt.step(); L.append(loss.item())
    net.eval()
    with torch.no_grad(): acc=(net(xh_b).argmax(1).numpy()==yh).mean()
    print(f"ep {ep+1} loss {np.mean(L):.3f} held {acc:.4f} t {time.time()-t0:.0f}", flush=True)
