"""Whole image files as a source (``sources/files.py``): ImageFolder trees as torchvision reads them, file lists."""

import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from dali_ba.sources import read_file_list, scan_image_folder


def test_classes_and_labels_match_torchvision(color_tree):
    root, _ = color_tree
    index = scan_image_folder(root)
    reference = ImageFolder(str(root))
    assert list(index.classes) == reference.classes
    assert index.class_to_idx == reference.class_to_idx
    assert [(f, int(label)) for f, label in zip(index.files, index.labels)] == reference.samples


def test_extensions_match_in_any_case_and_other_files_are_ignored(tmp_path):
    for name in ("a.JPG", "b.Jpeg", "c.png", "notes.txt", "d.jpg.bak"):
        (tmp_path / "cls").mkdir(exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "cls" / name, format="PNG")
    index = scan_image_folder(tmp_path)
    assert sorted(p.rsplit("/", 1)[1] for p in index.files) == ["a.JPG", "b.Jpeg", "c.png"]


def test_missing_root_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_image_folder(tmp_path / "nowhere")


def test_root_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        scan_image_folder(tmp_path / "file")


def test_root_without_class_folders_says_what_was_expected(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "loose.jpg")
    with pytest.raises(ValueError, match="no class folders.*root/<class>/<image>"):
        scan_image_folder(tmp_path)


def test_class_folders_without_images_list_the_extensions(tmp_path):
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images found.*\.jpg"):
        scan_image_folder(tmp_path)


def test_nested_class_folders_are_ordered_as_torchvision_orders_them(tmp_path):
    # Sorted whole paths interleave the folders: "sub/a" < "sub0" < "sub_" ('/' < '0' < '_').
    for name in ("a/sub0.jpg", "a/sub/a.jpg", "a/sub_x.png", "a/z/deep/b.jpg", "a/z/a.jpg", "a/m.jpg", "b/x.jpg", "b/y/c.jpg"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(path, format="PNG")
    index = scan_image_folder(tmp_path)
    reference = ImageFolder(str(tmp_path), loader=lambda p: p, is_valid_file=lambda p: True)
    assert [(f, int(label)) for f, label in zip(index.files, index.labels)] == reference.samples


def test_file_list_paths_are_what_pathlib_joins(tmp_path):

    listed = ["a/b.jpg", "./c.jpg", "d//e.jpg", "f/./g.jpg", "/abs/h.jpg", "with space/i.jpg"]
    (tmp_path / "list.txt").write_text("".join(f"{p} {k}\n" for k, p in enumerate(listed)) + "# comment\n\n")
    index = read_file_list(tmp_path / "list.txt")
    assert list(index.files) == [str(tmp_path / p) for p in listed]
    assert index.labels.tolist() == list(range(len(listed)))
