"""The configs of the three rounds, at equal engine cost: steps = budget / (numpy seconds per
training step of that variant, measured with cost.py on the 2-core machine).

    python configs.py ROUND      one JSON config per line
"""
import json
import sys

BUDGET = 9500 * 0.184  # the shipped (LRN, batch 64) net's 9,500 steps fill the 30 minutes
COST = {"base": 0.184, "nolrn": 0.159, "n_16_32_64": 0.193, "n_16_48_64": 0.222, "n_24_48_64": 0.265,
        "nolrn_bs32": 0.080, "n_16_32_64_bs32": 0.095, "nolrn_bs16": 0.045}
WIDTH = {"n_16_32_64": [16, 32, 64, 64, 64], "n_16_48_64": [16, 48, 64, 64, 64], "n_24_48_64": [24, 48, 64, 64, 64]}


def c(name, arch, **changes):
    config = dict(name=name, steps=int(BUDGET / COST[arch]), lr=0.01, p=0.1, lrn=arch == "base")
    width = WIDTH.get(arch.replace("_bs32", ""))
    if width:
        config["width"] = width
    if arch.endswith("bs32"):
        config["bs"] = 32
    return dict(config, **changes)


# Round 3 compares cheaper first layers with round 2's best (nolrn_bs32 at 0.0684 s a step
# in the same cost.py run as these).
R3 = 21850 * 0.0684


def d(name, cost, **changes):
    return dict(dict(name=name, steps=int(R3 / cost), lr=0.01, p=0.1, lrn=False, bs=32, wd=1e-3, log_every=2000),
                **changes)


ROUNDS = {
    1: [c("base", "base"), c("nolrn", "nolrn"), c("nolrn_lr02", "nolrn", lr=0.02),
        c("nolrn_noerase_p0", "nolrn", erase=False, p=0.0), c("nolrn_bs32", "nolrn_bs32"),
        c("nolrn_bs32_lr005", "nolrn_bs32", lr=0.005), c("w64", "n_16_32_64"), c("w64_lr02", "n_16_32_64", lr=0.02),
        c("w48_64", "n_16_48_64"), c("w24_48_64", "n_24_48_64"), c("w64_bs32", "n_16_32_64_bs32"),
        c("nolrn_wd1e4", "nolrn", wd=1e-4)],
    2: [c("b32_wd1e3", "nolrn_bs32", wd=1e-3), c("b32_wd2e3", "nolrn_bs32", wd=2e-3),
        c("b32_wd1e3_lr02", "nolrn_bs32", wd=1e-3, lr=0.02), c("b16_lr005", "nolrn_bs16", bs=16, lr=0.005),
        c("b16_wd1e3", "nolrn_bs16", bs=16, wd=1e-3), c("b32_wd1e3_noerase_p0", "nolrn_bs32", wd=1e-3, erase=False, p=0.0),
        c("w64b32_wd1e3", "n_16_32_64_bs32", wd=1e-3), c("w64b32_wd1e3_lr02", "n_16_32_64_bs32", wd=1e-3, lr=0.02),
        c("b64_wd1e3_lr02", "nolrn", wd=1e-3, lr=0.02), c("b64_wd2e3_lr02", "nolrn", wd=2e-3, lr=0.02),
        c("b32_wd1e3_p0", "nolrn_bs32", wd=1e-3, p=0.0), c("b32_wd5e3", "nolrn_bs32", wd=5e-3)],
    3: [d("s3k8", 0.0389, k1=8, s1=3), d("s3k8_w24_48_64", 0.0617, k1=8, s1=3, width=[24, 48, 64, 64, 64]),
        d("s4k11_w32_64", 0.0554, k1=11, s1=4, width=[32, 64, 64, 64, 64]),
        d("s4k11_w48_96", 0.0906, k1=11, s1=4, width=[48, 96, 96, 96, 96])],
}

if __name__ == "__main__":
    for config in ROUNDS[int(sys.argv[1])]:
        print(json.dumps(config))
