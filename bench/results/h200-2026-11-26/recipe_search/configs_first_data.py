import json, sys
E = int(sys.argv[1]) if len(sys.argv) > 1 else 15
base = dict(bs=64, epochs=E, sched="cos", warmup=300, p=0.5)
C = [
 dict(name="ref_lr002_bs32_step", lr=0.002, bs=32, epochs=E, p=0.5),
 dict(base, name="lr01_p05", lr=0.01),
 dict(base, name="lr01_p0", lr=0.01, p=0.0),
 dict(base, name="lr02_p05_clip", lr=0.02, clip=5.0),
 dict(base, name="lr005_p05", lr=0.005),
 dict(base, name="lr01_p05_lsuv", lr=0.01, lsuv=True),
 dict(base, name="lr01_p05_easy2", lr=0.01, easy_epochs=2),
 dict(base, name="lr01_p05_nolrn", lr=0.01, lrn=False),
 dict(base, name="adam1e3_p05", opt="adam", lr=0.001),
 dict(base, name="lr01_p05_noerase", lr=0.01, erase=False),
 dict(base, name="lr02_bs128_p05", lr=0.02, bs=128),
 dict(base, name="lr01_p05_wide", lr=0.01, width=[24, 48, 48, 48, 48], hidden=384),
 dict(base, name="lr01_p025_clip", lr=0.01, p=0.25, clip=5.0),
 dict(base, name="lr01_p05_smalllast", lr=0.01, small_last=True),
 dict(base, name="lr01_p05_lsuv_easy2", lr=0.01, lsuv=True, easy_epochs=2),
]
for c in C: print(json.dumps(c))
