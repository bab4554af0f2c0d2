"""deepinside demo end to end, and its report opened in headless Chromium."""
import re
import shutil
import subprocess

import pytest

from deepinside.models.data import CLASSES
from deepinside.cli import main


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(folder / "out")]) == 0  # README's main job: the shipped model
    return folder / "out" / "index.html"


def test_report_holds_every_method(report):
    page = report.read_text()
    for heading in ("Class model images", "Image-specific saliency", "Weakly supervised localisation",
                    "DeconvNet reconstructions", "DeconvNet and backprop"):
        assert heading in page
    for name in CLASSES:  # a class model image for every class
        assert f'alt="{name} (S = ' in page
    for mode in ("backprop", "deconvnet", "guided"):
        assert f'alt="{mode}, 1 crop"' in page and f'alt="{mode}, 10 crops"' in page
    assert "src=\"http" not in page and "src='http" not in page  # self-contained


def test_report_has_the_imagenet_section_on_photographs(report):
    page = report.read_text().split("An ImageNet network: EfficientNet-Lite0", 1)[1]
    # The photographs' top-5 as ImageNet names them, scikit-image's cat and coffee first.
    assert "<td>scikit-image chelsea</td><td>Egyptian cat" in page or "<td>scikit-image chelsea</td><td>tiger cat" in page
    assert "<td>scikit-image coffee</td><td>espresso" in page
    for mode in ("backprop", "deconvnet", "guided"):
        assert page.count(f'alt="{mode}, 10 crops"') == 2
    for name in ("Egyptian cat", "espresso", "missile"):  # both recipes
        assert page.count(f'alt="{name} (S = ') == 2
    assert "a middle block" in page and "the last block" in page and "Residual" in page and "ReLU6" in page


# Injected into a copy of the page: after loading, it records how many images decoded.
CHECK_IMAGES = ("<script>window.addEventListener('load',function(){var i=[].slice.call(document.images);"
                "document.body.setAttribute('data-images',i.length);document.body.setAttribute('data-broken',"
                "i.filter(function(e){return !(e.complete&&e.naturalWidth>0);}).length);});</script>")


def test_report_opens_in_headless_chromium_with_every_image_and_table(report):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    page = report.read_text()
    assert page.count("</head>") == 1
    checked = report.parent / "checked.html"
    checked.write_text(page.replace("</head>", CHECK_IMAGES + "</head>"))
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={report.parent / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
         checked.as_uri()], capture_output=True, text=True, timeout=120)
    dom = result.stdout
    images_in_page = report.read_text().count("<img ")
    body = re.search(r"<body([^>]*)>", dom)
    assert body, result.stderr[-2000:]
    assert f'data-images="{images_in_page}"' in body.group(1) and 'data-broken="0"' in body.group(1)
    assert dom.count("<table>") == report.read_text().count("<table>") >= 6
