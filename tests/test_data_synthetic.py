"""The embedded dataset generator: proportions, sizes, formats, determinism, the folder-source note."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, TINY_PROFILE
from efficientnext import config
from efficientnext.data import generate


def tiny(**overrides) -> config.Params:
    return config.load(ROOT / "params.yaml", {**TINY_PROFILE, "data.synthetic.total": 50, **overrides})


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def stems(tree: dict[str, bytes]) -> set[str]:
    return {name.rsplit(".", 1)[0] for name in tree}


def test_class_counts_follow_the_scraper_lists():
    assert generate.class_counts(config.PAPER_CLASSES, 2500) == {
        "drawings": 299, "hentai": 88, "neutral": 706, "porn": 1100, "sexy": 307}
    # the smallest class never drops below the floor that puts it in every split
    assert generate.class_counts(config.PAPER_CLASSES, 50)["hentai"] == generate.MIN_PER_CLASS


def test_same_params_give_the_same_bytes_whatever_the_workers(tmp_path):
    generate.generate(tiny(**{"data.synthetic.workers": 1}), tmp_path / "a")
    generate.generate(tiny(**{"data.synthetic.workers": 2}), tmp_path / "b")
    first, second = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert first == second
    assert len(first) == 50 + 3 + len(generate.BROKEN_KINDS)  # hentai's 2 raised to the floor of 5

    generate.generate(tiny(**{"data.seed": 7}), tmp_path / "c")
    other = tree_bytes(tmp_path / "c")
    assert stems(other) == stems(first) and other != first  # formats are drawn too, so compare stems


def test_regular_images_have_the_configured_sizes_formats_and_layout(tmp_path):
    params = tiny(**{"data.synthetic.broken_files": False})
    generate.generate(params, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == params.data.classes
    formats = set()
    for path in tmp_path.rglob("*.*"):
        with Image.open(path) as im:
            assert im.mode == "RGB"
            assert all(48 <= side <= 96 for side in im.size), (path, im.size)
            formats.add(im.format)
            assert path.suffix == {"JPEG": ".jpg", "PNG": ".png"}[im.format]
    assert formats == {"JPEG", "PNG"}


def test_broken_files_go_round_the_classes_numbered_on():
    plan = generate.broken_file_plan(tiny())
    assert list(plan.values()) == list(generate.BROKEN_KINDS)
    assert list(plan)[:6] == ["drawings/drawings_00006.jpg", "hentai/hentai_00005.jpg", "neutral/neutral_00014.jpg",
                              "porn/porn_00022.png", "sexy/sexy_00006.jpg", "drawings/drawings_00007.png"]
    assert generate.broken_file_plan(tiny(**{"data.synthetic.broken_files": False})) == {}


def test_folder_source_writes_only_the_source_note(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/raw/old").mkdir(parents=True)  # a previous synthetic run is replaced
    generate.run(tiny(**{"data.source": "folder", "data.root": "/mnt/photos"}))
    assert [p.name for p in (tmp_path / "data/raw").iterdir()] == ["SOURCE.txt"]
    assert "data.root = /mnt/photos" in (tmp_path / "data/raw/SOURCE.txt").read_text()


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data.root": "elsewhere"}, "params.yaml: data: root = 'elsewhere' must be data/raw when source is synthetic"),
    ({"data.classes": ["cats", "porn"]},
     "params.yaml: data: classes ['cats'] have no synthetic recipe; "
     "use a subset of drawings, hentai, neutral, porn, sexy"),
    ({"data.source": "folder"},
     "params.yaml: data: root = 'data/raw' is the generate stage's output; point it at your image folder"),
])
def test_source_and_root_must_agree(overrides, message):
    with pytest.raises(config.ParamsError) as err:
        config.load(ROOT / "params.yaml", overrides)
    assert str(err.value) == message
