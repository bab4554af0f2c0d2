import json, sys
E = int(sys.argv[1]) if len(sys.argv) > 1 else 15
base = dict(bs=64, epochs=E, sched="cos", warmup=300, p=0.5, small_last=True)
C = [
 dict(base, name="v2_lr01_p0", lr=0.01, p=0.0),
 dict(base, name="v2_lr01_p05", lr=0.01),
 dict(base, name="v2_lr02_p05_clip", lr=0.02, clip=5.0),
 dict(base, name="v2_adam_p05", opt="adam", lr=0.001),
 dict(base, name="v2_lr005_p05_bs32", lr=0.005, bs=32),
 dict(base, name="v2_lr01_p025", lr=0.01, p=0.25),
 dict(base, name="v2_lr01_p05_easy2", lr=0.01, easy_epochs=2),
 dict(base, name="v2_lr01_p0_easy2", lr=0.01, p=0.0, easy_epochs=2),
]
for c in C: print(json.dumps(c))
